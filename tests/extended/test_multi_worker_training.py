"""Multi-worker training: two local CPU workers on loopback run TFX's Trainer executor with the
project's run_fn (tests/support/trainer_worker.py) under MultiWorkerMirroredStrategy from TF_CONFIG,
and are compared with one worker training on the same global batch."""

import json
import os
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest

from nvae_tfx.data import synthetic
from nvae_tfx.options import SourceOptions, TrainingOptions
from nvae_tfx.training import export
from tests.support.pipeline_helpers import run_outputs, run_pipeline

STEPS = 6
CONFIG = (
    TrainingOptions(
        preset='tiny',
        batch_size=8,
        steps_per_epoch=3,
        checkpoint_every_steps=2,
        jit_compile='false',
    )
    .resolved()
    .to_custom_config()
)


@pytest.fixture(scope='module')
def transformed(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp('multi_worker')
    synthetic.write_mnist_idx(str(tmp_path / 'mnist'), n_train=64, n_test=16)
    outputs = run_outputs(
        run_pipeline(
            tmp_path, SourceOptions(source='idx', data_dir=str(tmp_path / 'mnist')).resolved()
        )
    )
    return (
        outputs['Transform'][1]['transformed_examples'][0].uri,
        outputs['Transform'][1]['transform_graph'][0].uri,
        tmp_path,
    )


def start_worker(transformed, output_dir, tf_config=None, module='tests.support.trainer_worker'):
    examples, graph, _ = transformed
    env = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2'}
    env.pop('TF_CONFIG', None)
    if tf_config:
        env['TF_CONFIG'] = json.dumps(tf_config)
    return subprocess.Popen(
        [
            sys.executable,
            '-m',
            module,
            examples,
            graph,
            str(output_dir),
            str(STEPS),
            json.dumps(CONFIG),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(process, timeout_s=900):
    log, _ = process.communicate(timeout=timeout_s)
    assert process.returncode == 0, log[-4000:]
    return log


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(('localhost', 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def weights(path):
    saved = np.load(path)
    return [saved[f'arr_{i}'] for i in range(len(saved.files))]


@pytest.fixture(scope='module')
def runs(transformed):
    tmp_path = transformed[2]
    single_dir, multi_dir = tmp_path / 'single', tmp_path / 'multi'
    os.makedirs(multi_dir)
    single_log = finish(start_worker(transformed, single_dir))
    cluster = {'worker': [f'localhost:{port}' for port in free_ports(2)]}
    workers = [
        start_worker(
            transformed, multi_dir, {'cluster': cluster, 'task': {'type': 'worker', 'index': i}}
        )
        for i in range(2)
    ]
    logs = [finish(w) for w in workers]
    return single_dir, single_log, multi_dir, logs


def test_workers_train_in_sync_to_identical_weights(runs):
    _, _, multi_dir, logs = runs
    assert all('MultiWorkerMirroredStrategy, 2 replica(s)' in log for log in logs)
    chief, other = (weights(multi_dir / f'weights-worker-{i}.npz') for i in range(2))
    assert len(chief) == len(other)
    assert all(np.array_equal(a, b) for a, b in zip(chief, other, strict=True))


def test_only_the_chief_writes(runs):
    _, _, multi_dir, _ = runs
    model = keras.saving.load_model(export.keras_model_path(str(multi_dir / 'model')))
    chief = weights(multi_dir / 'weights-worker-0.npz')
    assert all(
        np.array_equal(np.asarray(v.numpy()), w)
        for v, w in zip(model.trainable_variables, chief, strict=True)
    )
    assert not model.config.sync_batch_norm  # a plain single-device model for serving
    assert os.path.isfile(multi_dir / 'model' / 'Format-Serving' / 'saved_model.pb')
    run_dirs = multi_dir / 'model_run'
    assert os.path.isfile(run_dirs / 'worker-0' / 'training_summary.json')
    assert not os.path.exists(run_dirs / 'worker-1') or not os.listdir(run_dirs / 'worker-1')


def test_matches_single_worker_training_on_the_same_global_batch(runs):
    """Same initial weights, data and global batches; only the latent noise each replica draws
    differs, so the weights agree closely (a different seed moves them by ~0.1 on average)."""
    single_dir, single_log, multi_dir, _ = runs
    assert 'Training on CPU' in single_log
    single = weights(single_dir / 'weights-single-0.npz')
    multi = weights(multi_dir / 'weights-worker-0.npz')
    differences = [np.abs(a - b) for a, b in zip(single, multi, strict=True)]
    assert np.mean([d.mean() for d in differences]) < 0.005
    assert max(d.max() for d in differences) < 0.1
    with open(single_dir / 'model_run' / 'single-0' / 'training_summary.json') as f:
        assert json.load(f)['steps'] == STEPS
