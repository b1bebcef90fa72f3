"""The encode and decode signatures and pipeline.sample's latent tools, on a tiny MNIST model and a
tiny CelebA-64 model exported as the Trainer exports them: in a fresh process that can import
neither Keras nor the model's code, the signatures give what the model's own functions give, and
every mode writes the grid those functions predict."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
import types

import keras
import numpy as np
import pytest
import tensorflow_transform as tft
from PIL import Image

from nvae_tfx.data import synthetic
from nvae_tfx.options import TrainingOptions, TransformOptions
from nvae_tfx.training import export, loop
from pipeline import configs, latent_tools, sample
from tests.support.transform_graph import write_transform_graph

REPO = configs.PROJECT_ROOT
VERSION = '1700000000'
SEED = 5
STEPS = 3  # t = 0, 1/2, 1
ALPHAS = (0.25, 1.0)
TOP_GROUPS = (1, 2)  # of THREE_GROUPS' 3
# The tiny preset with a third group: --mix takes one or two top groups from one image.
THREE_GROUPS = {'num_groups_per_scale': '3'}
TEMPERATURES = (0.5, 1.0)
NUM = 3

# pipeline.sample in a fresh interpreter where the model's code cannot be imported
# (model_code.config, plain constants the dataset facts share, is all of model_code it may
# import): it must use the SavedModel alone. (Keras cannot be ruled out so: TensorFlow imports
# it.) It also calls the signatures as a TensorFlow Serving client would, and saves what they
# gave.
NO_MODEL_CODE = textwrap.dedent("""
    import json, sys
    import numpy as np

    class NoModelCode:
        def find_spec(self, name, path=None, target=None):
            if name.startswith('model_code.') and name != 'model_code.config':
                raise ImportError(f'model code imported: {name}')

    sys.meta_path.insert(0, NoModelCode())
    import functools
    import tensorflow as tf
    from pipeline import sample

    # Every run loads the same SavedModel: once is enough for the test.
    tf.saved_model.load = functools.lru_cache(tf.saved_model.load)

    serving_dir, work, runs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    for argv in runs:
        sample.main(['--serving_dir', serving_dir, *argv])
    served = tf.saved_model.load(f'{serving_dir}/' + sys.argv[4])
    x = np.load(f'{work}/images.npy')
    encode, decode = served.signatures['encode'], served.signatures['decode']
    encoded = [encode(images=tf.constant(x), seed=tf.constant(s)) for s in (5, 5, 6)]
    groups = decode.structured_input_signature[1]['keep'].shape[0]
    keep = [g % 2 == 0 for g in range(groups)]
    decoded = decode(**{f'z_{g:02d}': encoded[0][f'mean_{g:02d}'] for g in range(groups)},
                     keep=tf.constant(keep), temperature=tf.fill([groups], 0.7),
                     seed=tf.constant(5))
    np.savez(f'{work}/served.npz', keep=keep,
             **{f'{k}_{i}': v.numpy() for i, e in enumerate(encoded) for k, v in e.items()},
             **{f'decoded_{k}': v.numpy() for k, v in decoded.items()})
    print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'model_code')))
""")


def write_tiny_model(root, dataset):
    """(serving dir, the exported Keras model, input images): a tiny model of the dataset,
    untrained but for its sampling state, exported as the Trainer exports it and copied as Pusher
    copies it; two image files (A, B) and a third, as users have them."""
    size = 32 if dataset == 'mnist' else 64
    transform = TransformOptions(dataset=dataset, image_size=size).resolved()
    tft_output = tft.TFTransformOutput(
        write_transform_graph(str(root / 'transform_graph'), transform)
    )
    options = TrainingOptions(
        dataset=dataset,
        preset='tiny',
        overrides=THREE_GROUPS,
        jit_compile='false',
        readjust_bn_passes=1,
        readjust_bn_batch=2,
    ).resolved()
    keras.utils.set_random_seed(0)
    model = loop.build_model(options.model_config(image_size=size), options.jit_compile)
    export.readjust_bn(model, options)
    export.export(model, str(root / 'model' / 'Format-Serving'), tft_output, options)
    serving_dir = root / 'serving'
    shutil.copytree(root / 'model' / 'Format-Serving', serving_dir / VERSION)
    files = []
    for i in range(3):
        files.append(str(root / f'image{i}.png'))
        if dataset == 'mnist':  # 28x28 digits, as MNIST has them
            Image.fromarray(synthetic.digits(3, seed=0)[0][i]).save(files[-1])
        else:
            Image.fromarray(synthetic.face(i, shape=(size, size, 3))).save(files[-1])
    x = np.stack([sample.read_image(f, (size, size, model.config.in_channels)) for f in files])
    return serving_dir, model, files, x


@pytest.fixture(scope='module', params=['mnist', 'celeba'])
def served(request, tmp_path_factory):
    """Every mode run by pipeline.sample without model code, and the signatures' outputs."""
    root = tmp_path_factory.mktemp(request.param)
    serving_dir, model, files, x = write_tiny_model(root, request.param)
    np.save(root / 'images.npy', x)
    a, b = files[:2]
    out = {mode: str(root / f'{mode}.png') for mode in sample.MODES if mode != 'score'}
    runs = [
        ['--reconstruct', *files, '--latent', 'sample', '--seed', str(SEED), '--out',
         out['reconstruct']],
        ['--interpolate', a, b, '--steps', str(STEPS), '--out', out['interpolate']],
        ['--blend', a, b, '--alpha', ','.join(map(str, ALPHAS)), '--out', out['blend']],
        ['--mix', a, b, '--top_groups', ','.join(map(str, TOP_GROUPS)), '--out', out['mix']],
        ['--temperatures', ','.join(map(str, TEMPERATURES)), '--num', str(NUM), '--seed',
         str(SEED), '--out', out['temperatures']],
    ]  # fmt: skip
    run = subprocess.run(
        [sys.executable, '-c', NO_MODEL_CODE, str(serving_dir), str(root), json.dumps(runs),
         VERSION],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '3', 'PYTHONPATH': REPO},
        timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    *printed, imported = run.stdout.strip().splitlines()
    assert json.loads(imported) == ['model_code', 'model_code.config']
    grids = {mode: np.asarray(Image.open(path)) for mode, path in out.items()}
    return types.SimpleNamespace(
        model=model,
        x=x,
        grids=grids,
        signatures=dict(np.load(root / 'served.npz')),
        printed=printed,
        serving_dir=serving_dir,
        files=files,
    )


def np_(t):
    return keras.ops.convert_to_numpy(t)


def tiles(sheet, rows, columns, shape, pad=2):
    """The tiles of a grid PNG as floats in [0, 1] (tiles of 32 pixels or fewer were doubled)."""
    h, w, c = shape
    scale = sheet.shape[0] // (rows * (h + pad) + pad)
    sheet = sheet[::scale, ::scale].reshape(sheet.shape[0] // scale, -1, c)
    return (
        np.stack(
            [
                sheet[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + k * (w + pad) :][:, :w]
                for r in range(rows)
                for k in range(columns)
            ]
        ).astype(np.float32)
        / 255.0
    )


def decoded(model, latents):
    groups = model.num_groups
    return np_(model.decode(latents, [True] * groups, [1.0] * groups, 0)[0])


def test_signatures_give_what_the_model_gives(served):
    model, x, out = served.model, served.x, served.signatures
    groups = model.num_groups
    means = [np_(z) for z in model.encode(x)]
    drawn = [np_(z) for z in model.posterior_sample(x, SEED)]
    for g in range(groups):
        np.testing.assert_allclose(out[f'mean_{g:02d}_0'], means[g], atol=1e-5)
        np.testing.assert_allclose(out[f'sample_{g:02d}_0'], drawn[g], atol=1e-5)
        np.testing.assert_array_equal(out[f'sample_{g:02d}_1'], out[f'sample_{g:02d}_0'])
    assert max(np.abs(out[f'sample_{g:02d}_2'] - drawn[g]).max() for g in range(groups)) > 1e-2
    images, latents = model.decode(means, out['keep'], [0.7] * groups, SEED)
    np.testing.assert_allclose(out['decoded_images'], np_(images), atol=1e-5)
    for g in range(groups):
        np.testing.assert_allclose(out[f'decoded_z_{g:02d}'], np_(latents[g]), atol=1e-5)
        if out['keep'][g]:  # as given
            np.testing.assert_array_equal(out[f'decoded_z_{g:02d}'], out[f'mean_{g:02d}_0'])


def test_reconstruct_mode_pairs_images_with_reconstructions(served):
    """From a posterior sample (--latent sample): the means decode to reconstruct's images
    (tests/unit/test_latent_model.py)."""
    model, x, grids = served.model, served.x, served.grids
    pairs = tiles(grids['reconstruct'], 1, 6, x.shape[1:])
    np.testing.assert_allclose(pairs[0::2], x, atol=1 / 255)
    expected = decoded(model, [np_(z) for z in model.posterior_sample(x, SEED)])
    np.testing.assert_allclose(pairs[1::2], expected, atol=1 / 255)


def test_interpolate_mode_goes_from_a_to_b_linearly_and_on_the_circle(served):
    model, x, grids = served.model, served.x, served.grids
    strip = tiles(grids['interpolate'], 2, STEPS, x.shape[1:])
    recon = np_(model.reconstruct(x[:2]))
    za, zb = ([np_(z)[i : i + 1] for z in model.encode(x[:2])] for i in (0, 1))
    linear_mid = decoded(model, [(a + b) / 2 for a, b in zip(za, zb, strict=True)])
    # Half way along the great circle: (a + b) / (2 cos(omega / 2)).
    circle_mid = []
    for a, b in zip(za, zb, strict=True):
        cosine = np.sum(a * b) / np.linalg.norm(a) / np.linalg.norm(b)
        circle_mid.append((a + b) / (2 * np.cos(np.arccos(cosine) / 2)))
    expected = [
        recon[0],
        linear_mid[0],
        recon[1],
        recon[0],
        decoded(model, circle_mid)[0],
        recon[1],
    ]
    np.testing.assert_allclose(strip, np.stack(expected), atol=1 / 255)


def test_blend_mode_weights_every_group(served):
    model, x, grids = served.model, served.x, served.grids
    row = tiles(grids['blend'], 1, len(ALPHAS), x.shape[1:])
    za, zb = ([np_(z)[i : i + 1] for z in model.encode(x[:2])] for i in (0, 1))
    for alpha, tile in zip(ALPHAS, row, strict=True):
        blend = decoded(model, [alpha * a + (1 - alpha) * b for a, b in zip(za, zb, strict=True)])
        np.testing.assert_allclose(tile, blend[0], atol=1 / 255)
    np.testing.assert_allclose(row[-1], np_(model.reconstruct(x[:1]))[0], atol=1 / 255)


def test_mix_mode_takes_coarse_groups_from_one_and_fine_from_the_other(served):
    model, x, grids = served.model, served.x, served.grids
    grid = tiles(grids['mix'], len(TOP_GROUPS), 4, x.shape[1:])
    za, zb = ([np_(z)[i : i + 1] for z in model.encode(x[:2])] for i in (0, 1))
    rows = []
    for n in TOP_GROUPS:
        a_over_b = decoded(model, za[:n] + zb[n:])[0]
        b_over_a = decoded(model, zb[:n] + za[n:])[0]
        rows.append(np.stack([x[0], a_over_b, b_over_a, x[1]]))
    np.testing.assert_allclose(grid, np.concatenate(rows), atol=1 / 255)
    # N matters (in the PNG only for CelebA: the untrained digits' mixes differ by 1/255).
    assert np.abs(rows[0][1:3] - rows[1][1:3]).max() > 1e-4


def test_temperatures_mode_draws_rows_with_the_same_seed(served):
    model, x, grids = served.model, served.x, served.grids
    rows = tiles(grids['temperatures'], len(TEMPERATURES), NUM, x.shape[1:])
    for r, t in enumerate(TEMPERATURES):
        expected = np_(model.sample(NUM, t, sampling_state=True, seed=SEED))
        np.testing.assert_allclose(rows[r * NUM : (r + 1) * NUM], expected, atol=1 / 255)


def test_each_mode_says_what_it_wrote(served):
    printed = served.printed
    assert len(printed) == 5 and all('from ' in line and '.png: ' in line for line in printed)


def test_slerp_keeps_the_circle_and_falls_back_to_lerp():
    a = np.array([[1.0, 0.0]])
    b = np.array([[0.0, 2.0]])
    mid = latent_tools.slerp(a, b, 0.5)
    np.testing.assert_allclose(mid, [[np.sqrt(0.5), np.sqrt(2.0)]])
    np.testing.assert_allclose(latent_tools.slerp(a, b, 0.0), a)
    np.testing.assert_allclose(latent_tools.slerp(a, b, 1.0), b)
    np.testing.assert_allclose(latent_tools.slerp(a, 3 * a, 0.5), 2 * a)  # parallel: linear


def refusal(argv, capsys):
    """The one line pipeline.sample refuses argv with (exit status 2)."""
    with pytest.raises(SystemExit) as e:
        sample.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and err.startswith('error: ')
    return err[len('error: ') : -1]


@pytest.mark.parametrize(
    'argv, message',
    [
        (['--blend', 'a.png', 'b.png', '--alpha', '0.5,1.5'], 'argument --alpha: 1.5 is outside'),
        (['--blend', 'a.png', 'b.png', '--alpha', '0.5,x'], 'argument --alpha: not a list of'),
        (['--interpolate', 'a.png', 'b.png', '--steps', '1'], 'argument --steps: must be at'),
        (['--interpolate', 'a.png'], 'argument --interpolate: expected 2 arguments'),
        (['--mix', 'a.png', 'b.png', '--top_groups', '0'], 'argument --top_groups: 0 is outside'),
        (['--temperatures', '0.5,0'], 'argument --temperatures: 0.0 is outside (0.0, 10.0]'),
        (
            ['--blend', 'a.png', 'b.png', '--steps', '3'],
            '--steps is for --interpolate, not --blend',
        ),
        (
            ['--mix', 'a.png', 'b.png', '--reconstruct', 'c.png'],
            'argument --reconstruct: not allowed',
        ),
        (['--score', 'a.png', '--out', 'x.png'], '--out is for the grids, not --score'),
    ],
)
def test_bad_flags_are_refused_before_any_file_is_read(argv, message, tmp_path, capsys):
    line = refusal([*argv, '--serving_dir', str(tmp_path / 'none')], capsys)
    assert line.startswith(message) and line.endswith('(--help lists the flags)')


def test_bad_files_and_groups_are_refused_before_the_model_loads(served, tmp_path, capsys):
    serving_dir, (a, b, _), model = served.serving_dir, served.files, served.model
    size = model.config.image_size

    def no_loading(*args, **kwargs):
        raise AssertionError('the model was loaded')

    small = tmp_path / 'small.png'
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(small)
    text = tmp_path / 'notes.png'
    text.write_text('not an image')
    takes = f'{size}x{size}' + (' (or 28x28)' if model.config.in_channels == 1 else '')
    cases = [
        (['--interpolate', a, str(small)], f'{small}: a 20x20 image; the model takes {takes}'),
        (['--blend', str(text), b], f'{text}: not a readable image (UnidentifiedImageError)'),
        (['--reconstruct', a, str(tmp_path / 'no.png')], f'{tmp_path / "no.png"}: no such file'),
        (
            ['--mix', a, b, '--top_groups', '2,3'],
            '--top_groups 3: the model has 3 latent groups, so N can be 1 to 2',
        ),
        (
            ['--reconstruct', a, '--out', str(tmp_path / 'no' / 'x.png')],
            f'{tmp_path / "no" / "x.png"}: no such directory {tmp_path / "no"}',
        ),
    ]
    import tensorflow as tf

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tf.saved_model, 'load', no_loading)
        for argv, message in cases:
            assert refusal([*argv, '--serving_dir', str(serving_dir)], capsys) == message


def test_a_model_without_latent_signatures_is_refused(tmp_path, capsys):
    """A model pushed before encode and decode existed: one line, not a KeyError."""
    import tensorflow as tf

    module = tf.Module()
    module.reconstruct = tf.function(
        lambda images: {'images': images},
        input_signature=[tf.TensorSpec([None, 32, 32, 1], tf.float32, name='images')],
    )
    tf.saved_model.save(module, str(tmp_path / '1'), signatures={'reconstruct': module.reconstruct})
    digit = tmp_path / 'digit.png'
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(digit)
    argv = ['--serving_dir', str(tmp_path), '--mix', str(digit), str(digit)]
    assert refusal(argv, capsys) == (
        f'{tmp_path / "1"}: this model has no encode/decode signatures (exported before them); '
        'push a newer one'
    )
