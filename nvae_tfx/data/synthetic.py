"""Small datasets in the real on-disk formats of every source (IDX, the CelebA folder and its
partition file, a folder of face images in LFW's layout, prepared TFDS datasets), from generated
images: what the tests and the ingestion benchmark read, with no download. Written through
tf.io.gfile, so a data directory may be a gs:// URI as well."""

import gzip
import io
import posixpath
import struct

import numpy as np
import tensorflow as tf
from PIL import Image

from nvae_tfx.data import idx
from nvae_tfx.datasets import CELEBA_SHAPE, LFW_SHAPE


def _write(path: str, data: bytes) -> None:
    tf.io.gfile.makedirs(posixpath.dirname(path))
    with tf.io.gfile.GFile(path, 'wb') as f:
        f.write(data)


def write_idx(path: str, array: np.ndarray) -> None:
    """Writes a uint8 array as an IDX file (gzipped when path ends in .gz)."""
    magic = idx.IMAGES_MAGIC if array.ndim == 3 else idx.LABELS_MAGIC
    payload = (
        struct.pack(f'>I{array.ndim}I', magic, *array.shape) + array.astype(np.uint8).tobytes()
    )
    if path.endswith('.gz'):
        payload = gzip.compress(payload, compresslevel=1)
    _write(path, payload)


def digits(n: int, seed: int):
    """n MNIST-like 28x28 uint8 images (a bright bar at a label-dependent row) and labels."""
    rng = np.random.RandomState(seed)
    labels = (np.arange(n) % 10).astype(np.uint8)
    images = rng.randint(0, 40, (n, 28, 28)).astype(np.uint8)
    for i, label in enumerate(labels):
        images[i, 4 + 2 * label : 6 + 2 * label, 4:24] = 255
    return images, labels


def write_mnist_idx(data_dir: str, n_train: int = 40, n_test: int = 20, gz: bool = True):
    suffix = '.gz' if gz else ''
    arrays = {}
    for prefix, n, seed in (('train', n_train, 0), ('t10k', n_test, 1)):
        images, labels = digits(n, seed)
        write_idx(f'{data_dir}/{prefix}-images-idx3-ubyte{suffix}', images)
        write_idx(f'{data_dir}/{prefix}-labels-idx1-ubyte{suffix}', labels)
        arrays[prefix] = (images, labels)
    return arrays


def face(seed: int, shape=CELEBA_SHAPE) -> np.ndarray:
    """A smooth colour image with some texture (compresses like a photo, not like noise)."""
    rng = np.random.RandomState(seed)
    h, w, _ = shape
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack(
        [128 + 100 * np.sin(x / (9 + c) + seed) * np.cos(y / (13 + c)) for c in range(3)], -1
    )
    return np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)


def jpeg_bytes(image: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format='JPEG', quality=quality)
    return buf.getvalue()


def write_celeba_dir(data_dir: str, counts=(12, 4, 4), start: int = 1) -> list:
    """img_align_celeba/NNNNNN.jpg + list_eval_partition.txt with counts per partition 0/1/2."""
    names, lines = [], []
    number = start
    for partition, count in enumerate(counts):
        for _ in range(count):
            name = f'{number:06d}.jpg'
            _write(f'{data_dir}/img_align_celeba/{name}', jpeg_bytes(face(number)))
            names.append(name)
            lines.append(f'{name} {partition}')
            number += 1
    _write(f'{data_dir}/list_eval_partition.txt', ('\n'.join(lines) + '\n').encode())
    return names


def png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format='PNG')
    return buf.getvalue()


LFW_PEOPLE = ('Ada_Lovelace', 'Alan_Turing', 'Grace_Hopper')


def write_face_folder(data_dir: str, count: int = 24, shape=LFW_SHAPE) -> list[str]:
    """A face folder in LFW's layout, <person>/<person>_<NNNN>.<ext>, every third image a PNG,
    the others JPEGs; returns their paths relative to data_dir."""
    names = []
    for i in range(count):
        person = LFW_PEOPLE[i % len(LFW_PEOPLE)]
        ext = 'png' if i % 3 == 2 else 'jpg'
        name = f'{person}/{person}_{i + 1:04d}.{ext}'
        image = face(100 + i, shape)
        _write(f'{data_dir}/{name}', png_bytes(image) if ext == 'png' else jpeg_bytes(image))
        names.append(name)
    return sorted(names)


def _zeros_like_spec(tensor_info):
    if isinstance(tensor_info, dict):
        return {k: _zeros_like_spec(v) for k, v in tensor_info.items()}
    return np.zeros(
        tensor_info.shape,
        dtype=tensor_info.dtype.as_numpy_dtype
        if hasattr(tensor_info.dtype, 'as_numpy_dtype')
        else tensor_info.dtype,
    )


def write_tfds(data_dir: str, name: str, split_sizes: dict):
    """Prepares a real TFDS dataset ('mnist', 'celeb_a' or 'lfw') from generated images, no
    download."""
    import tensorflow_datasets as tfds
    from tensorflow_datasets.datasets.lfw import lfw_dataset_builder
    from tensorflow_datasets.image import celeba as tfds_celeba
    from tensorflow_datasets.image_classification import mnist as tfds_mnist

    base = {
        'mnist': tfds_mnist.MNIST,
        'celeb_a': tfds_celeba.CelebA,
        'lfw': lfw_dataset_builder.Builder,
    }[name]

    class Fixture(base, skip_registration=True):
        def _split_generators(self, dl_manager):
            return {split: self._examples(split, n) for split, n in split_sizes.items()}

        def _examples(self, split, n):
            for i in range(n):
                seed = 1000 * sorted(split_sizes).index(split) + i
                if name == 'mnist':
                    images, labels = digits(1, seed)
                    yield f'{split}-{i}', {'image': images[0][..., None], 'label': int(labels[0])}
                elif name == 'lfw':
                    person = LFW_PEOPLE[i % len(LFW_PEOPLE)]
                    yield f'{split}-{i}', {'image': face(seed, LFW_SHAPE), 'label': person}
                else:
                    example = _zeros_like_spec(self.info.features.get_tensor_info())
                    example['image'] = face(seed)
                    yield f'{split}-{i}', example

    Fixture.name = name
    Fixture(data_dir=data_dir).download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False)
    )
