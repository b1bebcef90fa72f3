"""Reading Transform's output: the Trainer's tf.data input (float images in [0, 1], with NVAE's
per-step randomness, dynamic binarization and random flip, where it belongs) and whole splits in
memory for the Evaluator and the digit classifier."""

import glob
import os

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from tfx_bsl.public import tfxio

from nvae_tfx import datasets
from nvae_tfx.data import records
from nvae_tfx.options import TrainingOptions


def to_model_images(images: tf.Tensor) -> tf.Tensor:
    """Transformed pixels (MNIST float [0, 1]; CelebA uint8 values or float) -> float32 [0, 1]."""
    images = tf.convert_to_tensor(images)
    if images.dtype.is_integer:
        return tf.cast(images, tf.float32) / 255.0
    return tf.cast(images, tf.float32)


def image_dataset(
    data_accessor,
    file_pattern,
    tft_output,
    options: TrainingOptions,
    training: bool,
    batch_size: int | None = None,
) -> tf.data.Dataset:
    """Endless batches (of options.batch_size unless given) of model-ready images, with the
    per-step randomness of options' dataset, from transformed examples read through TFX's data
    accessor (which picks the reader matching the artifact's payload and file format)."""
    reading = tfxio.TensorFlowDatasetOptions(
        batch_size=batch_size or options.batch_size,
        shuffle=training,
        drop_final_batch=training,
    )
    ds = data_accessor.tf_dataset_factory(
        file_pattern, reading, tft_output.transformed_metadata.schema
    )
    # Multi-worker training shards by element, not by file: it works with any number of files
    # (Transform may write one) and makes the global batches those of single-worker training.
    sharding = tf.data.Options()
    sharding.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    ds = ds.with_options(sharding)
    return ds.map(
        lambda f: datasets.per_step(
            to_model_images(f[records.IMAGE]), options.dataset, options.binarization, training
        ),
        num_parallel_calls=tf.data.AUTOTUNE,
    ).prefetch(tf.data.AUTOTUNE)


def transformed_batches(
    examples_uri: str, transform_graph_uri: str, split: str, limit: int = 0, batch_size: int = 1024
):
    """Batches {feature: np.ndarray} of one split of Transform's materialised output, in file
    order, at most `limit` examples (0: all): a split that does not fit in memory streams."""
    spec = tft.TFTransformOutput(transform_graph_uri).transformed_feature_spec()
    files = sorted(glob.glob(os.path.join(examples_uri, f'Split-{split}', '*')))
    if not files:
        raise FileNotFoundError(f'{examples_uri}/Split-{split}: no transformed examples')
    ds = tf.data.TFRecordDataset(files, compression_type='GZIP')
    if limit:
        ds = ds.take(limit)
    ds = ds.batch(batch_size).map(lambda r: tf.io.parse_example(r, spec))
    yield from ds.as_numpy_iterator()


def read_transformed_split(examples_uri: str, transform_graph_uri: str, split: str, limit: int = 0):
    """{feature: np.ndarray} of one split of Transform's materialised output."""
    batches = list(transformed_batches(examples_uri, transform_graph_uri, split, limit))
    return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
