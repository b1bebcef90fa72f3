"""Randomness that must be fresh every time the Trainer uses an image, so it cannot live in
Transform (which materialises examples once): NVAE's dynamic MNIST binarization and
CelebA's random horizontal flip. Both map a batch of images in the Trainer's tf.data input.
"""

import tensorflow as tf


def dynamic_binarize(images: tf.Tensor, seed=None) -> tf.Tensor:
    """A fresh Bernoulli sample per pixel with p = intensity in [0, 1], as NVAE's Binarize()."""
    return tf.cast(tf.random.uniform(tf.shape(images), seed=seed) < images, images.dtype)


def random_flip(images: tf.Tensor, seed=None) -> tf.Tensor:
    """Flips each image of an NHWC batch left-right with probability 1/2 (training only)."""
    flip = tf.random.uniform([tf.shape(images)[0], 1, 1, 1], seed=seed) < 0.5
    return tf.where(flip, tf.reverse(images, axis=[2]), images)
