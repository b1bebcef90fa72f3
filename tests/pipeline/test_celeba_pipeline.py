"""CelebA through the whole pipeline with the tiny preset: colour NVAE (discretized logistic
mixture), scored on the test partition, FID and precision/recall on Inception-v3 features from
a user-given weights file, blessed and pushed."""

import json
import os

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from nvae_tfx.data import synthetic
from nvae_tfx.evaluation import feature_networks
from nvae_tfx.options import EvaluationOptions, SourceOptions, TrainingOptions, TransformOptions
from tests.support.pipeline_helpers import run_outputs, run_pipeline

SIZE = 32


@pytest.fixture(scope='module')
def outputs(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp('celeba')
    synthetic.write_celeba_dir(str(tmp_path / 'celeba'), counts=(24, 8, 8))
    # Random Inception-v3 weights in the layout of the file users download: the metric path is
    # under test, not the features' quality.
    from keras.src.legacy.saving import legacy_h5_format

    inception = keras.applications.InceptionV3(
        include_top=False, pooling='avg', weights=None, input_shape=(299, 299, 3)
    )
    weights = str(tmp_path / feature_networks.INCEPTION_WEIGHTS_FILE)
    with h5py.File(weights, 'w') as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, inception)
    training = TrainingOptions(
        dataset='celeba',
        preset='tiny',
        train_steps=6,
        batch_size=4,
        steps_per_epoch=3,
        eval_steps=1,
        checkpoint_every_steps=0,
        jit_compile='false',
        readjust_bn_passes=1,
    )
    evaluation = EvaluationOptions(
        eval_split='test',
        eval_examples=8,
        iw_samples=2,
        fid_samples=12,
        inception_weights=weights,
    )
    metadata = run_pipeline(
        tmp_path,
        SourceOptions(dataset='celeba', source='dir', data_dir=str(tmp_path / 'celeba')),
        transform=TransformOptions(dataset='celeba', image_size=SIZE),
        training=training,
        evaluation=evaluation,
    )
    return run_outputs(metadata)


def test_colour_model_is_trained_scored_on_test_and_pushed(outputs):
    assert all(state == 'COMPLETE' for state, _ in outputs.values())
    assert 'DigitClassifierTrainer' not in outputs  # MNIST only
    evaluation = outputs['GenerativeEvaluator'][1]['evaluation'][0]
    with open(os.path.join(evaluation.uri, 'metrics.json')) as f:
        metrics = json.load(f)['metrics']
    assert metrics['num_eval_examples'] == 8  # the test partition holds 8 images
    assert np.isfinite(
        [
            metrics['nll_nats'],
            metrics['fid_inception_v3'],
            metrics['precision_inception_v3'],
            metrics['recall_inception_v3'],
        ]
    ).all()
    # bits/dim over all 3*H*W sub-pixels of the discretized likelihood
    np.testing.assert_allclose(
        metrics['nll_bits_per_dim'], metrics['nll_nats'] / (np.log(2) * 3 * SIZE * SIZE), rtol=1e-6
    )
    assert not any('mnist' in key for key in metrics)
    blessing = outputs['GenerativeEvaluator'][1]['blessing'][0]
    assert blessing.custom_properties['blessed'].int_value == 1
    pushed = outputs['Pusher'][1]['pushed_model'][0]
    assert pushed.custom_properties['pushed'].int_value == 1

    grid = np.asarray(Image.open(os.path.join(evaluation.uri, 'samples.png')))
    assert grid.ndim == 3 and grid.shape[2] == 3
    serving = tf.saved_model.load(
        os.path.join(outputs['Trainer'][1]['model'][0].uri, 'Format-Serving')
    )
    images = serving.signatures['sample'](
        num=tf.constant(3), temperature=tf.constant(1.0), seed=tf.constant(0)
    )['images'].numpy()
    assert images.shape == (3, SIZE, SIZE, 3)
    assert images.min() >= 0 and images.max() <= 1
