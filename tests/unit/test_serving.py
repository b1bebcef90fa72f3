"""The pushed model samples as it was evaluated: a tiny model trained two steps, readjusted and
exported as the Trainer does, then loaded from a serving directory in a fresh process with plain
TensorFlow and none of this project's code; and pipeline.sample, which uses it from the command
line."""

import json
import shutil
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow_transform as tft
from PIL import Image

from nvae_tfx.evaluation import generative_metrics
from nvae_tfx.options import TrainingOptions
from nvae_tfx.training import export, loop
from pipeline import sample
from tests.support.transform_graph import write_transform_graph

VERSION = '1700000000'
TEMPERATURE = 0.8
SEED = 11
NUM = 8

# Runs in a fresh interpreter: project packages cannot be imported (the editable install would
# otherwise find them), and the SavedModel alone must draw the samples.
PLAIN_TENSORFLOW = textwrap.dedent("""
    import json, sys
    import numpy as np

    PROJECT = {'model_code', 'nvae_tfx', 'components', 'pipeline', 'tests'}

    class NoProjectCode:
        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in PROJECT:
                raise ImportError(f'project code imported: {name}')

    sys.meta_path.insert(0, NoProjectCode())
    import tensorflow as tf

    model_dir, out, num, temperature, seed = sys.argv[1:]
    served = tf.saved_model.load(model_dir)
    images = served.signatures['sample'](
        num=tf.constant(int(num)), temperature=tf.constant(float(temperature)),
        seed=tf.constant(int(seed)))['images'].numpy()
    again = served.signatures['sample'](
        num=tf.constant(int(num)), temperature=tf.constant(float(temperature)),
        seed=tf.constant(int(seed)))['images'].numpy()
    recon = served.signatures['reconstruct'](images=tf.constant(images))['images'].numpy()
    np.savez(out, images=images, again=again, recon=recon)
    print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in PROJECT)))
""")


@pytest.fixture(scope='module')
def pushed(tmp_path_factory):
    """(serving dir, Model artifact uri, TrainingOptions) of a model exported as the Trainer
    exports it and copied as Pusher copies it."""
    root = tmp_path_factory.mktemp('serving')
    tft_output = tft.TFTransformOutput(write_transform_graph(str(root / 'transform_graph')))
    options = TrainingOptions(
        preset='tiny',
        train_steps=2,
        batch_size=8,
        steps_per_epoch=2,
        jit_compile='false',
        sample_temperature=TEMPERATURE,
        readjust_bn_passes=20,
        readjust_bn_batch=4,
    ).resolved()
    keras.utils.set_random_seed(0)
    model = loop.build_model(options.model_config(image_size=32), options.jit_compile)
    x = (np.random.RandomState(0).rand(16, 32, 32, 1) < 0.3).astype(np.float32)
    model.fit(x, batch_size=8, epochs=1, verbose=0)
    export.readjust_bn(model, options)
    model_uri = root / 'Trainer' / 'model'
    export.export(model, str(model_uri / 'Format-Serving'), tft_output, options)
    serving_dir = root / 'serving' / 'nvae-mnist'
    shutil.copytree(model_uri / 'Format-Serving', serving_dir / VERSION)
    return serving_dir, str(model_uri), options


def served_in_plain_tensorflow(model_dir, tmp_path, seed=SEED):
    out = tmp_path / f'served_{seed}.npz'
    result = subprocess.run(
        [
            sys.executable,
            '-c',
            PLAIN_TENSORFLOW,
            str(model_dir),
            str(out),
            str(NUM),
            str(TEMPERATURE),
            str(seed),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # not the checkout
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
    return np.load(out)


def test_pushed_model_samples_as_the_evaluator_does(pushed, tmp_path):
    serving_dir, model_uri, options = pushed
    evaluated = keras.saving.load_model(export.keras_model_path(model_uri))
    assert generative_metrics.sampling_state(evaluated) == {
        'readjust_bn_passes': 20,
        'readjust_bn_batch': 4,
        'readjust_bn_temperature': pytest.approx(TEMPERATURE),
    }
    # The Evaluator's sampling, the first batch of NUM images from SEED.
    expected = generative_metrics.samples(evaluated, NUM, TEMPERATURE, NUM, SEED)
    served = served_in_plain_tensorflow(serving_dir / VERSION, tmp_path)
    assert served['images'].shape == (NUM, 32, 32, 1)
    np.testing.assert_allclose(served['images'], expected, atol=1e-5)
    np.testing.assert_array_equal(served['again'], served['images'])  # no state between calls
    # Readjustment matters here: with the training statistics the same seed draws other images.
    with_training_statistics = keras.ops.convert_to_numpy(
        evaluated.sample(NUM, TEMPERATURE, seed=SEED)
    )
    assert np.abs(with_training_statistics - expected).max() > 1e-3
    # reconstruct keeps the training statistics.
    np.testing.assert_allclose(
        served['recon'],
        keras.ops.convert_to_numpy(evaluated.reconstruct(served['images'])),
        atol=1e-5,
    )
    other = served_in_plain_tensorflow(serving_dir / VERSION, tmp_path, seed=SEED + 1)
    assert np.abs(other['images'] - served['images']).max() > 1e-3


def test_sample_writes_the_grid_the_evaluator_would_draw(pushed, tmp_path, capsys):
    serving_dir, model_uri, _ = pushed
    out = tmp_path / 'grid.png'
    sample.main(
        [
            '--serving_dir',
            str(serving_dir),
            '--num',
            '6',
            '--temperature',
            str(TEMPERATURE),
            '--seed',
            str(SEED),
            '--out',
            str(out),
        ]
    )
    assert str(serving_dir / VERSION) in capsys.readouterr().out
    sheet = np.asarray(Image.open(out))
    # 3 x 2 tiles of 32x32 with 2-pixel gaps, doubled for viewing.
    assert sheet.shape == (2 * (2 * 34 + 2), 2 * (3 * 34 + 2))
    evaluated = keras.saving.load_model(export.keras_model_path(model_uri))
    expected = generative_metrics.samples(evaluated, 6, TEMPERATURE, 6, SEED)
    first = sheet[4 : 4 + 64 : 2, 4 : 4 + 64 : 2].astype(np.float32)
    np.testing.assert_allclose(first, np.round(expected[0, ..., 0] * 255), atol=1)


def test_sample_scores_image_files(pushed, tmp_path, capsys):
    serving_dir, _, _ = pushed
    rng = np.random.RandomState(0)
    files = []
    for name, side in (('digit.png', 28), ('canvas.png', 32)):
        files.append(str(tmp_path / name))
        Image.fromarray((rng.rand(side, side) * 255).astype(np.uint8)).save(files[-1])
    sample.main(['--serving_dir', str(serving_dir), '--score', *files, '--iw_samples', '3'])
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split('\t')[0] for line in lines] == files
    for line in lines:
        _, nats, bpd = line.split('\t')
        nats, bpd = float(nats.split()[0]), float(bpd.split()[0])
        assert 0 < nats < 784 * np.log(2) * 4  # a finite bound on 784 binary pixels
        assert bpd == pytest.approx(nats / np.log(2) / 784, abs=1e-4)


def test_sample_refuses_bad_input_with_one_line(pushed, tmp_path, capsys):
    serving_dir, _, _ = pushed
    small = tmp_path / 'small.png'
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(small)
    text = tmp_path / 'notes.png'
    text.write_text('not an image')
    cases = {
        (str(small),): f'{small}: a 20x20 image; the model takes 32x32 (or 28x28)',
        (str(tmp_path / 'missing.png'),): f'{tmp_path / "missing.png"}: no such file',
        (str(text),): f'{text}: not a readable image',
    }
    for files, message in cases.items():
        with pytest.raises(SystemExit) as e:
            sample.main(['--serving_dir', str(serving_dir), '--score', *files])
        assert e.value.code == 2
        assert capsys.readouterr().err.startswith(f'error: {message}')
    with pytest.raises(SystemExit) as e:
        sample.main(['--serving_dir', str(serving_dir), '--version', '12'])
    assert e.value.code == 2
    assert capsys.readouterr().err == (
        f'error: {serving_dir / "12"}: not a SavedModel (versions: {VERSION})\n'
    )


@pytest.mark.parametrize(
    'flag, message',
    [
        ('--num=0', 'argument --num: must be at least 1, got 0'),
        ('--iw_samples=0', 'argument --iw_samples: must be at least 1, got 0'),
        ('--steps=4', '--steps is for --interpolate, not the sample grid'),
        ('--temperature=-1', 'argument --temperature: -1.0 is outside (0.0, 10.0]'),
    ],
)
def test_bad_flags_are_one_line_before_anything_loads(tmp_path, flag, message, capsys):
    with pytest.raises(SystemExit) as e:
        sample.main([flag, '--serving_dir', str(tmp_path / 'none')])
    assert e.value.code == 2
    assert capsys.readouterr().err == f'error: {message} (--help lists the flags)\n'


def test_newest_version_is_loaded_unless_one_is_named(tmp_path):
    for version in ('9', '10', 'tmp'):
        (tmp_path / version).mkdir()
        (tmp_path / version / 'saved_model.pb').write_bytes(b'')
    assert sample.model_dir(str(tmp_path), None) == str(tmp_path / '10')
    assert sample.model_dir(str(tmp_path), '9') == str(tmp_path / '9')
    with pytest.raises(ValueError, match='no such serving directory'):
        sample.model_dir(str(tmp_path / 'nothing'), None)
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ValueError, match='no pushed model versions'):
        sample.model_dir(str(tmp_path / 'empty'), None)


def test_model_dir_reads_any_file_system():
    import tensorflow as tf

    root = 'ram://serving-test'
    for version in ('3', '11'):
        tf.io.gfile.makedirs(f'{root}/{version}')
        with tf.io.gfile.GFile(f'{root}/{version}/saved_model.pb', 'wb') as f:
            f.write(b'')
    assert sample.model_dir(root, None) == f'{root}/11'
