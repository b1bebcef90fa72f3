"""Where training runs: the tf.distribute strategy, GPU memory growth, CPU threads, precision."""
import json
import os

import keras
import tensorflow as tf
from absl import logging


def configure(mixed_precision: str = 'float32') -> tf.distribute.Strategy:
  """Returns the strategy for the visible devices and sets the global precision policy.

  Multi-worker (TF_CONFIG with several workers) -> MultiWorkerMirroredStrategy; several GPUs ->
  MirroredStrategy; one GPU -> OneDeviceStrategy on it; CPU -> the default strategy with one
  inter-op thread per core (NVAE's many small convolutions gain nothing from more).
  """
  gpus = tf.config.list_physical_devices('GPU')
  for gpu in gpus:
    try:
      tf.config.experimental.set_memory_growth(gpu, True)
    except RuntimeError:  # already initialised in this process: growth was set then
      pass
  if _num_workers() > 1:
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
  elif len(gpus) > 1:
    strategy = tf.distribute.MirroredStrategy()
  elif gpus:
    strategy = tf.distribute.OneDeviceStrategy('/gpu:0')
  else:
    strategy = tf.distribute.get_strategy()
  if mixed_precision != 'float32' and not gpus:
    logging.warning('Mixed precision %s requested without a GPU; training in float32.',
                    mixed_precision)
    mixed_precision = 'float32'
  keras.mixed_precision.set_global_policy(mixed_precision)
  devices = ', '.join(d.name for d in tf.config.list_logical_devices() if d.device_type != 'CPU'
                      ) or f'CPU ({os.cpu_count()} cores)'
  logging.info('Training on %s with %s, %d replica(s), precision %s', devices,
               type(strategy).__name__, strategy.num_replicas_in_sync, mixed_precision)
  return strategy


def _num_workers() -> int:
  cluster = json.loads(os.environ.get('TF_CONFIG', '{}')).get('cluster', {})
  return len(cluster.get('worker', [])) + len(cluster.get('chief', []))


def is_chief() -> bool:
  """Only the chief exports: the task is chief, or worker 0 when there is no chief."""
  config = json.loads(os.environ.get('TF_CONFIG', '{}'))
  task = config.get('task', {})
  if not task:
    return True
  if 'chief' in config.get('cluster', {}):
    return task.get('type') == 'chief'
  return task.get('type') == 'worker' and task.get('index', 0) == 0
