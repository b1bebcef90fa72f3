"""Reader for MNIST's IDX files (gzipped or not), checking everything the format promises.

IDX layout: 2 zero bytes, a type code (0x08 = uint8), the number of dimensions, then one
big-endian uint32 per dimension and the data. Images use magic 2051 (3 dims), labels 2049 (1 dim).
"""

import gzip
import struct
import zlib

import numpy as np
import tensorflow as tf

from nvae_tfx import datasets
from nvae_tfx.data.errors import DataError

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
_NDIM = {IMAGES_MAGIC: 3, LABELS_MAGIC: 1}
_GZIP_SIGNATURE = b'\x1f\x8b'


def _read_bytes(path: str) -> bytes:
    if not tf.io.gfile.exists(path):
        raise DataError(path, 'file not found')
    with tf.io.gfile.GFile(path, 'rb') as f:
        data = f.read()
    if data[:2] == _GZIP_SIGNATURE:
        try:
            data = gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as e:
            raise DataError(path, f'corrupt or truncated gzip stream ({e})') from e
    return data


def read_idx(path: str, expected_magic: int) -> np.ndarray:
    """Returns the array stored in an IDX file after validating its header against its size."""
    data = _read_bytes(path)
    if len(data) < 8:
        raise DataError(path, f'too short for an IDX header ({len(data)} bytes)')
    (magic,) = struct.unpack('>I', data[:4])
    if magic != expected_magic:
        kind = 'images' if expected_magic == IMAGES_MAGIC else 'labels'
        raise DataError(
            path, f'wrong magic number {magic}, expected {expected_magic} for IDX {kind}'
        )
    ndim = _NDIM[magic]
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DataError(path, 'truncated IDX header')
    dims = struct.unpack(f'>{ndim}I', data[4:header_len])
    expected_len = header_len + int(np.prod(dims))
    if len(data) != expected_len:
        raise DataError(
            path,
            f'header promises {dims} = {expected_len} bytes in total but the '
            f'file holds {len(data)} (truncated or padded)',
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(dims)


def read_idx_pair(images_path: str, labels_path: str):
    """Reads an images file and its labels file, checking that they describe the same digits."""
    images = read_idx(images_path, IMAGES_MAGIC)
    if images.shape[1:] != datasets.MNIST_SHAPE[:2]:
        raise DataError(
            images_path,
            f'images are {images.shape[1]}x{images.shape[2]}, expected '
            f'{datasets.MNIST_SHAPE[0]}x{datasets.MNIST_SHAPE[1]}',
        )
    labels = read_idx(labels_path, LABELS_MAGIC)
    if len(images) != len(labels):
        raise DataError(
            images_path, f'{len(images)} images but {labels_path} holds {len(labels)} labels'
        )
    if labels.size and labels.max() > 9:
        raise DataError(labels_path, f'label {int(labels.max())} out of range 0-9')
    return images, labels


def find_idx_pair(data_dir: str, prefix: str):
    """Finds '<prefix>-images-idx3-ubyte[.gz]' and '<prefix>-labels-idx1-ubyte[.gz]' in data_dir."""
    paths = []
    for kind, ndim in (('images', 3), ('labels', 1)):
        base = f'{data_dir.rstrip("/")}/{prefix}-{kind}-idx{ndim}-ubyte'
        found = [p for p in (base, base + '.gz') if tf.io.gfile.exists(p)]
        if not found:
            raise DataError(base + '[.gz]', f'MNIST {prefix} {kind} file not found')
        if len(found) > 1:
            raise DataError(base, 'both a gzipped and a plain copy exist; keep one')
        paths.append(found[0])
    return tuple(paths)
