"""Multi-worker training: two local CPU workers on loopback run TFX's Trainer executor with the
project's run_fn (tests/support/trainer_worker.py) under MultiWorkerMirroredStrategy from TF_CONFIG,
and are compared with one worker training on the same global batch."""

import json
import os

import keras
import numpy as np
import pytest

from nvae_tfx.training import export
from tests.support.training_workers import (
    STEPS,
    assert_trained_as_one_device,
    finish,
    free_ports,
    start_worker,
    weights,
)


@pytest.fixture(scope='module')
def runs(transformed, single_run):
    multi_dir = transformed[2] / 'multi'
    os.makedirs(multi_dir)
    cluster = {'worker': [f'localhost:{port}' for port in free_ports(2)]}
    workers = [
        start_worker(
            transformed, multi_dir, {'cluster': cluster, 'task': {'type': 'worker', 'index': i}}
        )
        for i in range(2)
    ]
    logs = [finish(w) for w in workers]
    return *single_run, multi_dir, logs


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
    """Same initial weights, data and global batches."""
    single_dir, single_log, multi_dir, _ = runs
    assert 'Training on CPU' in single_log
    assert_trained_as_one_device(single_dir, multi_dir / 'weights-worker-0.npz')
    with open(single_dir / 'model_run' / 'single-0' / 'training_summary.json') as f:
        assert json.load(f)['steps'] == STEPS
