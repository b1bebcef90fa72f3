"""The tiny pipeline on the embedded digits, trained in mixed precision on the CPU: the Trainer
trains in the precision asked for (not float32 in its place), exports a SavedModel whose outputs
are float32 and finite, records the precision in the model's configuration, and the Evaluator
scores it and Pusher pushes it.

mixed_float16 runs the whole pipeline, mixed_bfloat16 again on the same pipeline root
(everything before the Trainer cached). make test covers the model's side of each policy
(tests/unit/test_mixed_precision_model.py, tests/unit/test_model_training.py).
"""

import dataclasses
import json
import math
import os
import zipfile

import numpy as np
import pytest
import tensorflow as tf

from nvae_tfx.options import EvaluationOptions, SourceOptions, TrainingOptions
from nvae_tfx.training import export
from tests.support.pipeline_helpers import run_outputs, run_pipeline

STEPS = 6
TINY = TrainingOptions(
    preset='tiny',
    train_steps=STEPS,
    batch_size=8,
    steps_per_epoch=STEPS,
    eval_steps=1,
    checkpoint_every_steps=STEPS,
    jit_compile='false',
    readjust_bn_passes=2,
)
# Each precision's model is blessed on its own merit: the second run's baseline is the first's.
EVAL = EvaluationOptions(
    eval_examples=40,
    iw_samples=3,
    fid_samples=60,
    digit_classifier_epochs=1,
    nll_tolerance=1e6,
    fid_tolerance=1e6,
)


@pytest.fixture(scope='module')
def pipeline_root(tmp_path_factory):
    return tmp_path_factory.mktemp('mixed_precision')


def run(pipeline_root, precision):
    training = dataclasses.replace(TINY, mixed_precision=precision)
    return run_outputs(
        run_pipeline(pipeline_root, SourceOptions(), training=training, evaluation=EVAL)
    )


def prop(artifact, key):
    value = artifact.custom_properties[key]
    return getattr(value, value.WhichOneof('value'))


def check_trained_evaluated_and_pushed(outputs, precision):
    model = outputs['Trainer'][1]['model'][0]
    model_run = outputs['Trainer'][1]['model_run'][0]
    with open(os.path.join(model_run.uri, 'training_summary.json')) as f:
        summary = json.load(f)
    assert summary['steps'] == STEPS
    assert all(math.isfinite(v) for v in summary['final'].values())

    # The model's own record of the precision that trained it.
    with zipfile.ZipFile(export.keras_model_path(model.uri)) as keras_file:
        config = json.loads(keras_file.read('config.json'))['config']['config']
    assert config['mixed_precision'] == precision

    serving = tf.saved_model.load(os.path.join(model.uri, 'Format-Serving'))
    images = serving.signatures['sample'](
        num=tf.constant(4), temperature=tf.constant(1.0), seed=tf.constant(0)
    )['images']
    reconstructions = serving.signatures['reconstruct'](images=tf.round(images))['images']
    nats = serving.signatures['log_likelihood_images'](
        images=tf.round(images), num_samples=tf.constant(2)
    )['log_likelihood']
    for output, shape in ((images, [4, 32, 32, 1]), (reconstructions, [4, 32, 32, 1])):
        assert output.dtype == tf.float32 and output.shape.as_list() == shape
        assert np.all((output.numpy() >= 0.0) & (output.numpy() <= 1.0))
    assert nats.dtype == tf.float32 and nats.shape.as_list() == [4]
    assert np.all(np.isfinite(nats.numpy())) and np.all(nats.numpy() < 0.0)

    evaluation = outputs['GenerativeEvaluator'][1]['evaluation'][0]
    for name in ('nll_nats', 'neg_elbo_nats', 'fid_mnist_classifier'):
        assert math.isfinite(prop(evaluation, name)), name
    blessing = outputs['GenerativeEvaluator'][1]['blessing'][0]
    assert prop(blessing, 'blessed') == 1, prop(blessing, 'reasons')
    assert prop(blessing, 'current_model_id') == model.id
    pushed = outputs['Pusher'][1]['pushed_model'][0]
    assert prop(pushed, 'pushed') == 1
    assert os.path.isfile(os.path.join(prop(pushed, 'pushed_destination'), 'saved_model.pb'))


@pytest.fixture(scope='module')
def float16_run(pipeline_root):
    return run(pipeline_root, 'mixed_float16')


def test_float16_trains_exports_float32_evaluates_and_pushes(float16_run):
    assert float16_run['Trainer'][0] == 'COMPLETE'
    check_trained_evaluated_and_pushed(float16_run, 'mixed_float16')


def test_bfloat16_trains_exports_float32_evaluates_and_pushes(pipeline_root, float16_run):
    outputs = run(pipeline_root, 'mixed_bfloat16')
    cached = {'ImageExampleGen', 'StatisticsGen', 'Transform', 'DigitClassifierTrainer'}
    assert {node for node in cached if outputs[node][0] == 'CACHED'} == cached
    assert outputs['Trainer'][0] == 'COMPLETE'
    check_trained_evaluated_and_pushed(outputs, 'mixed_bfloat16')
