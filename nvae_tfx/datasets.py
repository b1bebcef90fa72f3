"""Facts about the datasets, each stated once: image geometry as stored, as Transform writes
it and as the model scores it, and the randomness NVAE applies to images (MNIST binarization,
the colour faces' horizontal flip).

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

# Colour faces, 'celeba' (CelebA) and 'faces' (any other photos of faces, LFW by default): every
# stored image's (height, width, channels), and the square Transform crops from it, as (left,
# top, right, bottom), before resizing to the model's size. Both are settings (SourceOptions.
# image_shape, TransformOptions.crop) whose defaults are these.
# Aligned CelebA: 178 wide, 218 high, RGB. NVAE's CelebA-64 crops this face-centred 148x148
# square.
CELEBA_SHAPE = (218, 178, 3)
CELEBA_CROP = (15, 40, 163, 188)
# LFW (as in lfw.tgz and TFDS 'lfw'): 250x250 RGB, each the face a Viola-Jones detector found,
# about 110 pixels wide, enlarged 2.2 times and centred. The central 150x150 square frames the
# face with some hair and background, about as NVAE's crop frames a CelebA face.
LFW_SHAPE = (250, 250, 3)
LFW_CROP = (50, 50, 200, 200)
FACE_GEOMETRY = {'celeba': (CELEBA_SHAPE, CELEBA_CROP), 'faces': (LFW_SHAPE, LFW_CROP)}
# The encoded formats each colour dataset's files may have (PIL's names).
IMAGE_FORMATS = {'celeba': ('JPEG',), 'faces': ('JPEG', 'PNG')}


def check_crop(crop, shape) -> None:
    """A crop must be a square inside the images (the model's images are square)."""
    left, top, right, bottom = crop
    height, width, _ = shape
    if right - left != bottom - top or right <= left:
        raise ValueError(
            f'crop {tuple(crop)} (left, top, right, bottom) is {right - left}x{bottom - top}; '
            'it must be a non-empty square'
        )
    if left < 0 or top < 0 or right > width or bottom > height:
        raise ValueError(
            f'crop {tuple(crop)} (left, top, right, bottom) does not fit in the {height}x{width} '
            'images (HxW)'
        )


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
    colour faces a random horizontal flip for training only."""
    if dataset == 'mnist':
        return dynamic_binarize(images) if binarization == 'dynamic' else images
    return random_flip(images) if training else images
