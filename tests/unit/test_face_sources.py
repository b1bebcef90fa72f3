"""The faces dataset: a folder of JPEG/PNG face images and TFDS 'lfw', split by a hash of each
image's name; their geometry (image shape, crop) as settings; the same pre-flight checks and
one-line errors as the other sources. Fixtures in the real formats (LFW's folder layout, a
prepared TFDS lfw directory)."""

import hashlib

import apache_beam as beam
import pytest
import tensorflow as tf
from apache_beam.testing.util import assert_that, equal_to
from PIL import Image

from nvae_tfx import datasets
from nvae_tfx.data import celeba, checks, hash_split, image_folder, sources, synthetic, tfds_source
from nvae_tfx.data.errors import DataError
from nvae_tfx.options import EVAL_FRACTION, SourceOptions, TransformOptions
from tests.support.runner_calls import print_config, run_cases

# --------------------------------------------------------------------------- the hash split


def test_hash_split_is_the_documented_rule_and_keeps_its_share():
    names = [f'person_{i:05d}/person_{i:05d}_0001.jpg' for i in range(20_000)]
    splits = [hash_split.split_of(n, 0.1) for n in names]
    for name, split in zip(names[:50], splits, strict=False):
        position = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], 'big') / 2**64
        assert split == ('eval' if position < 0.1 else 'train')
    assert splits.count('eval') / len(names) == pytest.approx(0.1, abs=0.01)
    # Bytes and their text hash alike; a larger fraction only moves images into eval.
    assert hash_split.split_of(names[0].encode(), 0.1) == splits[0]
    wider = [hash_split.split_of(n, 0.3) for n in names]
    assert all(w == 'eval' for s, w in zip(splits, wider, strict=True) if s == 'eval')
    assert 'sha256' in hash_split.rule('folder', 0.1) and '0.1' in hash_split.rule('folder', 0.1)


def test_folder_listing_follows_lfw_layout_and_leaves_non_images_out(tmp_path):
    names = synthetic.write_face_folder(str(tmp_path), count=6)
    (tmp_path / 'README.txt').write_text('not an image')
    (tmp_path / 'Ada_Lovelace' / '._Ada_Lovelace_0001.jpg').write_bytes(b'macOS resource fork')
    (tmp_path / '.thumbnails').mkdir()
    (tmp_path / '.thumbnails' / 'a.jpg').write_bytes(b'hidden')
    (tmp_path / 'top.JPEG').write_bytes(synthetic.jpeg_bytes(synthetic.face(1)))
    expected = sorted([*names, 'top.JPEG'])
    assert image_folder.list_images(str(tmp_path), checks.LOCAL_FILES) == expected
    # tf.io.gfile (remote file systems) lists the same.
    assert image_folder.list_images(str(tmp_path), checks.gfile_files()) == expected
    splits = image_folder.split_images(str(tmp_path), 0.5, checks.LOCAL_FILES)
    assert sorted(splits['train'] + splits['eval']) == expected
    assert all(hash_split.split_of(n, 0.5) == s for s in splits for n in splits[s])


def test_folder_without_images_or_without_an_eval_image_is_refused(tmp_path):
    (tmp_path / 'notes.txt').write_text('x')
    with pytest.raises(DataError, match=r'no images here or below \(files ending in .jpg'):
        image_folder.split_images(str(tmp_path), 0.1, checks.LOCAL_FILES)
    (tmp_path / 'one.png').write_bytes(synthetic.png_bytes(synthetic.face(1)))
    empty = 'train' if hash_split.split_of('one.png', 0.5) == 'eval' else 'eval'
    with pytest.raises(DataError, match=f'its 1 images leaves {empty} empty') as e:
        image_folder.split_images(str(tmp_path), 0.5, checks.LOCAL_FILES)
    assert e.value.path == str(tmp_path) and '--eval_fraction' in str(e.value)


def test_face_images_may_be_png_and_must_have_the_configured_shape():
    formats = datasets.IMAGE_FORMATS['faces']
    shape = datasets.LFW_SHAPE
    png = synthetic.png_bytes(synthetic.face(1, shape))
    assert celeba.check_image('a.png', png, shape, formats) == shape
    with pytest.raises(DataError, match=r'a.png: image is 100x80x3 \(HxWxC\), expected 250x250x3'):
        celeba.check_image(
            'a.png', synthetic.png_bytes(synthetic.face(1, (100, 80, 3))), shape, formats
        )
    gif = __import__('io').BytesIO()
    Image.fromarray(synthetic.face(1, shape)).save(gif, format='GIF')
    with pytest.raises(DataError, match=r'not a JPEG or PNG image \(found GIF\)'):
        celeba.check_image('a.gif', gif.getvalue(), shape, formats)
    # CelebA stays JPEG only.
    with pytest.raises(DataError, match=r'not a JPEG image \(found PNG\)'):
        celeba.check_image('a.png', png, shape)


# ------------------------------------------------------------- the geometry and the settings


def test_face_geometry_is_a_setting_with_each_dataset_default():
    faces = SourceOptions(dataset='faces', data_dir='/d').resolved()
    assert (faces.source, faces.image_shape, faces.eval_fraction) == (
        'folder',
        datasets.LFW_SHAPE,
        EVAL_FRACTION,
    )
    assert SourceOptions.from_custom_config(faces.to_custom_config()) == faces
    celeba_source = SourceOptions(dataset='celeba', data_dir='/d').resolved()
    assert (celeba_source.image_shape, celeba_source.eval_fraction) == (datasets.CELEBA_SHAPE, None)
    assert (SourceOptions().resolved().image_shape, SourceOptions().resolved().eval_fraction) == (
        None,
        None,
    )
    own = SourceOptions(
        dataset='faces', data_dir='/d', image_shape=[128, 128, 3], eval_fraction=0.2
    ).resolved()
    assert SourceOptions.from_custom_config(own.to_custom_config()) == own

    assert TransformOptions(dataset='faces').resolved().crop == datasets.LFW_CROP
    assert (
        TransformOptions(dataset='celeba').resolved().crop
        == datasets.CELEBA_CROP
        == (15, 40, 163, 188)
    )
    assert TransformOptions().resolved().crop is None
    config = TransformOptions(dataset='faces', crop=(0, 0, 128, 128)).resolved().to_custom_config()
    assert config == {'dataset': 'faces', 'image_size': 64, 'celeba_pixels': 'uint8',
                      'crop': [0, 0, 128, 128]}  # fmt: skip
    assert TransformOptions.from_custom_config(config).crop == (0, 0, 128, 128)
    # MNIST's Transform settings, and so its cache, are those of before.
    assert TransformOptions().resolved().to_custom_config() == {
        'dataset': 'mnist',
        'binarization': 'dynamic',
        'binarization_seed': 0,
    }


@pytest.mark.parametrize(
    'make, message',
    [
        (lambda: SourceOptions(eval_fraction=0.2), 'eval_fraction splits the faces dataset'),
        (lambda: SourceOptions(image_shape=(28, 28, 1)), 'image_shape is for colour images'),
        (lambda: SourceOptions(dataset='faces', data_dir='/d', eval_fraction=1.0),
         r'eval_fraction must be in \(0, 1\), got 1.0'),
        (lambda: SourceOptions(dataset='faces', data_dir='/d', image_shape=(64, 64, 1)),
         r'image_shape must be \(height, width, 3\)'),
        (lambda: SourceOptions(dataset='faces', source='dir', data_dir='/d'),
         "source for faces must be one of .'folder', 'tfds'."),
        (lambda: TransformOptions(crop=(0, 0, 1, 1)), 'crop is for colour images'),
    ],
)  # fmt: skip
def test_face_settings_that_cannot_apply_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_a_crop_must_be_a_square_inside_the_images():
    datasets.check_crop(datasets.LFW_CROP, datasets.LFW_SHAPE)
    datasets.check_crop(datasets.CELEBA_CROP, datasets.CELEBA_SHAPE)
    with pytest.raises(ValueError, match=r'is 150x160; it must be a non-empty square'):
        datasets.check_crop((50, 40, 200, 200), datasets.LFW_SHAPE)
    with pytest.raises(ValueError, match=r'does not fit in the 128x128 images'):
        datasets.check_crop(datasets.LFW_CROP, (128, 128, 3))


def test_print_config_and_the_runner_checks_of_the_faces_dataset(tmp_path):
    data = tmp_path / 'lfw'
    synthetic.write_face_folder(str(data), count=30)
    config, imported = print_config(
        'run_local', '--dataset=faces', f'--data_dir={data}', '--image_shape=250x250x3',
        '--crop=60,60,190,190', '--eval_fraction=0.2',
    )  # fmt: skip
    assert imported == []
    assert config['source'] == {
        'dataset': 'faces', 'source': 'folder', 'data_dir': str(data), 'on_corrupt': 'fail',
        'image_shape': [250, 250, 3], 'eval_fraction': 0.2,
    }  # fmt: skip
    assert config['transform']['crop'] == [60, 60, 190, 190]
    assert config['model']['dataset'] == 'faces' and config['model']['image_size'] == 64
    assert config['evaluation']['eval_split'] == 'eval'
    assert config['paths']['metadata_path'].endswith('nvae-faces/metadata.sqlite')

    empty = tmp_path / 'empty'
    empty.mkdir()
    faces = ['--dataset=faces', f'--data_dir={data}']
    cases = {
        'no_dir': ['--dataset=faces', f'--data_dir={tmp_path}/nowhere'],
        'no_images': ['--dataset=faces', f'--data_dir={empty}'],
        'crop_outside': [*faces, '--image_shape=128x128x3'],
        'crop_format': [*faces, '--crop=1,2,3'],
        'test_split': [*faces, '--eval_split=test'],
        'lfw_not_prepared': ['--dataset=faces', '--source=tfds', f'--data_dir={empty}'],
        'celeba_source': [*faces, '--source=dir'],
    }
    outputs = [f'--pipeline_root={tmp_path}/root', f'--metadata_path={tmp_path}/m.sqlite']
    results = run_cases({k: [*v, *outputs] for k, v in cases.items()}, tmp_path)
    expected = {
        'no_dir': f'{tmp_path}/nowhere: data directory not found',
        'no_images': f'{empty}: no images here or below (files ending in .jpg, .jpeg, .png)',
        'crop_outside': '--crop/--image_shape: crop (50, 50, 200, 200) (left, top, right, '
        'bottom) does not fit in the 128x128 images (HxW)',
        'crop_format': "argument --crop: expected 4 integers joined by ',', got '1,2,3'",
        'test_split': '--eval_split=test: faces from the folder source has the splits train, eval',
        'lfw_not_prepared': f"{empty}/lfw: TFDS dataset 'lfw' is not prepared here",
        'celeba_source': "source for faces must be one of ('folder', 'tfds'), got 'dir'",
    }
    for case, text in expected.items():
        code, err, seconds = results[case]
        assert code not in (0, None), case
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith('error: ') and text in lines[0], (case, err)
        assert seconds < 10, (case, seconds)


def test_example_gen_driver_fingerprints_every_folder_image(tmp_path):
    from tfx.components.example_gen import utils
    from tfx.utils import proto_utils

    from components.example_gen.component import ImageExampleGen
    from components.example_gen.driver import Driver

    names = synthetic.write_face_folder(str(tmp_path), count=9)
    component = ImageExampleGen(SourceOptions(dataset='faces', data_dir=str(tmp_path)).resolved())

    def fingerprint():
        properties = {
            k: proto_utils.proto_to_json(v) if hasattr(v, 'DESCRIPTOR') else v
            for k, v in component.exec_properties.items()
        }
        resolved = Driver(None).resolve_exec_properties(properties, None, None)
        return resolved[utils.FINGERPRINT_PROPERTY_NAME]

    first = fingerprint()
    assert 'images: 9 files' in first
    # A replaced image in a subfolder (its folder's own entry unchanged) re-runs ingestion.
    (tmp_path / names[4]).write_bytes(synthetic.jpeg_bytes(synthetic.face(77, datasets.LFW_SHAPE)))
    assert fingerprint() != first


# ------------------------------------------------------------------------------ TFDS lfw


def test_tfds_lfw_is_read_through_the_hash_split(tmp_path):
    synthetic.write_tfds(str(tmp_path), 'lfw', {'train': 20})
    options = SourceOptions(dataset='faces', source='tfds', data_dir=str(tmp_path)).resolved()
    checks.check_source(options)
    work = sources.validate(options)
    assert set(work) == {'train', 'eval'} and work['train'] == work['eval']
    records = [
        record
        for path in work['train']
        for record in tf.data.TFRecordDataset(path).as_numpy_iterator()
    ]
    images = [tf.train.Example.FromString(r).features.feature['image'].bytes_list.value[0]
              for r in records]  # fmt: skip
    assert len(images) == 20
    expected = {
        split: sorted(sources.hash_id(i) for i in images if hash_split.split_of(i, 0.1) == split)
        for split in ('train', 'eval')
    }
    assert expected['eval'] and expected['train']  # the fixture's 20 images fill both
    for split in ('train', 'eval'):
        with beam.Pipeline() as p:
            examples, skipped = sources.read_split(p, options, split, work[split])
            ids = examples | beam.Map(
                lambda r: (
                    tf.train.Example.FromString(r)
                    .features.feature['id']
                    .bytes_list.value[0]
                    .decode()
                    .split(':')[1]
                )
            )
            assert_that(ids, equal_to(expected[split]), label='ids')
            assert_that(skipped, equal_to([]), label='skipped')
    assert tfds_source.SPLITS['lfw'] == {'train': 'all'}
