"""Transform's preprocessing_fn (module_file). Alone in its directory on purpose: TFX hashes
every .py beside a module file into the component's cache key, so a Trainer edit must not
re-run Transform.

custom_config:
  dataset: 'mnist' | 'celeba'
  binarization: 'dynamic' (default: grey levels here, a fresh Bernoulli sample per step in the
      Trainer, as NVAE does) | 'static' (binarized once here, seeded per image id)
  binarization_seed: int, for 'static'
  image_size: CelebA output side (64 as NVAE's CelebA-64)
  celeba_pixels: 'uint8' (default, stored as integers 0..255) | 'float' ([0, 1])
"""

import tensorflow as tf

from nvae_tfx import datasets
from nvae_tfx.data import records


def _squeeze(feature: tf.Tensor) -> tf.Tensor:
    return tf.reshape(feature, [-1])


def mnist_image(image_raw: tf.Tensor, ids: tf.Tensor, binarization: str, seed: int) -> tf.Tensor:
    pixels = tf.io.decode_raw(image_raw, tf.uint8)
    images = tf.cast(tf.reshape(pixels, [-1, *datasets.MNIST_SHAPE]), tf.float32) / 255.0
    if binarization == 'static':
        images = datasets.static_binarize(images, ids, seed)
    elif binarization != 'dynamic':
        raise ValueError(f"binarization must be 'dynamic' or 'static', got {binarization!r}")
    p = datasets.MNIST_PAD
    return tf.pad(images, [[0, 0], [p, p], [p, p], [0, 0]])


def celeba_image(jpeg: tf.Tensor, image_size: int, pixels: str) -> tf.Tensor:
    left, top, right, bottom = datasets.CELEBA_CROP

    def decode_crop_resize(data):
        image = tf.io.decode_jpeg(data, channels=3)[top:bottom, left:right]
        # Antialiased bilinear matches the PIL resize of NVAE's torchvision Resize(64).
        resized = tf.image.resize(
            image, [image_size, image_size], method='bilinear', antialias=True
        )
        return tf.cast(tf.round(tf.clip_by_value(resized, 0.0, 255.0)), tf.uint8)

    images = tf.map_fn(
        decode_crop_resize,
        jpeg,
        fn_output_signature=tf.TensorSpec([image_size, image_size, 3], tf.uint8),
    )
    if pixels == 'uint8':
        return tf.cast(images, tf.int64)  # tf.Example has no uint8: int64 varints of 0..255
    if pixels == 'float':
        return tf.cast(images, tf.float32) / 255.0
    raise ValueError(f"celeba_pixels must be 'uint8' or 'float', got {pixels!r}")


def preprocessing_fn(inputs, custom_config):
    dataset = custom_config.get('dataset', 'mnist')
    ids = _squeeze(inputs[records.ID])
    if dataset == 'mnist':
        image = mnist_image(
            _squeeze(inputs[records.IMAGE_RAW]),
            ids,
            custom_config.get('binarization', 'dynamic'),
            int(custom_config.get('binarization_seed', 0)),
        )
        return {
            records.IMAGE: image,
            records.LABEL: _squeeze(inputs[records.LABEL]),
            records.ID: ids,
        }
    if dataset == 'celeba':
        image = celeba_image(
            _squeeze(inputs[records.IMAGE_ENCODED]),
            int(custom_config.get('image_size', 64)),
            custom_config.get('celeba_pixels', 'uint8'),
        )
        return {records.IMAGE: image, records.ID: ids}
    raise ValueError(f"dataset must be 'mnist' or 'celeba', got {dataset!r}")
