"""Where the Trainer trains (nvae_tfx/training/runtime.py): the default strategy on a plain CPU,
MirroredStrategy over a CPU split into logical devices, and mixed precision kept as asked with a
warning on the CPU. The Trainer's run_fn on two replicas end to end is
tests/extended/test_mirrored_training.py (extended)."""

import logging
import os

import pytest
import tensorflow as tf

from nvae_tfx.training import runtime
from tests.support.backends import run_json_under_backend

TWO_LOGICAL_CPUS = """
import json
import pytest
import tensorflow as tf
cpu = tf.config.list_physical_devices('CPU')[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from nvae_tfx.training import runtime
strategy = runtime.configure('mixed_bfloat16')

# The model's BatchNorm on the two replicas, one holding zeros and the other twos: synchronized,
# each normalises by the global batch's statistics (mean 1, variance 1); else by its own.
from model_code.layers import BatchNorm
x = strategy.experimental_distribute_values_from_function(
    lambda ctx: tf.fill([2, 4, 4, 3], 2.0 * ctx.replica_id_in_sync_group))
means = {}
for synchronized in (True, False):
    with strategy.scope():
        bn = BatchNorm(3)
    bn.synchronized = synchronized
    out = tf.function(lambda x: strategy.run(lambda t: bn(t, training=True), args=(x,)))(x)
    per_replica = strategy.experimental_local_results(out)
    means[str(synchronized)] = [float(tf.reduce_mean(t)) for t in per_replica]
print(json.dumps({'strategy': type(strategy).__name__,
                  'replicas': strategy.num_replicas_in_sync,
                  'devices': list(strategy.extended.worker_devices),
                  'batch_norm_means': means}))
"""


def test_plain_cpu_keeps_the_default_strategy_and_the_precision_asked_for(caplog):
    with caplog.at_level(logging.INFO):
        strategy = runtime.configure('float32')
        assert strategy is tf.distribute.get_strategy()  # the default, as before
        assert strategy.num_replicas_in_sync == 1
        runtime.configure('mixed_float16')
    messages = [r.getMessage() for r in caplog.records]
    cores = f'CPU ({os.cpu_count()} cores)'
    assert f'Training on {cores} with the default strategy, 1 replica(s), precision float32' in (
        messages
    )
    assert (
        f'Training on {cores} with the default strategy, 1 replica(s), precision mixed_float16'
        in messages
    )
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith('Training in mixed_float16 on the CPU, as asked')


def test_several_logical_cpus_train_with_mirrored_strategy_and_synchronized_batch_norm():
    result = run_json_under_backend(TWO_LOGICAL_CPUS, 'tensorflow')
    means = result.pop('batch_norm_means')
    assert means['True'] == pytest.approx([-1.0, 1.0], abs=1e-3)  # the global statistics
    assert means['False'] == pytest.approx([0.0, 0.0], abs=1e-3)  # each replica's own
    assert result == {
        'strategy': 'MirroredStrategy',
        'replicas': 2,
        'devices': [
            '/job:localhost/replica:0/task:0/device:CPU:0',
            '/job:localhost/replica:0/task:0/device:CPU:1',
        ],
    }
