"""Where training runs: the tf.distribute strategy, GPU memory growth and precision."""

import json
import os

import tensorflow as tf
from absl import logging


def configure(mixed_precision: str):
    """Returns the strategy for the visible devices and logs it with the precision.

    Multi-worker (TF_CONFIG with several workers) -> MultiWorkerMirroredStrategy; several GPUs ->
    MirroredStrategy; one GPU -> OneDeviceStrategy on it; no GPU -> the default strategy, or
    MirroredStrategy over the CPU's logical devices where the process configured several
    (tf.config.set_logical_device_configuration: several replicas without GPUs, as the tests
    train them). (TF's thread pools are fixed once TF starts, which in LocalDagRunner is before
    the Trainer runs; its defaults, one intra-op thread per core with denormals flushed, are what
    CPU training wants.) The model trains in the precision asked for, on any device.
    """
    gpus = tf.config.list_physical_devices('GPU')
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised in this process: growth was set then
            pass
    # Multi-worker first, before anything starts TensorFlow's runtime (listing logical devices
    # does): collective ops can only be configured at its start.
    if _num_workers() > 1:
        strategy, name = tf.distribute.MultiWorkerMirroredStrategy(), 'MultiWorkerMirroredStrategy'
        _fix_keras_multi_worker_logs()
    elif len(gpus) > 1:
        strategy, name = tf.distribute.MirroredStrategy(), 'MirroredStrategy'
    elif gpus:
        strategy, name = tf.distribute.OneDeviceStrategy('/gpu:0'), 'OneDeviceStrategy'
    elif len(_logical_cpus()) > 1:
        strategy, name = tf.distribute.MirroredStrategy(_logical_cpus()), 'MirroredStrategy'
    else:
        strategy, name = tf.distribute.get_strategy(), 'the default strategy'
    cpus = _logical_cpus()
    if mixed_precision != 'float32' and not gpus:
        logging.warning(
            'Training in %s on the CPU, as asked: most CPUs compute it more slowly than '
            'float32 (mixed precision is for GPUs).',
            mixed_precision,
        )
    accelerators = [d.name for d in tf.config.list_logical_devices() if d.device_type != 'CPU']
    if accelerators or len(cpus) > 1:
        devices = ', '.join(accelerators or cpus)
    else:
        devices = f'CPU ({os.cpu_count()} cores)'
    logging.info(
        'Training on %s with %s, %d replica(s), precision %s',
        devices,
        name,
        strategy.num_replicas_in_sync,
        mixed_precision,
    )
    return strategy


def _tf_config() -> dict:
    return json.loads(os.environ.get('TF_CONFIG', '{}'))


def _logical_cpus() -> list[str]:
    return [d.name for d in tf.config.list_logical_devices('CPU')]


def _num_workers() -> int:
    cluster = _tf_config().get('cluster', {})
    return len(cluster.get('worker', [])) + len(cluster.get('chief', []))


def is_chief() -> bool:
    """Only the chief exports: the task is chief, or worker 0 when there is no chief."""
    config = _tf_config()
    task = config.get('task', {})
    if not task:
        return True
    if 'chief' in config.get('cluster', {}):
        return task.get('type') == 'chief'
    return task.get('type') == 'worker' and task.get('index', 0) == 0


def _fix_keras_multi_worker_logs():
    """Keras 3.12 averages fit()'s per-replica logs across workers with strategy.reduce(MEAN,
    axis=0), which fails on scalars, i.e. on every loss and metric; average them without an axis."""
    from keras.src.backend.tensorflow import trainer as keras_tf_trainer

    original = keras_tf_trainer.reduce_per_replica
    if getattr(original, 'fixed_for_multi_worker', False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ('auto', 'mean') and keras_tf_trainer._collective_all_reduce_multi_worker(
            strategy
        ):
            return tf.nest.map_structure(lambda v: strategy.reduce('MEAN', v, axis=None), values)
        return original(values, strategy, reduction)

    reduce_per_replica.fixed_for_multi_worker = True
    keras_tf_trainer.reduce_per_replica = reduce_per_replica


def wait_for_all_workers(strategy) -> None:
    """Blocks until every worker gets here (e.g. once the chief has exported): a worker that
    exits early fails the others' heartbeat checks."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        strategy.reduce('SUM', strategy.run(lambda: tf.constant(1.0)), axis=None)
