"""Facts about the two datasets, each stated once: image geometry as stored, as Transform writes
it and as the model scores it, and the randomness NVAE applies to images (MNIST binarization,
CelebA's horizontal flip).

TensorFlow is imported inside the functions that use it: the runners read these facts for their
flags before TensorFlow may be imported (its log level and oneDNN switch are set first).
"""

import numpy as np

from model_code import config as nvae_config

# The model's facts too (model_code/config.py): which datasets, and the MNIST digit's size.
DATASETS = nvae_config.DATASETS
MNIST_CROP = nvae_config.MNIST_CROP

# MNIST: 28x28 grey digits, stored as their 784 raw bytes. NVAE places them on a 32x32 canvas
# (2 pixels of padding) and scores only the digit, the canvas' central crop (model_code).
MNIST_SHAPE = (MNIST_CROP, MNIST_CROP, 1)
MNIST_PIXELS = MNIST_CROP * MNIST_CROP
MNIST_CANVAS = 32
MNIST_PAD = (MNIST_CANVAS - MNIST_CROP) // 2
MNIST_CANVAS_SHAPE = (MNIST_CANVAS, MNIST_CANVAS, 1)

# Aligned CelebA: 178 wide, 218 high, RGB. NVAE's CelebA-64 crops this face-centred 148x148
# square, as (left, top, right, bottom), before resizing.
CELEBA_SHAPE = (218, 178, 3)
CELEBA_CROP = (15, 40, 163, 188)

# MNIST binarization: 'dynamic' (NVAE's) keeps grey levels in Transform and draws a fresh
# Bernoulli sample every time the Trainer uses an image; 'static' binarizes once in Transform.
BINARIZATIONS = ('dynamic', 'static')


def dynamic_binarize(images, seed=None):
    """A fresh Bernoulli sample per pixel with p = intensity in [0, 1], as NVAE's Binarize()."""
    import tensorflow as tf

    return tf.cast(tf.random.uniform(tf.shape(images), seed=seed) < images, images.dtype)


def static_binarize(images, ids, seed: int):
    """Bernoulli(p = intensity) per pixel with a stateless seed derived from each image's id,
    so the result does not depend on batching, ordering or the Beam runner."""
    import tensorflow as tf

    id_seeds = tf.strings.to_hash_bucket_fast(ids, 2**31 - 1)

    def one(args):
        image, id_seed = args
        noise = tf.random.stateless_uniform(
            tf.shape(image), seed=tf.stack([id_seed, tf.constant(seed, tf.int64)])
        )
        return tf.cast(noise < image, tf.float32)

    return tf.map_fn(one, (images, id_seeds), fn_output_signature=tf.float32)


def fixed_binarize(images: np.ndarray, seed: int) -> np.ndarray:
    """One seeded binarization of images in memory, so that every model compared is scored on
    identical data (the Evaluator's likelihoods)."""
    return (np.random.RandomState(seed).uniform(size=images.shape) < images).astype(np.float32)


def binarize_some(images, fraction: float):
    """Replaces each image of a batch, with probability `fraction`, by a dynamic binarization of
    it. Generated MNIST images are Bernoulli means (grey) or samples (binary): a feature network
    trained on both puts features of either where the same digit's data is."""
    import tensorflow as tf

    binarize = tf.random.uniform([tf.shape(images)[0], 1, 1, 1]) < fraction
    return tf.where(binarize, dynamic_binarize(images), images)


def random_flip(images, seed=None):
    """Flips each image of an NHWC batch left-right with probability 1/2 (training only)."""
    import tensorflow as tf

    flip = tf.random.uniform([tf.shape(images)[0], 1, 1, 1], seed=seed) < 0.5
    return tf.where(flip, tf.reverse(images, axis=[2]), images)


def per_example(image, dataset: str, binarization: str, key):
    """per_step's training randomness for one image, drawn with a stateless key ([2] ints): the
    same key gives the same binarization or flip in any process, so a training stream keyed by
    position is the same when a resumed Trainer reads it again."""
    import tensorflow as tf

    if dataset == 'mnist':
        if binarization != 'dynamic':
            return image
        noise = tf.random.stateless_uniform(tf.shape(image), seed=key)
        return tf.cast(noise < image, image.dtype)
    flip = tf.random.stateless_uniform([], seed=key) < 0.5
    return tf.where(flip, tf.reverse(image, axis=[1]), image)


def per_step(images, dataset: str, binarization: str, training: bool):
    """The randomness drawn afresh every time the Trainer (or a served model) uses a batch of
    model images, which Transform, materialising examples once, cannot hold: MNIST a fresh
    binarization on every use (train and eval, as NVAE) unless Transform already binarized;
    CelebA a random horizontal flip for training only."""
    if dataset == 'mnist':
        return dynamic_binarize(images) if binarization == 'dynamic' else images
    return random_flip(images) if training else images
