"""The tiny preset's training without TFX: options, model and an endless digits stream, for the
Trainer loop's tests."""

import numpy as np
import tensorflow as tf

from nvae_tfx.options import TrainingOptions
from nvae_tfx.training import loop

STEPS_PER_EPOCH = 5


def tiny(train_steps, **options):
    """The tiny preset's training options on 32x32 digits, batches of 8, resolved."""
    return TrainingOptions(
        preset='tiny',
        train_steps=train_steps,
        batch_size=8,
        steps_per_epoch=STEPS_PER_EPOCH,
        jit_compile='false',
        **options,
    ).resolved()


def tiny_model(options):
    return loop.build_model(options.model_config(image_size=32), options.jit_compile)


def from_start(ds):
    """A training stream for loop.train from an endless dataset: batch b is its b-th element."""
    return lambda first_batch: ds.skip(first_batch)


def digits_dataset(nan_from_batch=None):
    x = (np.random.RandomState(0).rand(64, 32, 32, 1) < 0.3).astype(np.float32)
    ds = tf.data.Dataset.from_tensor_slices(x).repeat().batch(8)
    if nan_from_batch is None:
        return ds
    # Every batch from nan_from_batch on holds a NaN pixel: its loss and gradients are NaN.
    return ds.enumerate().map(
        lambda i, b: tf.where(
            i >= nan_from_batch, tf.tensor_scatter_nd_update(b, [[0, 16, 16, 0]], [np.nan]), b
        )
    )
