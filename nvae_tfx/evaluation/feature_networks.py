"""Feature extractors for FID and precision/recall, each named so metric keys say which was used
(`fid_mnist_classifier`, `precision_inception_v3`, ...): values from different networks are not
comparable.

* `mnist_classifier`: the 128-d penultimate layer of a small CNN trained on the pipeline's MNIST
  images (32x32x1 in [0, 1]). Inception features of digits say little; a domain classifier is
  the usual choice for MNIST.
* `inception_v3`: Keras' ImageNet Inception-v3 pool3 (2048-d) from a local weights file. These are
  not the TF-slim 2015 weights behind published FIDs (TTUR, pytorch-fid), so values are
  comparable between our models, not with papers.

Every network takes NHWC float images in [0, 1].
"""

import json
import os
from collections.abc import Callable, Iterable

import keras
import numpy as np
import tensorflow as tf

from nvae_tfx import datasets

DIGIT_CLASSIFIER_NAME = 'mnist_classifier'
INCEPTION_V3_NAME = 'inception_v3'
INCEPTION_SIZE = 299
INCEPTION_WEIGHTS_FILE = 'inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5'
_MODEL_FILE = 'digit_classifier.keras'
_INFO_FILE = 'digit_classifier.json'


class FeatureNetwork:
    """A named map from image batches to feature vectors, with facts about it (`info`, e.g. the
    classifier's eval accuracy) worth recording next to the metrics."""

    def __init__(
        self,
        name: str,
        model: keras.Model,
        preprocess: Callable[[tf.Tensor], tf.Tensor],
        info: dict | None = None,
    ):
        self.name = name
        self.info = dict(info or {})
        self._call = tf.function(
            lambda x: model(preprocess(x), training=False), reduce_retracing=True
        )

    def features(self, images) -> np.ndarray:
        """[n, h, w, c] images in [0, 1] -> [n, dim] float32 features."""
        images = np.asarray(images, np.float32)
        if images.ndim != 4 or len(images) == 0:
            raise ValueError(
                f'{self.name}: expected a non-empty NHWC batch, got shape {images.shape}'
            )
        low, high = images.min(), images.max()
        if low < 0 or high > 1:
            raise ValueError(
                f'{self.name}: images must be in [0, 1], got values in [{low}, {high}] '
                '(divide uint8 pixels by 255)'
            )
        return self._call(tf.constant(images)).numpy()

    def features_of(self, batches: Iterable) -> np.ndarray:
        """Features of every batch of an iterable (a tf.data.Dataset, a generator...), stacked."""
        features = [self.features(batch) for batch in batches]
        if not features:
            raise ValueError(f'{self.name}: no image batches to compute features of')
        return np.concatenate(features)


# --- MNIST digit classifier --------------------------------------------------------------------


def _check_mnist(images) -> None:
    if tuple(images.shape[1:]) != datasets.MNIST_CANVAS_SHAPE:
        raise ValueError(
            f'digit classifier expects {datasets.MNIST_CANVAS_SHAPE} images '
            f'({datasets.MNIST_CROP}x{datasets.MNIST_CROP} padded by {datasets.MNIST_PAD}), got '
            f'{tuple(images.shape[1:])}'
        )


def build_digit_classifier(feature_dim: int = 128) -> keras.Model:
    """Three conv/pool blocks and a dense feature layer: about 99% on full MNIST in a few epochs,
    at 10 M multiply-adds per image so it trains on CPUs."""
    inputs = keras.Input(datasets.MNIST_CANVAS_SHAPE, name='image')
    x = inputs
    for filters in (32, 64, 128):  # 32x32 -> 16 -> 8 -> 4
        x = keras.layers.Conv2D(filters, 3, padding='same', activation='relu')(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Dropout(0.25)(keras.layers.Flatten()(x))
    features = keras.layers.Dense(feature_dim, activation='relu', name='features')(x)
    logits = keras.layers.Dense(10, name='logits')(keras.layers.Dropout(0.5)(features))
    return keras.Model(inputs, logits, name=DIGIT_CLASSIFIER_NAME)


def train_digit_classifier(
    train_images,
    train_labels,
    eval_images,
    eval_labels,
    epochs: int,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    binarized_fraction: float = 0.5,
    seed: int = 0,
) -> tuple[keras.Model, float]:
    """Trains on [n, 32, 32, 1] images in [0, 1] (half of each batch dynamically binarized);
    returns the model and its accuracy on the eval images as given."""
    for images in (train_images, eval_images):
        _check_mnist(images)
    keras.utils.set_random_seed(seed)
    model = build_digit_classifier()
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=['accuracy'],
    )
    train = (
        tf.data.Dataset.from_tensor_slices(
            (np.asarray(train_images, np.float32), np.asarray(train_labels, np.int32))
        )
        .shuffle(len(train_images), seed=seed)
        .batch(batch_size)
        .map(lambda x, y: (datasets.binarize_some(x, binarized_fraction), y))
        .prefetch(2)
    )
    model.fit(train, epochs=epochs, verbose=0)
    return model, classification_accuracy(model, eval_images, eval_labels)


def classification_accuracy(model: keras.Model, images, labels, batch_size: int = 500) -> float:
    logits = model.predict(np.asarray(images, np.float32), batch_size=batch_size, verbose=0)
    return float(np.mean(np.argmax(logits, -1) == np.asarray(labels)))


def save_digit_classifier(model: keras.Model, directory: str, eval_accuracy: float) -> None:
    """<directory>/digit_classifier.keras and, beside it, digit_classifier.json."""
    os.makedirs(directory, exist_ok=True)
    model.save(os.path.join(directory, _MODEL_FILE))
    with open(os.path.join(directory, _INFO_FILE), 'w') as f:
        json.dump(
            {
                'name': DIGIT_CLASSIFIER_NAME,
                'eval_accuracy': eval_accuracy,
                'feature_dim': model.get_layer('features').units,
            },
            f,
            indent=2,
        )


def digit_classifier_features(model: keras.Model, info: dict | None = None) -> FeatureNetwork:
    extractor = keras.Model(model.input, model.get_layer('features').output)

    def preprocess(images):
        _check_mnist(images)
        return images

    return FeatureNetwork(DIGIT_CLASSIFIER_NAME, extractor, preprocess, info)


def load_digit_classifier(directory: str) -> FeatureNetwork:
    model_path, info_path = (os.path.join(directory, f) for f in (_MODEL_FILE, _INFO_FILE))
    for path in (model_path, info_path):
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f'{path}: missing; save a trained classifier there with save_digit_classifier()'
            )
    with open(info_path) as f:
        info = json.load(f)
    return digit_classifier_features(keras.saving.load_model(model_path), info)


# --- Inception-v3 ------------------------------------------------------------------------------


def _inception_input(images: tf.Tensor) -> tf.Tensor:
    x = tf.image.resize(images, (INCEPTION_SIZE, INCEPTION_SIZE), method='bilinear')
    if x.shape[-1] == 1:
        x = tf.image.grayscale_to_rgb(x)
    return x * 2 - 1  # Inception's scaling ([0, 255] -> [-1, 1] in keras' preprocess_input).


def load_inception_v3(weights_path: str) -> FeatureNetwork:
    """Inception-v3 pool3 features (2048-d) with weights from a local file (nothing downloads)."""
    if not weights_path or not os.path.isfile(weights_path):
        raise FileNotFoundError(
            f"{weights_path}: Inception-v3 weights file not found. Copy Keras' "
            f'{INCEPTION_WEIGHTS_FILE} here from a machine with internet access, where '
            "`keras.applications.InceptionV3(include_top=False, weights='imagenet')` saves it to "
            '~/.keras/models/.'
        )
    try:
        model = keras.applications.InceptionV3(
            include_top=False,
            pooling='avg',
            weights=weights_path,
            input_shape=(INCEPTION_SIZE, INCEPTION_SIZE, 3),
        )
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(
            f'{weights_path}: not Inception-v3 weights without the top layer '
            f'(expected a file like {INCEPTION_WEIGHTS_FILE}): {e}'
        ) from e
    return FeatureNetwork(
        INCEPTION_V3_NAME, model, _inception_input, {'weights': os.path.abspath(weights_path)}
    )
