"""Reading Transform's output: the Trainer's tf.data input (float images in [0, 1], with NVAE's
per-step randomness, dynamic binarization and random flip, where it belongs; for training a
stream that a resumed Trainer continues) and whole splits in memory for the Evaluator and the
digit classifier."""

import hashlib

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


SHUFFLE_BUFFER = 10_000  # examples held by the training stream's shuffle


def _examples(data_accessor, file_pattern, tft_output, **reading) -> tf.data.Dataset:
    """Transformed examples through TFX's data accessor (which picks the reader matching the
    artifact's payload and file format)."""
    return data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(**reading),
        tft_output.transformed_metadata.schema,
    )


def _sharded_by_element(ds: tf.data.Dataset) -> tf.data.Dataset:
    # Multi-worker training shards by element, not by file: it works with any number of files
    # (Transform may write one) and makes the global batches those of single-worker training.
    sharding = tf.data.Options()
    sharding.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(sharding)


def validation_images(
    data_accessor, file_pattern, tft_output, options: TrainingOptions, count: int, seed: int
) -> np.ndarray:
    """The first `count` evaluation images in file order (all of them if there are fewer), with
    one seeded draw of the evaluation randomness (MNIST with dynamic binarization: one
    binarization): the same images every epoch and in a resumed run, so validation losses are
    comparable from epoch to epoch and a resumed run's equal an uninterrupted one's."""
    ds = _examples(
        data_accessor, file_pattern, tft_output, batch_size=1024, shuffle=False, num_epochs=1
    )
    images, held = [], 0
    for batch in ds:
        if held >= count:
            break
        images.append(to_model_images(batch[records.IMAGE]).numpy())
        held += len(images[-1])
    images = np.concatenate(images)[:count]
    if options.dataset == 'mnist' and options.binarization == 'dynamic':
        images = datasets.fixed_binarize(images, seed)
    return images


def training_stream(
    data_accessor, file_pattern, tft_output, options: TrainingOptions, seed: int, first_batch=0
) -> tf.data.Dataset:
    """Endless training batches of options.batch_size, from the stream's first_batch-th on.

    The stream is a function of the seed alone: in data epoch e the split's read blocks (1,024
    examples in file order) are each permuted with a key made of (seed, e, block), then mixed by
    a shuffle buffer, and the image at position i of the epoch gets its per-step randomness
    (datasets.per_example) from the key (seed, e, i). So the batches from first_batch on are
    those an uninterrupted run reads there; a resumed run skips the epochs it finished without
    reading them, and the examples it consumed in the current one before any pixel work.
    The buffer's own seed is fixed (with a global seed set, tf.data takes only Python seeds, and
    the Trainer always sets config.seed): the stateless block permutation is what changes the
    order from epoch to epoch.
    """
    blocks = _examples(
        data_accessor, file_pattern, tft_output, batch_size=1024, shuffle=False, num_epochs=1
    ).map(lambda f: to_model_images(f[records.IMAGE]))
    consumed = first_batch * options.batch_size
    if consumed:
        epoch_size = int(
            blocks.reduce(tf.constant(0, tf.int64), lambda n, b: n + tf.shape(b, tf.int64)[0])
        )
        start_epoch, offset = divmod(consumed, epoch_size)
    else:
        start_epoch, offset = 0, 0
    fold_in = tf.random.experimental.stateless_fold_in

    def epoch(e):
        key = tf.stack([tf.constant(seed, tf.int64), e])
        order = blocks.enumerate().map(
            lambda b, images: tf.random.experimental.stateless_shuffle(images, fold_in(key, b))
        )
        order = order.unbatch().shuffle(SHUFFLE_BUFFER, seed=seed).enumerate()
        order = order.skip(tf.where(e == start_epoch, tf.constant(offset, tf.int64), 0))
        return order.map(
            lambda i, image: datasets.per_example(
                image, options.dataset, options.binarization, fold_in(key, i)
            ),
            num_parallel_calls=tf.data.AUTOTUNE,
        )

    ds = tf.data.Dataset.range(start_epoch, tf.int64.max).flat_map(epoch)
    ds = ds.batch(options.batch_size, drop_remainder=True)
    return _sharded_by_element(ds).prefetch(tf.data.AUTOTUNE)


def transformed_batches(
    examples_uri: str, transform_graph_uri: str, split: str, limit: int = 0, batch_size: int = 1024
):
    """Batches {feature: np.ndarray} of one split of Transform's materialised output, in file
    order, at most `limit` examples (0: all): a split that does not fit in memory streams."""
    spec = tft.TFTransformOutput(transform_graph_uri).transformed_feature_spec()
    files = sorted(tf.io.gfile.glob(f'{examples_uri.rstrip("/")}/Split-{split}/*'))
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


def content_fingerprint(file_patterns) -> str:
    """The examples of these files as a set, hashed: equal for the same data however Transform
    split it into files and ordered it (multi-process Beam writes a rerun's records into other
    shards), different for any example changed, added or removed. Each tf.Example is hashed in
    its deterministic serialization: a rerun may write the same features in another order."""
    files = sorted(f for pattern in file_patterns for f in tf.io.gfile.glob(pattern))
    total, count = 0, 0
    for compression in ('GZIP', ''):
        chosen = [f for f in files if f.endswith('.gz') == (compression == 'GZIP')]
        if not chosen:
            continue
        batches = tf.data.TFRecordDataset(chosen, compression_type=compression).batch(4096)
        for batch in batches.as_numpy_iterator():
            for record in batch:
                canonical = tf.train.Example.FromString(record).SerializeToString(
                    deterministic=True
                )
                digest = hashlib.blake2b(canonical, digest_size=8).digest()
                total = (total + int.from_bytes(digest, 'little')) % 2**64
            count += len(batch)
    return f'{count}:{total:016x}'
