"""How the Evaluator measures sample quality and records it: streamed features equal one-shot
ones, precision/recall on equal numbers of real and generated images, FID on the decoder's mean
images (the mixture's mean for colour), and every count of the protocol beside the metrics."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from model_code.config import get_config
from model_code.nvae import NVAE
from nvae_tfx.evaluation import fid, generative_metrics
from nvae_tfx.evaluation import precision_recall as pr
from nvae_tfx.options import EvaluationOptions
from tests.support.fake_network import FakeNetwork


def test_streamed_features_equal_one_shot_statistics():
    images = np.random.RandomState(1).uniform(size=(103, 4, 4, 1)).astype(np.float32)
    network = FakeNetwork()
    got = generative_metrics.features_by_network([network], np.array_split(images, 7))
    features = network.features(images)
    np.testing.assert_allclose(got['fake'].features, features, rtol=1e-6)
    want = fid.statistics(features)
    assert got['fake'].statistics.count == 103
    np.testing.assert_allclose(got['fake'].statistics.mean, want.mean, rtol=1e-6)
    np.testing.assert_allclose(got['fake'].statistics.covariance, want.covariance, atol=1e-6)


def features_of(points):
    points = np.asarray(points, np.float32)
    return generative_metrics.Features(fid.statistics(points), points)


def test_precision_recall_compare_equal_numbers_fid_uses_all():
    rng = np.random.RandomState(0)
    real, generated = rng.randn(40, 3), rng.randn(500, 3) + 0.5
    metrics = generative_metrics.sample_quality(
        {'fake': features_of(generated)}, {'fake': features_of(real)}, [FakeNetwork()], seed=3
    )
    # All 40 real images against 40 of the 500 generated, chosen with the seed.
    chosen = np.sort(np.random.RandomState(3).choice(500, 40, replace=False))
    expected = pr.precision_recall(real, generated[chosen])
    assert (metrics['precision_fake'], metrics['recall_fake']) == expected
    assert metrics['fid_fake'] == pytest.approx(fid.fid_from_features(real, generated))


class FakeModel:
    """Likelihood and sampling API of NVAE: sample() gives 0.75 for mean images and 0.25 for
    samples, so what was scored can be told apart, and counts draws with the sampling state."""

    def __init__(self):
        self.sampled_with_state = tf.Variable(0)
        self.seed = None

    def negative_elbo(self, x):
        return ops.sum(x, axis=(1, 2, 3))

    def log_likelihood(self, x, num_samples, chunk_size):
        return -ops.sum(x, axis=(1, 2, 3)) - num_samples

    def bits_per_dim(self, nats):
        return nats / 48

    def sampling_settings(self):
        return {'passes': 4, 'batch': 2, 'temperature': 0.5}

    def reseed(self, seed):
        self.seed = seed

    def sample(self, num, temperature, mean_image=False, sampling_state=False):
        self.sampled_with_state.assign_add(int(sampling_state))
        return ops.full((num, 4, 4, 3), 0.75 if mean_image else 0.25)


def test_fid_scores_mean_images_and_the_grid_shows_samples():
    options = EvaluationOptions(iw_samples=3, fid_samples=120, eval_seed=9).resolved()
    real = np.random.RandomState(0).uniform(size=(30, 4, 4, 3)).astype(np.float32)
    network = FakeNetwork()
    reference = generative_metrics.features_by_network([network], [real[:16], real[16:]])
    network.seen.clear()
    model = FakeModel()
    metrics, grids = generative_metrics.evaluate(
        model, real[:10], reference, [network], options, batch_size=50
    )
    [grid] = grids.values()
    assert metrics['nll_nats'] == pytest.approx(np.mean(real[:10].sum((1, 2, 3))) + 3)
    # Every batch drawn with the model's sampling state, from the seed; its settings recorded.
    assert int(model.sampled_with_state.numpy()) == 3 + 2 and model.seed == 9
    assert (
        metrics['readjust_bn_passes'],
        metrics['readjust_bn_batch'],
        metrics['readjust_bn_temperature'],
    ) == (4, 2, 0.5)
    generated = np.concatenate(network.seen)
    assert generated.shape == (120, 4, 4, 3) and np.all(generated == 0.75)
    assert grid.shape == (generative_metrics.GRID_SAMPLES, 4, 4, 3) and np.all(grid == 0.25)
    assert {'fid_fake', 'precision_fake', 'recall_fake'} <= set(metrics)


def test_sample_quality_at_further_temperatures_after_readjusting_there():
    """FID, precision/recall and a grid at each further temperature, each after BatchNorm
    readjustment there; the model's own sampling state is back as it was afterwards."""
    from model_code.config import get_config
    from model_code.nvae import NVAE

    keras.utils.set_random_seed(0)
    model = NVAE(get_config('tiny'))
    model.readjust_bn(num_passes=2, batch_size=2, temperature=1.0)
    state = [keras.ops.convert_to_numpy(v) for v in model.sampling_state_variables()]
    options = EvaluationOptions(
        iw_samples=1, fid_samples=8, sample_temperatures='0.6, 1.0', eval_seed=2
    ).resolved()
    real = np.random.RandomState(0).uniform(size=(8, 32, 32, 1)).astype(np.float32)
    network = FakeNetwork()
    reference = generative_metrics.features_by_network([network], [real])
    metrics, grids = generative_metrics.evaluate(model, real[:2], reference, [network], options)
    assert sorted(grids) == [0.6, 1.0]
    assert not np.allclose(grids[0.6], grids[1.0])
    for name in ('fid_fake', 'precision_fake', 'recall_fake', 'non_finite_samples'):
        assert np.isfinite(metrics[name]) and np.isfinite(metrics[f'{name}_t0.6']), name
    assert metrics['fid_fake'] != metrics['fid_fake_t0.6']
    for variable, value in zip(model.sampling_state_variables(), state, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable), value)
    record = generative_metrics.protocol(options, 'mnist', 2, reference, [network])
    assert record['sample_temperatures'] == '1,0.6'
    with pytest.raises(ValueError, match="comma-separated numbers, got 'warm'"):
        EvaluationOptions(sample_temperatures='0.6,warm')
    with pytest.raises(ValueError, match='must be positive, got 0'):
        EvaluationOptions(sample_temperatures='0')


def test_a_model_without_a_sampling_state_is_refused():
    model = FakeModel()
    model.sampling_settings = lambda: None
    with pytest.raises(ValueError, match='no sampling state'):
        generative_metrics.evaluate(model, np.zeros((2, 4, 4, 3)), {}, [], EvaluationOptions())


def test_protocol_records_what_was_measured_and_how():
    options = EvaluationOptions(eval_protocol='paper', fid_samples=20, eval_seed=5).resolved()
    network = FakeNetwork(
        'mnist_classifier', {'name': 'x', 'eval_accuracy': 0.97, 'feature_dim': 4}
    )
    real = np.random.RandomState(0).uniform(size=(37, 4, 4, 1)).astype(np.float32)
    reference = generative_metrics.features_by_network([network], [real])
    record = generative_metrics.protocol(options, 'mnist', 10_000, reference, [network])
    assert record == {
        'eval_protocol': 'paper',
        'eval_split': 'eval',
        'num_eval_examples': 10_000,
        'num_iw_samples': 1000,
        'sample_temperatures': '1',
        'binarization_seed': 5,
        'sample_temperature': 1.0,
        'samples_png_images': 'mean',
        'fid_num_samples': 20,
        'fid_images': 'mean',
        'fid_reference_split': 'train',
        'fid_reference_examples': 37,  # as many as were read, not the protocol's upper bound
        'precision_recall_samples': 20,
        'precision_recall_k': 3,
        'mnist_classifier_eval_accuracy': 0.97,
        'mnist_classifier_feature_dim': 4,
    }
    colour = generative_metrics.protocol(options, 'celeba', 8, {}, [])
    assert colour['samples_png_images'] == 'sample' and 'binarization_seed' not in colour
    assert not any(key.startswith(('fid', 'precision')) for key in colour)


def test_colour_mean_images_are_the_mixtures_mean():
    keras.utils.set_random_seed(0)
    model = NVAE(get_config('tiny', dataset='celeba', image_size=16))
    distributions = []
    original = model.output_distribution

    def recording(logits):
        distributions.append(original(logits))
        return distributions[-1]

    model.output_distribution = recording
    means = keras.ops.convert_to_numpy(model.sample(3, 1.0, mean_image=True))
    np.testing.assert_allclose(means, keras.ops.convert_to_numpy(distributions[-1].mean()))
    drawn = keras.ops.convert_to_numpy(model.sample(3, 1.0))
    assert not np.allclose(drawn, keras.ops.convert_to_numpy(distributions[-1].mean()))
    assert means.shape == drawn.shape == (3, 16, 16, 3)
    assert 0 <= means.min() and means.max() <= 1
