"""Trainer workers in processes of their own (tests/support/trainer_worker.py,
tests/support/mirrored_worker.py) on the same transformed digits and settings, and what they
leave: the multi-worker and mirrored training tests (tests/extended), the cluster start
(tests/unit/test_training_devices.py)."""

import json
import os
import socket
import subprocess
import sys

import numpy as np

from nvae_tfx.data import synthetic
from nvae_tfx.options import SourceOptions, TrainingOptions
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


def transform_digits(tmp_path):
    """(transformed examples uri, transform graph uri, tmp_path) of 64 IDX digits' data half."""
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


def assert_trained_as_one_device(single_dir, other_weights):
    """Weights (a worker's .npz) that agree closely with one device's on the same global batches:
    only the latent noise each replica draws differs (a different seed moves them by ~0.1 on
    average)."""
    single = weights(single_dir / 'weights-single-0.npz')
    differences = [np.abs(a - b) for a, b in zip(single, weights(other_weights), strict=True)]
    assert np.mean([d.mean() for d in differences]) < 0.005
    assert max(d.max() for d in differences) < 0.1
