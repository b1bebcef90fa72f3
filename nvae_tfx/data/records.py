"""The tf.Example layout of each dataset, shared by every source that produces it.

Images stay compact: MNIST as its raw uint8 bytes, CelebA as the original JPEG bytes.
Decoding, cropping and scaling happen in Transform, so ExampleGen never inflates data.
"""

import tensorflow as tf

from nvae_tfx import datasets

# Feature names, used by the schemas in schemas/ and by the Transform module.
IMAGE_RAW = 'image_raw'  # MNIST: the digit's uint8 bytes, row-major
IMAGE_ENCODED = 'image_encoded'  # CelebA: the JPEG file as stored on disk
LABEL = 'label'  # MNIST digit 0-9
ID = 'id'  # stable per-image key: source and index, or file name
HEIGHT, WIDTH, CHANNELS = 'height', 'width', 'channels'
# Transform's output keeps LABEL (MNIST) and ID and adds the image as the model reads it (NHWC).
IMAGE = 'image'


def _bytes(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int(value: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def mnist_example(image_raw: bytes, label: int, example_id: str) -> tf.train.Example:
    h, w, c = datasets.MNIST_SHAPE
    return tf.train.Example(
        features=tf.train.Features(
            feature={
                IMAGE_RAW: _bytes(image_raw),
                LABEL: _int(label),
                ID: _bytes(example_id.encode()),
                HEIGHT: _int(h),
                WIDTH: _int(w),
                CHANNELS: _int(c),
            }
        )
    )


def celeba_example(jpeg: bytes, example_id: str, shape) -> tf.train.Example:
    h, w, c = shape
    return tf.train.Example(
        features=tf.train.Features(
            feature={
                IMAGE_ENCODED: _bytes(jpeg),
                ID: _bytes(example_id.encode()),
                HEIGHT: _int(h),
                WIDTH: _int(w),
                CHANNELS: _int(c),
            }
        )
    )
