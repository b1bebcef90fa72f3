"""Unit tests of the NVAE building blocks against closed forms and the official conventions."""

import math

import keras
import numpy as np
import pytest
from keras import ops

from model_code import schedules
from model_code.config import get_config
from model_code.distributions import Bernoulli, DiscretizedMixLogistic, Normal
from model_code.flows import PairedFlow, autoregressive_mask
from model_code.layers import (
    BatchNorm,
    Cell,
    Conv2D,
    FactorizedReduce,
    upsample_bilinear_align_corners,
)
from model_code.optim import NVAEAdamax, WarmupCosine
from model_code.regularizers import SpectralRegularizer


def np_(x):
    return np.asarray(ops.convert_to_numpy(x))


# ----------------------------------------------------------------- config


def test_config_overrides_from_kwargs_and_strings():
    cfg = get_config('cpu', num_channels_enc=32)
    assert cfg.num_channels_enc == 32 and cfg.num_channels_dec == 16
    cfg = get_config(
        'cpu',
        {'num_nf': '2', 'use_se': 'false', 'learning_rate': '5e-3', 'dataset': 'celeba'},
        image_size=64,
    )
    assert (cfg.num_nf, cfg.use_se, cfg.learning_rate, cfg.dataset) == (2, False, 5e-3, 'celeba')
    with pytest.raises(ValueError):
        get_config('cpu', not_a_field=1)
    with pytest.raises(ValueError):
        get_config('nope')


def test_groups_per_scale_match_the_official_traces():
    assert get_config('cpu').groups_per_scale == [4, 2]
    assert get_config('paper_mnist').groups_per_scale == [10, 5]
    assert get_config('paper_celeba64').groups_per_scale == [20, 10, 5]
    assert get_config('cpu', ada_groups=False).groups_per_scale == [4, 4]


# ----------------------------------------------------------------- layers


def test_bilinear_upsampling_uses_aligned_corners():
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 4)).astype('float32')
    y = np_(upsample_bilinear_align_corners(ops.convert_to_tensor(x)))
    assert y.shape == (2, 6, 10, 4)

    def reference(size_in, size_out):  # align_corners: src = dst * (in - 1) / (out - 1)
        src = np.arange(size_out) * (size_in - 1) / (size_out - 1)
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, size_in - 1)
        return lo, hi, src - lo

    rl, rh, rf = reference(3, 6)
    cl, ch, cf = reference(5, 10)
    rows = x[:, rl] * (1 - rf)[None, :, None, None] + x[:, rh] * rf[None, :, None, None]
    expected = (
        rows[:, :, cl] * (1 - cf)[None, None, :, None] + rows[:, :, ch] * cf[None, None, :, None]
    )
    np.testing.assert_allclose(y, expected, atol=1e-5)
    # Corners are copied exactly, unlike with half-pixel centres.
    np.testing.assert_allclose(
        y[:, [0, -1]][:, :, [0, -1]], x[:, [0, -1]][:, :, [0, -1]], atol=1e-6
    )


def test_strided_conv_samples_even_positions_like_pytorch():
    conv = Conv2D(1, 1, 3, strides=2, use_bias=False, weight_norm=False)
    kernel = np.zeros((3, 3, 1, 1), 'float32')
    kernel[1, 1] = 1.0  # picks the centre pixel
    conv.kernel.assign(kernel)
    x = np.arange(36, dtype='float32').reshape(1, 6, 6, 1)
    y = np_(conv(x))[0, :, :, 0]
    np.testing.assert_array_equal(y, x[0, ::2, ::2, 0])  # PyTorch pad=1 centres at 0, 2, 4


def test_weight_norm_starts_close_to_raw_kernel_and_follows_log_norm():
    conv = Conv2D(4, 6, 3)
    w = np_(conv.kernel)
    norm = np.sqrt((w**2).sum(axis=(0, 1, 2)))
    np.testing.assert_allclose(
        np_(conv.effective_kernel()), w * (norm + 1e-2) / (norm + 1e-5), rtol=1e-5
    )
    conv.log_weight_norm.assign(np.zeros(6, 'float32'))
    eff = np_(conv.effective_kernel())
    np.testing.assert_allclose(np.sqrt((eff**2).sum(axis=(0, 1, 2))), np.ones(6), rtol=1e-4)


def test_batch_norm_moves_running_statistics_as_pytorch_does():
    """PyTorch (and NVAE's synchronized BatchNorm): normalise with the biased batch variance,
    move the running variance with the unbiased one, running = 0.95 running + 0.05 batch. At
    BatchNorm readjustment's batch of 2 on the 4x4 scale the two differ by 1/31."""
    rng = np.random.RandomState(0)
    x = (rng.randn(2, 4, 4, 3) * [1.0, 2.0, 0.5] + 3.0).astype('float32')
    bn = BatchNorm(3, swish=False, sampling_state=True)
    pixels = x.reshape(-1, 3)
    biased, unbiased = pixels.var(0), pixels.var(0, ddof=1)

    out = ops.convert_to_numpy(bn(x, training=True))
    np.testing.assert_allclose(
        out, (x - pixels.mean(0)) / np.sqrt(biased + 1e-5), rtol=1e-4, atol=1e-4
    )
    np.testing.assert_allclose(ops.convert_to_numpy(bn.moving_mean), 0.05 * pixels.mean(0), 1e-5)
    np.testing.assert_allclose(
        ops.convert_to_numpy(bn.moving_variance), 0.95 + 0.05 * unbiased, rtol=1e-5
    )
    # Readjustment (training mode on the sampling state) from the training statistics.
    bn.reset_sampling_state()
    moving_variance = ops.convert_to_numpy(bn.moving_variance)
    bn(x, training=True, sampling_state=True)
    np.testing.assert_allclose(
        ops.convert_to_numpy(bn.sampling_variance),
        0.95 * moving_variance + 0.05 * unbiased,
        rtol=1e-5,
    )


def test_factorized_reduce_and_cells_change_shape_as_official():
    x = np.random.default_rng(1).standard_normal((2, 8, 8, 12)).astype('float32')
    assert FactorizedReduce(12, 24)(x).shape == (2, 4, 4, 24)
    assert Cell(12, 'down')(x).shape == (2, 4, 4, 24)
    assert Cell(12, 'up', expansion=6)(x).shape == (2, 16, 16, 6)
    assert Cell(12, 'normal', expansion=3)(x).shape == (2, 8, 8, 12)


def test_cell_is_skip_plus_tenth_of_branch():
    cell = Cell(8, 'normal')
    x = np.random.default_rng(2).standard_normal((2, 4, 4, 8)).astype('float32')
    branch = np_(cell.se(cell.branch(x)))
    np.testing.assert_allclose(np_(cell(x)), x + 0.1 * branch, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ flows


def test_autoregressive_masks_follow_the_official_block_structure():
    mask = autoregressive_mask(3, 2, 4, zero_diag=True, mirror=False)  # [k, k, in, out]
    np.testing.assert_array_equal(mask[0], 1)  # row above the centre
    np.testing.assert_array_equal(mask[1, 0], 1)  # left of the centre
    np.testing.assert_array_equal(mask[1, 2], 0)
    np.testing.assert_array_equal(mask[2], 0)
    # Output block j (2 channels each) sees input channels < j.
    np.testing.assert_array_equal(mask[1, 1], [[0, 0, 1, 1], [0, 0, 0, 0]])
    centre = autoregressive_mask(1, 4, 2, zero_diag=False, mirror=False)[0, 0]
    np.testing.assert_array_equal(centre, [[1, 1], [1, 1], [0, 1], [0, 1]])
    np.testing.assert_array_equal(autoregressive_mask(3, 2, 4, True, True), mask[::-1, ::-1])


def test_flow_cell_is_autoregressive_in_raster_then_channel_order():
    flow = PairedFlow(4)
    cell = flow.forward_cell
    for conv in (cell.expand, cell.depthwise, cell.shift):  # make every connection matter
        conv.kernel.assign(
            np.random.default_rng(3).standard_normal(conv.kernel.shape).astype('float32')
        )
    z = np.random.default_rng(4).standard_normal((1, 5, 5, 4)).astype('float32')
    base = np_(cell(z))
    z2 = z.copy()
    z2[0, 2, 2, 1] += 1.0  # perturb pixel (2, 2), channel 1
    diff = np.abs(np_(cell(z2)) - base)[0] > 1e-6
    # Only outputs after (2,2,1) in raster/channel order may change (besides itself).
    assert not diff[:2].any() and not diff[2, :2].any()
    assert not diff[2, 2, 0]
    assert diff[2, 2, 1]  # z - mu: the element itself shifts by exactly 1
    assert diff[2, 2, 2:].any() or diff[3:].any()


# ----------------------------------------------------------- distributions


def test_gaussian_kl_matches_closed_form():
    rng = np.random.default_rng(5)
    a, b, c, d = (rng.standard_normal((3, 7)).astype('float32') * 2 for _ in range(4))
    q, p = Normal(a, b), Normal(c, d)
    mq, sq = 5 * np.tanh(a / 5), np.exp(5 * np.tanh(b / 5)) + 0.01
    mp, sp = 5 * np.tanh(c / 5), np.exp(5 * np.tanh(d / 5)) + 0.01
    expected = np.log(sp / sq) + (sq**2 + (mq - mp) ** 2) / (2 * sp**2) - 0.5
    np.testing.assert_allclose(np_(q.kl(p)), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np_(Normal(a * 0, a * 0).sigma), 1.01)  # the top prior


def test_normal_log_prob_and_temperature():
    mu, log_sigma = np.float32([[0.3]]), np.float32([[-0.2]])
    n = Normal(mu, log_sigma, temperature=0.5)
    sigma = (np.exp(5 * np.tanh(-0.04)) + 0.01) * 0.5
    np.testing.assert_allclose(np_(n.sigma), sigma, rtol=1e-6)
    z = np.float32([[1.0]])
    expected = (
        -0.5 * ((1.0 - 5 * np.tanh(0.06)) / sigma) ** 2
        - 0.5 * math.log(2 * math.pi)
        - math.log(sigma)
    )
    np.testing.assert_allclose(np_(n.log_prob(z)), expected, rtol=1e-5)


def test_bernoulli_log_prob():
    logits = np.float32([-2.0, 0.0, 3.0])
    p = 1 / (1 + np.exp(-logits))
    np.testing.assert_allclose(
        np_(Bernoulli(logits).log_prob(np.float32([1, 0, 1]))),
        np.log([p[0], 1 - p[1], p[2]]),
        rtol=1e-5,
    )


def _dml_params(num_mix):
    params = np.random.default_rng(6).standard_normal(10 * num_mix).astype('float32')
    params[num_mix:] *= 0.7
    return params.reshape(1, 1, 1, -1)


def test_mixture_of_logistics_sums_to_one_over_all_pixel_values():
    """Sum of p(r, g, b) over all 256^3 values of one pixel."""
    dist = DiscretizedMixLogistic(_dml_params(2), num_mix=2)
    levels = np.arange(256, dtype='float32') / 255.0
    grid = np.stack(np.meshgrid(levels, levels, indexing='ij'), axis=-1)  # 256, 256, 2 (g, b)
    total, chunk = 0.0, 32
    for start in range(0, 256, chunk):
        r = np.broadcast_to(levels[start : start + chunk, None, None, None], (chunk, 256, 256, 1))
        images = np.concatenate([r, np.broadcast_to(grid, (chunk, 256, 256, 2))], axis=-1)
        total += float(np.exp(np_(dist.log_prob(images)).astype(np.float64)).sum())
    assert total == pytest.approx(1.0, abs=1e-3)


def test_official_edge_threshold_gives_pixel_254_the_whole_tail():
    images = np.float32([[[[0.5, 0.5, 254 / 255]]], [[[0.5, 0.5, 1.0]]]])
    official = np_(
        DiscretizedMixLogistic(_dml_params(2), 2, 8, edge_threshold=0.99).log_prob(images)
    )
    fixed = np_(DiscretizedMixLogistic(_dml_params(2), 2, 8).log_prob(images))
    # Pixel 254 gets P(x > 253.5) = p(254) + p(255), so 255 is counted twice.
    assert np.exp(official[0]) == pytest.approx(np.exp(fixed[0]) + np.exp(fixed[1]), rel=1e-4)
    assert official[1] == pytest.approx(fixed[1], rel=1e-6)


def test_mixture_sampling_temperature_scales_the_logistic_noise():
    params = np.zeros((4000, 1, 1, 100), 'float32')
    params[..., 10:] = 0.0  # means 0, log scales 0 (s = 1 before clipping), coeffs 0
    params[..., 10 + 10 : 10 + 20] = -3.0  # log scale of R
    dist = DiscretizedMixLogistic(params)
    seed = keras.random.SeedGenerator(0)
    spread = [np_(dist.sample(seed, t))[..., 0].std() for t in (1.0, 0.5)]
    expected = math.exp(-3.0) * math.pi / math.sqrt(3) / 2  # logistic std, mapped to [0, 1]
    assert spread[0] == pytest.approx(expected, rel=0.1)
    assert spread[1] == pytest.approx(expected / 2, rel=0.1)


# ------------------------------------------------------- schedules, optimiser


def test_kl_warmup_follows_official_formula():
    cfg = get_config('tiny', total_steps=1000)
    beta = [float(np_(schedules.kl_coefficient(s, cfg))) for s in (0, 100, 150, 300, 301, 900)]
    official = [max(min((s - 0.1) / 300.0, 1.0), 1e-4) for s in (0, 100, 150, 300, 301, 900)]
    np.testing.assert_allclose(beta, official, rtol=1e-5)


def test_kl_balancing_square_coefficients_and_weights():
    np.testing.assert_allclose(schedules.balance_alphas([10, 5]), [1] * 5 + [2] * 10)
    np.testing.assert_allclose(schedules.balance_alphas([20, 10, 5]), [1] * 5 + [2] * 10 + [4] * 20)
    kl = np.float32([[1.0, 4.0, 10.0], [3.0, 0.0, 6.0]])
    alphas = np.float32([1, 2, 2])
    coeff = np.abs(kl).mean(0) + 0.01
    coeff = coeff / alphas * coeff.sum()
    coeff = coeff / coeff.mean()
    np.testing.assert_allclose(
        np_(schedules.balanced_kl(kl, alphas, 0.5)), (kl * coeff).sum(1), rtol=1e-5
    )
    np.testing.assert_allclose(np_(schedules.balanced_kl(kl, alphas, 1.0)), kl.sum(1), rtol=1e-6)


def test_adamax_matches_official_update_with_coupled_l2():
    var = keras.Variable(np.float32([1.0, -2.0]))
    opt = NVAEAdamax(learning_rate=0.1, epsilon=1e-3, l2=3e-4)
    grads = [np.float32([0.5, 0.0]), np.float32([-0.2, 0.1])]
    w, m, u = np.float32([1.0, -2.0]), 0.0, 0.0
    for t, g in enumerate(grads, start=1):
        opt.apply_gradients([(ops.convert_to_tensor(g), var)])
        g = g + 3e-4 * w
        m = 0.9 * m + 0.1 * g
        u = np.maximum(0.999 * u, np.abs(g) + 1e-3)
        w = w - 0.1 / (1 - 0.9**t) * m / u
    np.testing.assert_allclose(np_(var), w, rtol=1e-5)
    assert float(np_(var)[0]) != pytest.approx(1.0)


def test_learning_rate_warms_up_linearly_then_cosine_to_floor():
    sched = WarmupCosine(1e-2, 1e-4, warmup_steps=10, total_steps=110)
    lr = [float(np_(sched(s))) for s in (0, 5, 10, 60, 110, 200)]
    np.testing.assert_allclose(
        lr, [0.0, 5e-3, 1e-2, 1e-4 + 0.5 * (1e-2 - 1e-4), 1e-4, 1e-4], rtol=1e-5
    )


# ------------------------------------------------------------- regularizer


def test_spectral_regularizer_finds_largest_singular_values():
    rng = np.random.default_rng(7)
    mats = [rng.standard_normal((6, 10)).astype('float32') for _ in range(2)]
    mats.append(rng.standard_normal((4, 9)).astype('float32'))
    reg = SpectralRegularizer([m.shape for m in mats])
    u0 = np_(reg.u[0]).copy()
    loss = float(np_(reg([ops.convert_to_tensor(m) for m in mats], num_iterations=40)))
    expected = sum(np.linalg.svd(m, compute_uv=False)[0] for m in mats)
    assert loss == pytest.approx(expected, rel=1e-3)
    assert not np.allclose(np_(reg.u[0]), u0)  # state was refined in place
    assert all(not v.trainable for v in reg.weights)
