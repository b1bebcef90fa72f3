"""Where the Trainer trains (nvae_tfx/training/runtime.py): the default strategy on a plain CPU,
MirroredStrategy over a CPU split into logical devices, MultiWorkerMirroredStrategy for a cluster
of workers, and mixed precision kept as asked with a warning on the CPU. The Trainer's run_fn on
two replicas and on two workers end to end is tests/extended/test_mirrored_training.py and
tests/extended/test_multi_worker_training.py (extended)."""

import json
import logging
import os
import subprocess
import sys

import pytest
import tensorflow as tf

from nvae_tfx.training import runtime
from pipeline import configs
from tests.support.backends import run_json_under_backend
from tests.support.training_workers import free_ports

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
    with caplog.at_level(logging.INFO, logger='absl'):
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


# A worker of a two-worker cluster as the Trainer starts one: the strategy is the first thing that
# touches TensorFlow's runtime (collective ops are configured at its start), then every worker
# meets the others, as they do once the chief has exported.
CLUSTER_WORKER = """
import json
import tensorflow as tf
from nvae_tfx.training import runtime
strategy = runtime.configure('float32')
runtime.wait_for_all_workers(strategy)
print(json.dumps({'multi_worker': isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy),
                  'replicas': strategy.num_replicas_in_sync, 'chief': runtime.is_chief()}))
"""


def test_a_cluster_of_workers_starts_multi_worker_mirrored_strategy_and_meets():
    cluster = {'worker': [f'localhost:{port}' for port in free_ports(2)]}
    workers = [
        subprocess.Popen(
            [sys.executable, '-c', CLUSTER_WORKER],
            env={
                **os.environ,
                'TF_CPP_MIN_LOG_LEVEL': '3',
                'PYTHONPATH': configs.PROJECT_ROOT,
                'TF_CONFIG': json.dumps(
                    {'cluster': cluster, 'task': {'type': 'worker', 'index': index}}
                ),
            },
            cwd=configs.PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in range(2)
    ]
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert results == [
        {'multi_worker': True, 'replicas': 2, 'chief': chief} for chief in (True, False)
    ]
