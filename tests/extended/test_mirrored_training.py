"""Several replicas in one process: the Trainer's run_fn under MirroredStrategy on a CPU split
into two logical devices (tests/support/mirrored_worker.py), against one device training on the
same global batches (the worker and settings of tests/support/training_workers.py; the data
and the one-device run, shared with the multi-worker test, of tests/extended/conftest.py). make
test checks the strategy choice (tests/unit/test_training_devices.py).
"""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from nvae_tfx.evaluation import generative_metrics
from nvae_tfx.training import export
from tests.support.training_workers import (
    CONFIG,
    STEPS,
    assert_trained_as_one_device,
    finish,
    start_worker,
    weights,
)


@pytest.fixture(scope='module')
def runs(transformed, single_run):
    mirrored_dir = transformed[2] / 'mirrored'
    os.makedirs(mirrored_dir)
    mirrored = start_worker(transformed, mirrored_dir, module='tests.support.mirrored_worker')
    mirrored_log = finish(mirrored, timeout_s=3600)
    return *single_run, mirrored_dir, mirrored_log


def test_replicas_split_the_global_batch_with_synchronized_batch_norm(runs):
    _, _, mirrored_dir, log = runs
    assert 'Training on /device:CPU:0, /device:CPU:1 with MirroredStrategy, 2 replica(s)' in log
    with open(mirrored_dir / 'replicas.json') as f:
        record = json.load(f)
    assert record['replicas'] == 2 and len(record['devices']) == 2
    # Each replica's train_step sees half the global batch (traced once per replica at least).
    assert len(record['train_step_batches']) >= 2
    assert set(record['train_step_batches']) == {CONFIG['batch_size'] // 2}
    assert record['sync_batch_norm'] and all(record['synchronized_batch_norms'])


def test_matches_one_device_training_on_the_same_global_batches(runs):
    """Same initial weights and global batches, gradients averaged over the replicas and
    BatchNorm statistics over the global batch: only the latent noise each replica draws differs
    from one device's, so the weights agree closely."""
    single_dir, single_log, mirrored_dir, _ = runs
    assert 'Training on CPU' in single_log and 'the default strategy, 1 replica(s)' in single_log
    assert_trained_as_one_device(single_dir, mirrored_dir / 'weights-single-0.npz')
    with open(mirrored_dir / 'model_run' / 'single-0' / 'training_summary.json') as f:
        assert json.load(f)['steps'] == STEPS


def test_exported_single_device_model_samples_as_evaluated(runs):
    _, _, mirrored_dir, _ = runs
    model_uri = str(mirrored_dir / 'model')
    evaluated = keras.saving.load_model(export.keras_model_path(model_uri))
    assert not evaluated.config.sync_batch_norm  # a plain single-device model
    trained = weights(mirrored_dir / 'weights-single-0.npz')
    assert all(
        np.array_equal(np.asarray(v.numpy()), w)
        for v, w in zip(evaluated.trainable_variables, trained, strict=True)
    )
    num, temperature, seed = 4, 1.0, 5
    expected = generative_metrics.samples(evaluated, num, temperature, num, seed)
    served = tf.saved_model.load(os.path.join(model_uri, 'Format-Serving'))
    images = served.signatures['sample'](
        num=tf.constant(num), temperature=tf.constant(temperature), seed=tf.constant(seed)
    )['images'].numpy()
    np.testing.assert_allclose(images, expected, atol=1e-6)
