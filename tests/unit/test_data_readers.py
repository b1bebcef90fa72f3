"""Readers on valid input and on every kind of bad input, with fixtures in the real formats."""

import gzip
import os

import numpy as np
import pytest

from nvae_tfx.data import celeba, embedded, idx, sources, synthetic, tfds_source
from nvae_tfx.data.errors import DataError
from nvae_tfx.options import SourceOptions


@pytest.mark.parametrize('gz', [True, False])
def test_idx_pair_round_trip(tmp_path, gz):
    arrays = synthetic.write_mnist_idx(str(tmp_path), n_train=30, n_test=10, gz=gz)
    images_path, labels_path = idx.find_idx_pair(str(tmp_path), 'train')
    assert images_path.endswith('.gz') == gz
    images, labels = idx.read_idx_pair(images_path, labels_path)
    np.testing.assert_array_equal(images, arrays['train'][0])
    np.testing.assert_array_equal(labels, arrays['train'][1])


def test_idx_wrong_magic(tmp_path):
    synthetic.write_mnist_idx(str(tmp_path), gz=False)
    labels_path = f'{tmp_path}/train-labels-idx1-ubyte'
    with pytest.raises(DataError, match='wrong magic number 2049, expected 2051') as e:
        idx.read_idx(labels_path, idx.IMAGES_MAGIC)
    assert e.value.path == labels_path


@pytest.mark.parametrize('gz', [True, False])
def test_idx_truncated(tmp_path, gz):
    synthetic.write_mnist_idx(str(tmp_path), gz=False)
    path = f'{tmp_path}/train-images-idx3-ubyte'
    data = open(path, 'rb').read()[:-100]
    if gz:
        os.remove(path)
        path += '.gz'
        data = gzip.compress(data)
    open(path, 'wb').write(data)
    with pytest.raises(DataError, match=r'header promises \(40, 28, 28\).*truncated') as e:
        idx.read_idx(path, idx.IMAGES_MAGIC)
    assert path in str(e.value)


def test_idx_corrupt_gzip_stream(tmp_path):
    synthetic.write_mnist_idx(str(tmp_path), gz=True)
    path = f'{tmp_path}/train-images-idx3-ubyte.gz'
    data = open(path, 'rb').read()
    open(path, 'wb').write(data[: len(data) // 2])
    with pytest.raises(DataError, match='corrupt or truncated gzip'):
        idx.read_idx(path, idx.IMAGES_MAGIC)


def test_idx_count_mismatch(tmp_path):
    synthetic.write_mnist_idx(str(tmp_path), gz=False)
    synthetic.write_idx(f'{tmp_path}/train-labels-idx1-ubyte', np.zeros(39, np.uint8))
    with pytest.raises(DataError, match='40 images but .*train-labels-idx1-ubyte holds 39 labels'):
        idx.read_idx_pair(*idx.find_idx_pair(str(tmp_path), 'train'))


def test_idx_missing_and_ambiguous_files(tmp_path):
    synthetic.write_mnist_idx(str(tmp_path), gz=True)
    os.remove(f'{tmp_path}/t10k-labels-idx1-ubyte.gz')
    with pytest.raises(DataError, match='t10k-labels-idx1-ubyte.*MNIST t10k labels file not found'):
        idx.find_idx_pair(str(tmp_path), 't10k')
    synthetic.write_mnist_idx(str(tmp_path), gz=False)
    with pytest.raises(DataError, match='both a gzipped and a plain copy'):
        idx.find_idx_pair(str(tmp_path), 'train')


def test_missing_data_dir_named():
    with pytest.raises(DataError, match='/no/such/dir: data directory not found'):
        sources.validate(SourceOptions(source='idx', data_dir='/no/such/dir').resolved())


def test_embedded_split_is_stratified_and_deterministic():
    images, labels = embedded.load()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8 and images.max() == 255
    split = embedded.stratified_split(labels)
    assert len(split['train']) == 4500 and len(split['eval']) == 500
    assert not set(split['train']) & set(split['eval'])
    assert np.bincount(labels[split['eval']], minlength=10).tolist() == [50] * 10
    np.testing.assert_array_equal(split['eval'], embedded.stratified_split(labels)['eval'])
    # Shuffled: a prefix of either split holds every class.
    assert all(len(set(labels[split[s][:60]])) == 10 for s in ('train', 'eval'))


def test_celeba_partition_file(tmp_path):
    names = synthetic.write_celeba_dir(str(tmp_path), counts=(3, 2, 1))
    splits = celeba.read_partition_file(f'{tmp_path}/list_eval_partition.txt')
    assert splits == {'train': names[:3], 'eval': names[3:5], 'test': names[5:]}


@pytest.mark.parametrize(
    'content, message',
    [
        ('000001.jpg 0\n000002.jpg 7\n', 'line 2 is .000002.jpg 7.'),
        ('000001.jpg\n', 'line 1 is'),
        ('000001.png 0\n', 'line 1 is'),
        ('000001.jpg 0\n000001.jpg 1\n', 'line 2: 000001.jpg is listed twice'),
        ('\n', 'lists no images'),
    ],
)
def test_celeba_malformed_partition_file(tmp_path, content, message):
    path = f'{tmp_path}/list_eval_partition.txt'
    open(path, 'w').write(content)
    with pytest.raises(DataError, match=message) as e:
        celeba.read_partition_file(path)
    assert e.value.path == path


def test_celeba_missing_partition_file_and_image_dir(tmp_path):
    with pytest.raises(DataError, match='img_align_celeba: CelebA image directory not found'):
        sources.validate(
            SourceOptions(dataset='celeba', source='dir', data_dir=str(tmp_path)).resolved()
        )
    os.makedirs(f'{tmp_path}/img_align_celeba')
    with pytest.raises(DataError, match='list_eval_partition.txt: partition file not found'):
        sources.validate(
            SourceOptions(dataset='celeba', source='dir', data_dir=str(tmp_path)).resolved()
        )


def test_celeba_image_checks():
    good = synthetic.jpeg_bytes(synthetic.face(1))
    assert celeba.check_image('a.jpg', good, (218, 178, 3)) == (218, 178, 3)
    with pytest.raises(DataError, match='a.jpg: corrupt or non-image file'):
        celeba.check_image('a.jpg', good[: len(good) // 2], (218, 178, 3))
    with pytest.raises(DataError, match='corrupt or non-image file'):
        celeba.check_image('a.jpg', b'this is not an image', (218, 178, 3))
    with pytest.raises(DataError, match='image is 100x80x3 .HxWxC., expected 218x178x3'):
        celeba.check_image(
            'a.jpg', synthetic.jpeg_bytes(synthetic.face(1, (100, 80, 3))), (218, 178, 3)
        )
    import io

    from PIL import Image

    png = io.BytesIO()
    Image.fromarray(synthetic.face(1)).save(png, format='PNG')
    with pytest.raises(DataError, match='not a JPEG image .found PNG.'):
        celeba.check_image('a.jpg', png.getvalue(), (218, 178, 3))


def test_tfds_not_prepared_message(tmp_path):
    with pytest.raises(DataError) as e:
        tfds_source.split_files('mnist', str(tmp_path))
    message = str(e.value)
    assert f'{tmp_path}/mnist' in message and 'not prepared' in message
    assert '--data_dir' in message and '--source=idx' in message and '--source=dir' in message


def test_tfds_prepared_fixture_is_found(tmp_path):
    synthetic.write_tfds(str(tmp_path), 'mnist', {'train': 6, 'test': 4})
    files = tfds_source.split_files('mnist', str(tmp_path))
    assert set(files) == {'train', 'eval'}
    assert all(os.path.exists(p) for paths in files.values() for p in paths)


def test_source_options_round_trip_and_checks():
    options = SourceOptions(
        dataset='celeba', source='dir', data_dir='/d', on_corrupt='skip'
    ).resolved()
    assert SourceOptions.from_custom_config(options.to_custom_config()) == options
    with pytest.raises(ValueError, match='source for mnist must be one of'):
        SourceOptions(dataset='mnist', source='dir', data_dir='/d').resolved()
    with pytest.raises(ValueError, match='give data_dir'):
        SourceOptions(dataset='mnist', source='idx').resolved()
