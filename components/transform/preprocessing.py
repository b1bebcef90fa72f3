"""Transform's preprocessing_fn (module_file). Alone in its directory on purpose: TFX hashes
every .py beside a module file into the component's cache key, so a Trainer edit must not
re-run Transform. Its custom_config is a TransformOptions (nvae_tfx/options.py).
"""

import tensorflow as tf

from nvae_tfx import datasets
from nvae_tfx.data import records
from nvae_tfx.options import TransformOptions


def _squeeze(feature: tf.Tensor) -> tf.Tensor:
    return tf.reshape(feature, [-1])


def mnist_image(image_raw: tf.Tensor, ids: tf.Tensor, options: TransformOptions) -> tf.Tensor:
    """Raw digits -> [0, 1] grey levels (or, binarized once, 0/1) on NVAE's canvas."""
    pixels = tf.io.decode_raw(image_raw, tf.uint8)
    images = tf.cast(tf.reshape(pixels, [-1, *datasets.MNIST_SHAPE]), tf.float32) / 255.0
    if options.binarization == 'static':
        images = datasets.static_binarize(images, ids, options.binarization_seed)
    p = datasets.MNIST_PAD
    return tf.pad(images, [[0, 0], [p, p], [p, p], [0, 0]])


def face_image(encoded: tf.Tensor, options: TransformOptions) -> tf.Tensor:
    """JPEG or PNG bytes -> the face crop (options.crop: NVAE's for CelebA) resized to
    image_size, stored as celeba_pixels says."""
    left, top, right, bottom = options.crop
    image_size = options.image_size

    def decode_crop_resize(data):
        # decode_image runs decode_jpeg, with its defaults, on JPEG bytes.
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
        image = image[top:bottom, left:right]
        # Antialiased bilinear matches the PIL resize of NVAE's torchvision Resize(64).
        resized = tf.image.resize(
            image, [image_size, image_size], method='bilinear', antialias=True
        )
        return tf.cast(tf.round(tf.clip_by_value(resized, 0.0, 255.0)), tf.uint8)

    images = tf.map_fn(
        decode_crop_resize,
        encoded,
        fn_output_signature=tf.TensorSpec([image_size, image_size, 3], tf.uint8),
    )
    if options.celeba_pixels == 'uint8':
        return tf.cast(images, tf.int64)  # tf.Example has no uint8: int64 varints of 0..255
    return tf.cast(images, tf.float32) / 255.0


def preprocessing_fn(inputs, custom_config):
    options = TransformOptions.from_custom_config(custom_config)
    ids = _squeeze(inputs[records.ID])
    if options.dataset == 'mnist':
        return {
            records.IMAGE: mnist_image(_squeeze(inputs[records.IMAGE_RAW]), ids, options),
            records.LABEL: _squeeze(inputs[records.LABEL]),
            records.ID: ids,
        }
    return {
        records.IMAGE: face_image(_squeeze(inputs[records.IMAGE_ENCODED]), options),
        records.ID: ids,
    }
