"""Reader for MNIST's IDX files (gzipped or not), checking everything the format promises.

IDX layout: 2 zero bytes, a type code (0x08 = uint8), the number of dimensions, then one
big-endian uint32 per dimension and the data. Images use magic 2051 (3 dims), labels 2049 (1 dim).

TensorFlow (for tf.io.gfile) is imported where files are read, so that the header checks can run
before it is loaded (nvae_tfx/data/checks.py).
"""

import gzip
import struct
import zlib

import numpy as np

from nvae_tfx import datasets
from nvae_tfx.data.errors import DataError

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
_NDIM = {IMAGES_MAGIC: 3, LABELS_MAGIC: 1}
GZIP_SIGNATURE = b'\x1f\x8b'
# The longest header: magic and three dimensions.
MAX_HEADER_BYTES = 4 + 4 * 3
# {split: the prefix of its files}: train-images-idx3-ubyte, t10k-images-idx3-ubyte, ...
PREFIXES = {'train': 'train', 'eval': 't10k'}


def _read_bytes(path: str) -> bytes:
    import tensorflow as tf

    if not tf.io.gfile.exists(path):
        raise DataError(path, 'file not found')
    with tf.io.gfile.GFile(path, 'rb') as f:
        data = f.read()
    if data[:2] == GZIP_SIGNATURE:
        try:
            data = gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as e:
            raise DataError(path, f'corrupt or truncated gzip stream ({e})') from e
    return data


def parse_header(path: str, head: bytes, expected_magic: int) -> tuple[tuple[int, ...], int]:
    """(dimensions, header length) from the first bytes of an IDX file (at least
    MAX_HEADER_BYTES of them where the file has that many)."""
    if len(head) < 8:
        raise DataError(path, f'too short for an IDX header ({len(head)} bytes)')
    (magic,) = struct.unpack('>I', head[:4])
    if magic != expected_magic:
        kind = 'images' if expected_magic == IMAGES_MAGIC else 'labels'
        raise DataError(
            path, f'wrong magic number {magic}, expected {expected_magic} for IDX {kind}'
        )
    ndim = _NDIM[magic]
    header_len = 4 + 4 * ndim
    if len(head) < header_len:
        raise DataError(path, 'truncated IDX header')
    return struct.unpack(f'>{ndim}I', head[4:header_len]), header_len


def check_length(path: str, dims: tuple[int, ...], header_len: int, length: int) -> None:
    """The (uncompressed) file length must be what the header promises."""
    expected_len = header_len + int(np.prod(dims))
    if length != expected_len:
        raise DataError(
            path,
            f'header promises {dims} = {expected_len} bytes in total but the '
            f'file holds {length} (truncated or padded)',
        )


def check_pair(images_path: str, image_dims, labels_path: str, label_dims) -> None:
    """An images file and its labels file must describe the same number of 28x28 digits."""
    if tuple(image_dims[1:]) != datasets.MNIST_SHAPE[:2]:
        raise DataError(
            images_path,
            f'images are {image_dims[1]}x{image_dims[2]}, expected '
            f'{datasets.MNIST_SHAPE[0]}x{datasets.MNIST_SHAPE[1]}',
        )
    if image_dims[0] != label_dims[0]:
        raise DataError(
            images_path, f'{image_dims[0]} images but {labels_path} holds {label_dims[0]} labels'
        )


def read_idx(path: str, expected_magic: int) -> np.ndarray:
    """Returns the array stored in an IDX file after validating its header against its size."""
    data = _read_bytes(path)
    dims, header_len = parse_header(path, data[:MAX_HEADER_BYTES], expected_magic)
    check_length(path, dims, header_len, len(data))
    return np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(dims)


def read_idx_pair(images_path: str, labels_path: str):
    """Reads an images file and its labels file, checking that they describe the same digits."""
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC)
    check_pair(images_path, images.shape, labels_path, labels.shape)
    if labels.size and labels.max() > 9:
        raise DataError(labels_path, f'label {int(labels.max())} out of range 0-9')
    return images, labels


def find_idx_pair(data_dir: str, prefix: str, exists=None):
    """Finds '<prefix>-images-idx3-ubyte[.gz]' and '<prefix>-labels-idx1-ubyte[.gz]' in data_dir.
    exists: how to test a path (default tf.io.gfile.exists)."""
    if exists is None:
        import tensorflow as tf

        exists = tf.io.gfile.exists
    paths = []
    for kind, ndim in (('images', 3), ('labels', 1)):
        base = f'{data_dir.rstrip("/")}/{prefix}-{kind}-idx{ndim}-ubyte'
        found = [p for p in (base, base + '.gz') if exists(p)]
        if not found:
            raise DataError(base + '[.gz]', f'MNIST {prefix} {kind} file not found')
        if len(found) > 1:
            raise DataError(base, 'both a gzipped and a plain copy exist; keep one')
        paths.append(found[0])
    return tuple(paths)
