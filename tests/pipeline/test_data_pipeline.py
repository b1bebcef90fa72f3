"""ExampleGen -> validation -> Transform end to end with LocalDagRunner on each source (the embedded
digits: the first run of tests/pipeline/test_trainer_pipeline.py)."""

import glob
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from components.transform import preprocessing
from nvae_tfx import datasets
from nvae_tfx.data import synthetic
from nvae_tfx.options import SourceOptions, TransformOptions
from pipeline import configs
from tests.support.pipeline_helpers import (
    decoded_ids,
    mnist_reference,
    read_transformed,
    run_outputs,
    run_pipeline,
)


def celeba_reference(jpeg_path, size):
    """NVAE's CelebA-64 crop and resize with PIL, as torchvision applies them. Decoded with TF's
    JPEG decoder: libjpeg builds differ by a few levels in chroma, which is not under test."""
    decoded = tf.io.decode_jpeg(open(jpeg_path, 'rb').read(), channels=3).numpy()
    return np.asarray(
        Image.fromarray(decoded).crop(datasets.CELEBA_CROP).resize((size, size), Image.BILINEAR)
    )


def test_idx_source_end_to_end(tmp_path):
    arrays = synthetic.write_mnist_idx(str(tmp_path / 'mnist'), n_train=40, n_test=20, gz=True)
    outputs = run_outputs(
        run_pipeline(tmp_path, SourceOptions(source='idx', data_dir=str(tmp_path / 'mnist')))
    )
    for split, prefix in (('train', 'train'), ('eval', 't10k')):
        got = read_transformed(outputs, split)
        index = np.array([int(i.split('-')[1]) for i in decoded_ids(got['id'])])
        assert all(i.startswith(prefix) for i in decoded_ids(got['id']))
        assert sorted(index) == list(range(len(arrays[prefix][0])))
        np.testing.assert_array_max_ulp(
            got['image'], mnist_reference(arrays[prefix][0][index]), maxulp=1
        )
        np.testing.assert_array_equal(got['label'], arrays[prefix][1][index])


def test_celeba_dir_skips_and_counts_corrupt_images(tmp_path):
    data_dir = tmp_path / 'celeba'
    names = synthetic.write_celeba_dir(str(data_dir), counts=(8, 3, 2))
    corrupt = data_dir / 'img_align_celeba' / names[2]
    corrupt.write_bytes(corrupt.read_bytes()[:500])
    outputs = run_outputs(
        run_pipeline(
            tmp_path,
            SourceOptions(
                dataset='celeba', source='dir', data_dir=str(data_dir), on_corrupt='skip'
            ),
            TransformOptions(dataset='celeba', image_size=32),
        )
    )
    props = outputs['ImageExampleGen'][1]['examples'][0].custom_properties
    assert props['num_skipped_train'].int_value == 1 and props['num_skipped'].int_value == 1
    assert props['num_examples_train'].int_value == 7
    assert (props['num_examples_eval'].int_value, props['num_examples_test'].int_value) == (3, 2)
    report_dir = props['dataset_source_report'].string_value
    assert str(corrupt) in open(os.path.join(report_dir, 'train-skipped.tsv')).read()

    for split, expected in (
        ('train', set(names[:8]) - {names[2]}),
        ('eval', set(names[8:11])),
        ('test', set(names[11:])),
    ):
        got = read_transformed(outputs, split)
        assert set(decoded_ids(got['id'])) == expected
        assert got['image'].shape == (len(expected), 32, 32, 3) and got['image'].dtype == np.int64
        for image, name in zip(got['image'], decoded_ids(got['id']), strict=True):
            reference = celeba_reference(data_dir / 'img_align_celeba' / name, 32).astype(np.int64)
            # TF's antialiased bilinear and PIL's bilinear filter differ by at most a level.
            assert np.abs(image - reference).max() <= 1
            assert np.abs(image - reference).mean() < 0.1


def test_celeba_corrupt_image_fails_by_default_naming_the_file(tmp_path):
    data_dir = tmp_path / 'celeba'
    names = synthetic.write_celeba_dir(str(data_dir), counts=(3, 1, 1))
    (data_dir / 'img_align_celeba' / names[1]).write_bytes(b'not a jpeg at all')
    with pytest.raises(Exception, match=f'{names[1]}: corrupt or non-image file'):
        run_pipeline(
            tmp_path, SourceOptions(dataset='celeba', source='dir', data_dir=str(data_dir))
        )


def test_tfds_mnist_with_static_binarization(tmp_path):
    synthetic.write_tfds(str(tmp_path / 'tfds'), 'mnist', {'train': 24, 'test': 8})
    config = TransformOptions(binarization='static', binarization_seed=7)
    outputs = run_outputs(
        run_pipeline(
            tmp_path, SourceOptions(source='tfds', data_dir=str(tmp_path / 'tfds')), config
        )
    )
    props = outputs['ImageExampleGen'][1]['examples'][0].custom_properties
    assert (props['num_examples_train'].int_value, props['num_examples_eval'].int_value) == (24, 8)
    got = read_transformed(outputs, 'train')
    assert set(np.unique(got['image'])) == {0.0, 1.0}
    # The same ids binarize to the same pixels eagerly, one at a time: independent of batching.
    raw = tf.constant(_raw_bytes_from_tfds(tmp_path, got['id']))
    expected = preprocessing.mnist_image(raw, tf.constant(got['id']), config).numpy()
    np.testing.assert_array_equal(got['image'], expected)


def _raw_bytes_from_tfds(tmp_path, ids):
    """The 784 raw bytes of each transformed example, read back from ExampleGen's output."""
    records = {}
    for path in glob.glob(
        str(tmp_path / 'root' / 'ImageExampleGen' / 'examples' / '*' / 'Split-train' / '*.gz')
    ):
        for record in tf.data.TFRecordDataset(path, compression_type='GZIP').as_numpy_iterator():
            features = tf.train.Example.FromString(record).features.feature
            records[features['id'].bytes_list.value[0]] = features['image_raw'].bytes_list.value[0]
    return [records[i] for i in ids]


def test_anomalies_stop_the_pipeline_before_transform(tmp_path):
    schema_dir = tmp_path / 'schema'
    schema_dir.mkdir()
    text = open(os.path.join(configs.schema_dir('mnist'), 'schema.pbtxt')).read()
    (schema_dir / 'schema.pbtxt').write_text(
        text.replace(
            'int_domain { name: "label" min: 0 max: 9 }',
            'int_domain { name: "label" min: 0 max: 5 }',
        )
    )
    arrays = synthetic.write_mnist_idx(str(tmp_path / 'mnist'))
    assert arrays['train'][1].max() > 5  # some digits out of the narrowed range
    with pytest.raises(Exception, match=r"feature 'label': Out-of-range values"):
        run_pipeline(
            tmp_path,
            SourceOptions(source='idx', data_dir=str(tmp_path / 'mnist')),
            schema_dir=str(schema_dir),
        )
    assert not os.path.exists(tmp_path / 'root' / 'Transform')
