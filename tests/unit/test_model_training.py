"""Training, sampling, evaluation and serialisation of NVAE on the tiny preset."""

import keras
import numpy as np
import pytest
from keras import ops

from model_code.config import get_config
from model_code.nvae import NVAE
from model_code.optim import make_optimizer
from tests.support import backends

STEPS = 40


def np_(x):
    return np.asarray(ops.convert_to_numpy(x))


def shapes_batch(n=8, size=32):
    """Binary images of filled squares at different places: easy to fit, far from uniform."""
    x = np.zeros((n, size, size, 1), 'float32')
    for i in range(n):
        top, left = 4 + 2 * i, 20 - 2 * i
        x[i, top : top + 8, left : left + 8] = 1.0
    return x


def fit_tiny(x, steps, warmup_steps):
    """A fresh tiny model fit on the batch x for `steps` steps: the model, its history, and how far
    the optimizer (the stem's kernel), the power iteration and BatchNorm moved their state."""
    config = get_config('tiny', total_steps=steps, warmup_steps=warmup_steps)
    model = NVAE(config)
    model.compile(optimizer=make_optimizer(config))

    def state():
        return {
            'kernel_moved': np_(model.stem.kernel).copy(),
            'u_moved': np_(model.spectral.u[-1]).copy(),
            'bn_moved': np_(model._batch_norms()[0].moving_mean).copy(),
        }

    before = state()
    history = model.fit(x, batch_size=len(x), epochs=steps, verbose=0, shuffle=False).history
    moved = {k: float(np.abs(v - before[k]).max()) for k, v in state().items()}
    return model, history, moved


@pytest.fixture(scope='module')
def trained():
    keras.utils.set_random_seed(0)
    x = shapes_batch()
    model, history, moved = fit_tiny(x, STEPS, warmup_steps=5)
    return model, x, history, moved


def test_training_reduces_the_loss_markedly(trained):
    model, _, history, _ = trained
    loss = history['loss']
    assert np.isfinite(loss).all()
    assert np.mean(loss[-5:]) < 0.5 * loss[0]
    assert np.mean(history['recon'][-5:]) < 0.3 * history['recon'][0]


def test_step_dependent_state_advances_in_fit(trained):
    model, _, history, _ = trained
    assert int(np_(model.global_step)) == STEPS
    beta = history['beta']
    assert beta[0] == pytest.approx(1e-4) and beta[-1] == pytest.approx(1.0)
    assert np.all(np.diff(beta) >= 0)
    lr = history['lr']
    assert lr[0] == 0.0 and max(lr) == pytest.approx(1e-2, rel=1e-3) and lr[-1] < 1e-3
    assert min(history['spectral_loss']) > 0 and min(history['bn_loss']) > 0
    kl_groups = [history[f'kl_{g:02d}'][-1] for g in range(model.num_groups)]
    assert sum(kl_groups) == pytest.approx(history['kl'][-1], rel=1e-4)


def test_batch_norm_statistics_update_in_training_only():
    model = NVAE(get_config('tiny'))
    bn = model.preprocess[0].branch.act1.bn  # normalises the stem output
    x = shapes_batch()
    before = np_(bn.moving_mean).copy()
    model(x, training=False)
    np.testing.assert_array_equal(np_(bn.moving_mean), before)
    model(x, training=True)
    after = np_(bn.moving_mean)
    assert not np.allclose(after, before)
    # PyTorch momentum 0.05: the moving mean moves 5% of the way to the batch mean.
    stem = np_(model.stem(2.0 * x - 1.0))
    np.testing.assert_allclose(
        after, 0.95 * before + 0.05 * stem.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-6
    )


def test_lower_temperature_reduces_sample_spread(trained):
    model, *_ = trained
    spread = {t: np_(model.sample(64, t)).std(axis=0).mean() for t in (1.0, 0.1)}
    assert spread[0.1] < 0.7 * spread[1.0]


def _same_seed_samples(model, **kwargs):
    model.reseed(7)
    return np_(model.sample(4, 0.8, **kwargs))


def test_readjust_bn_makes_a_sampling_state_and_keeps_the_training_statistics(trained):
    model, x, *_ = trained
    decoder = model.decoder_cells[0].branch.bn_in
    encoder = model.encoder_cells[0].branch.act1.bn
    moving = [
        np_(v).copy() for bn in model._batch_norms() for v in (bn.moving_mean, bn.moving_variance)
    ]
    recon = np_(model.reconstruct(x))
    with_training_statistics = _same_seed_samples(model)
    # No passes: the sampling state is the training statistics, and samples are the same.
    model.readjust_bn(num_passes=0, batch_size=4, temperature=0.8)
    np.testing.assert_array_equal(np_(decoder.sampling_mean), np_(decoder.moving_mean))
    np.testing.assert_allclose(
        _same_seed_samples(model, sampling_state=True), with_training_statistics, atol=1e-6
    )
    model.readjust_bn(num_passes=2, batch_size=4, temperature=0.8)
    assert model.sampling_settings() == {'passes': 2, 'batch': 4, 'temperature': pytest.approx(0.8)}
    assert not np.allclose(np_(decoder.sampling_mean), np_(decoder.moving_mean))
    assert not hasattr(encoder, 'sampling_mean')  # the encoder never samples
    after = [np_(v) for bn in model._batch_norms() for v in (bn.moving_mean, bn.moving_variance)]
    for a, b in zip(after, moving, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np_(model.reconstruct(x)), recon)
    readjusted = _same_seed_samples(model, sampling_state=True)
    assert np.abs(readjusted - with_training_statistics).max() > 1e-3
    np.testing.assert_array_equal(_same_seed_samples(model, sampling_state=True), readjusted)
    np.testing.assert_array_equal(_same_seed_samples(model), with_training_statistics)
    with pytest.raises(ValueError, match='keeps no sampling state'):
        encoder(np.zeros((1, 4, 4, encoder.gamma.shape[0]), 'float32'), sampling_state=True)


def test_a_fresh_model_has_no_sampling_state():
    assert NVAE(get_config('tiny')).sampling_settings() is None


def test_iwae_with_one_sample_is_the_elbo_and_tightens_with_k(trained):
    model, x, *_ = trained
    repeats = np.repeat(x, 32, axis=0)
    log_w = np_(model.log_likelihood(repeats, num_samples=1))
    elbo = -np_(model.negative_elbo(repeats))
    # Same expectation; they differ per draw only by the sampled vs analytic KL.
    err = 4 * np.sqrt(log_w.var() / log_w.size + elbo.var() / elbo.size)
    assert abs(log_w.mean() - elbo.mean()) < err
    bounds = [
        np_(model.log_likelihood(x, num_samples=k, chunk_size=25)).mean() for k in (1, 10, 100)
    ]
    assert bounds[0] < bounds[1] < bounds[2]
    assert bounds[2] < 0  # a log-probability of binary images
    bpd = float(np_(model.bits_per_dim(-bounds[2])))
    assert bpd == pytest.approx(-bounds[2] / np.log(2) / 784)


def test_save_and_load_round_trip(trained, tmp_path):
    model, x, *_ = trained
    path = tmp_path / 'nvae.keras'
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, NVAE) and loaded.config == model.config
    np.testing.assert_array_equal(np_(loaded.reconstruct(x)), np_(model.reconstruct(x)))
    for a, b in zip(loaded.encode(x), model.encode(x), strict=True):
        np.testing.assert_array_equal(np_(a), np_(b))
    assert int(np_(loaded.global_step)) == STEPS
    np.testing.assert_array_equal(np_(loaded.spectral.u[-1]), np_(model.spectral.u[-1]))
    np.testing.assert_array_equal(np_(loaded.optimizer.iterations), np_(model.optimizer.iterations))
    model.readjust_bn(num_passes=1, batch_size=2, temperature=0.9)
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.sampling_settings() == model.sampling_settings()
    bn = loaded.postprocess[-1].branch.bn_out
    np.testing.assert_array_equal(
        np_(bn.sampling_variance), np_(model.postprocess[-1].branch.bn_out.sampling_variance)
    )


def test_colour_model_with_flows_uses_the_sampled_kl():
    config = get_config('tiny', dataset='celeba', num_nf=1)
    model = NVAE(config)
    x = np.round(np.random.default_rng(1).random((2, 32, 32, 3)) * 255) / 255
    out = model(x, training=True)
    assert tuple(out['logits'].shape) == (2, 32, 32, 100)
    # With flows the KL is the single-sample log q - log p, summed over groups.
    np.testing.assert_allclose(
        np_(ops.sum(out['kl'], axis=1)), np_(out['log_q'] - out['log_p']), rtol=1e-4, atol=1e-2
    )
    recon = np_(model.reconstruction_loss(x, out['logits']))
    assert np.all(recon > 0) and np.all(np.isfinite(recon))
    assert model.num_dims == 3 * 32 * 32
    samples = np_(model.sample(3, 0.7))
    assert samples.shape == (3, 32, 32, 3) and samples.min() >= 0 and samples.max() <= 1


@pytest.mark.parametrize('policy', ['mixed_float16', 'mixed_bfloat16'])
def test_mixed_precision_keeps_distributions_and_losses_in_float32(policy):
    config = get_config('tiny', mixed_precision=policy)
    model = NVAE(config)
    x = shapes_batch(4)
    out = model(x, training=True)
    assert model.compute_dtype == policy.split('_')[1]
    assert model.stem.kernel.dtype == 'float32'  # variables stay float32
    assert out['logits'].dtype == 'float32' and out['kl'].dtype == 'float32'
    loss = model.compute_loss(x, None, out, training=True)
    assert loss.dtype == 'float32' and np.isfinite(float(np_(loss)))
    optimizer = make_optimizer(config)
    if policy == 'mixed_float16':
        assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        assert optimizer.initial_scale == 1024.0


def one_step_facts() -> dict:
    """Two training steps of a fresh tiny model under the current backend: what moved."""
    x = (np.random.default_rng(0).random((4, 32, 32, 1)) < 0.3).astype('float32')
    model, history, moved = fit_tiny(x, steps=2, warmup_steps=1)
    return {
        'backend': keras.backend.backend(),
        'loss': [float(v) for v in history['loss']],
        'step': int(np_(model.global_step)),
        **moved,
    }


def sampling_state_facts() -> dict:
    """A readjusted sampling state and seeded draws of a tiny model under the current backend."""
    model = NVAE(get_config('tiny'))
    model.readjust_bn(num_passes=2, batch_size=2, temperature=0.8)
    stateless = np_(model.sample(3, 0.8, sampling_state=True, seed=3))
    model.reseed(3)
    stateful = np_(model.sample(3, 0.8, sampling_state=True))
    bn = model.decoder_cells[0].branch.bn_in
    return {
        'backend': keras.backend.backend(),
        'settings': model.sampling_settings(),
        'seed_gap': float(np.abs(stateless - stateful).max()),
        'state_moved': float(np.abs(np_(bn.sampling_mean - bn.moving_mean)).max()),
    }


def test_training_moves_the_weights_the_power_iteration_and_batch_norm(trained):
    *_, moved = trained
    assert moved['kernel_moved'] > 0 and moved['u_moved'] > 0 and moved['bn_moved'] > 0


def test_tiny_preset_trains_under_jax():
    result = backends.facts_under('jax', one_step_facts)
    assert result['backend'] == 'jax'
    assert np.isfinite(result['loss']).all()
    assert result['step'] == 2
    # The optimizer, the power iteration and BatchNorm all updated their state.
    assert result['kernel_moved'] > 0 and result['u_moved'] > 0 and result['bn_moved'] > 0


@pytest.mark.parametrize('backend', ['tensorflow', 'jax'])
def test_sampling_state_and_seeds_under_each_backend(backend):
    result = backends.facts_under(backend, sampling_state_facts)
    assert result['backend'] == backend
    assert result['settings'] == {'passes': 2, 'batch': 2, 'temperature': pytest.approx(0.8)}
    # sample(seed=s) draws what the model's own stream draws after reseed(s).
    assert result['seed_gap'] == 0.0
    assert result['state_moved'] > 0
