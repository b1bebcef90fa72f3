"""The training variants (model_code/config.py): spectral normalization of the conv kernels
instead of NVAE's spectral regularisation, and the KL warm-up held constant per epoch instead of
following every step. Each changes what it should, the defaults stay NVAE's, bad values are one
clear error, and a spectrally normalised model saves, loads and exports."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
from keras import ops

from model_code import schedules
from model_code.config import KL_WARMUPS, NORMALIZATIONS, get_config
from model_code.layers import Conv2D
from model_code.nvae import NVAE
from model_code.regularizers import SpectralRegularizer
from nvae_tfx.options import TrainingOptions
from nvae_tfx.training import export
from tests.support.runner_calls import print_config, run_cases
from tests.support.transform_graph import write_transform_graph


def np_(x):
    return np.asarray(ops.convert_to_numpy(x))


def top_singular_value(matrix):
    return np.linalg.svd(np_(matrix), compute_uv=False)[0]


def binary_batch(n=8, seed=0):
    return (np.random.default_rng(seed).random((n, 32, 32, 1)) < 0.3).astype('float32')


# ------------------------------------------------------------------ spectral normalization


@pytest.mark.parametrize(
    'make',
    [
        lambda: Conv2D(6, 10, 3),  # weight-normalised
        lambda: Conv2D(12, 12, 5, use_bias=False, weight_norm=False, depthwise=True),
        lambda: Conv2D(4, 8, 1, use_bias=False, weight_norm=False),
    ],
    ids=['weight_norm', 'depthwise', 'plain'],
)
def test_spectral_norm_keeps_the_largest_singular_value_at_one(make):
    keras.utils.set_random_seed(3)
    conv = make()
    without = np_(conv.kernel_matrix())
    conv.use_spectral_norm()
    # u starts at the top singular vector of the initial kernel: exact from the first step.
    normalised = np_(conv.kernel_matrix())
    assert top_singular_value(normalised) == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(normalised, without / top_singular_value(without), rtol=1e-5)
    # The kernel moves (as training moves it, here much further than a step): sigma is off,
    # and each power iteration brings it closer to 1.
    noise = np.random.default_rng(0).standard_normal(conv.kernel.shape).astype('float32')
    conv.kernel.assign(np_(conv.kernel) * (1.0 + noise))
    errors = [abs(top_singular_value(conv.kernel_matrix()) - 1.0)]
    for _ in range(10):
        conv.refine_spectral_norm()
        errors.append(abs(top_singular_value(conv.kernel_matrix()) - 1.0))
    assert errors[0] > 0.05 and errors[-1] < 2e-3
    assert np.all(np.diff(errors) <= 1e-6)


def test_spectral_norm_gradient_is_that_of_the_kernel_over_its_exact_sigma():
    """With u converged, d(W / sigma(W)) is the gradient of the exact function: sigma's own
    dependence on W is kept (only u and v are constants), as Miyato et al. differentiate."""
    keras.utils.set_random_seed(1)
    conv = Conv2D(3, 5, 3, use_bias=False, weight_norm=False)
    conv.use_spectral_norm()
    for _ in range(50):
        conv.refine_spectral_norm()
    probe = np.random.default_rng(2).standard_normal(conv.kernel.shape).astype('float32')
    with tf.GradientTape() as tape:
        value = tf.reduce_sum(conv.effective_kernel() * probe)
    grad = tape.gradient(value, conv.kernel).numpy()

    rows, cols = conv.matrix_shape
    kernel = np_(conv.kernel).astype(np.float64)

    def exact(k):
        return np.sum(k / np.linalg.svd(k.reshape(cols, rows), compute_uv=False)[0] * probe)

    eps = 1e-5
    for index in [(0, 0, 0, 0), (1, 2, 2, 4), (2, 1, 0, 3)]:
        step = np.zeros_like(kernel)
        step[index] = eps
        numeric = (exact(kernel + step) - exact(kernel - step)) / (2 * eps)
        assert grad[index] == pytest.approx(numeric, rel=1e-3, abs=1e-4)


def test_spectral_norm_model_normalises_every_conv_and_adds_no_spectral_term():
    keras.utils.set_random_seed(0)
    model = NVAE(get_config('tiny', normalization='spectral_norm'))
    convs = model._convs()
    assert model.spectral is None and all(conv.spectral_u is not None for conv in convs)
    for conv in convs:
        assert top_singular_value(conv.kernel_matrix()) == pytest.approx(1.0, rel=1e-4)
    x = binary_batch()
    u = [np_(conv.spectral_u).copy() for conv in convs]
    model(x, training=False)  # inference leaves the estimate alone
    for conv, before in zip(convs, u, strict=True):
        np.testing.assert_array_equal(np_(conv.spectral_u), before)
    out = model(x, training=True)  # a training step refines it once
    moved = [not np.array_equal(np_(c.spectral_u), b) for c, b in zip(convs, u, strict=True)]
    assert sum(moved) > len(moved) // 2
    loss = float(np_(model.compute_loss(x, None, out, training=True)))
    beta = schedules.kl_coefficient(0, model.config)
    recon = np_(model.reconstruction_loss(x, out['logits']))
    kl = np_(schedules.balanced_kl(out['kl'], model.kl_alphas, beta))
    bn = float(np_(sum(ops.max(ops.abs(b.gamma)) for b in model._batch_norms())))
    expected = np.mean(recon + float(np_(beta)) * kl) + model.config.weight_decay_norm * bn
    assert loss == pytest.approx(expected, rel=1e-5)
    assert float(np_(model.trackers['spectral_loss'].result())) == 0.0


def test_defaults_are_nvae_spectral_regularisation_and_a_per_step_warmup():
    config = get_config('cpu')
    assert (config.normalization, config.kl_warmup) == ('spectral_reg', 'step')
    model = NVAE(get_config('tiny'))
    assert isinstance(model.spectral, SpectralRegularizer)
    assert all(conv.spectral_u is None for conv in model._convs())
    # The variables are those of the default model before the variants existed.
    names = {v.path for v in model.variables}
    assert not any('spectral_u' in name for name in names)


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    """A tiny spectrally normalised model after a training-mode pass (which moves its spectral
    estimates), readjusted and exported as the Trainer does."""
    root = tmp_path_factory.mktemp('spectral_norm')
    tft_output = tft.TFTransformOutput(write_transform_graph(str(root / 'transform_graph')))
    options = TrainingOptions(
        preset='tiny',
        overrides={'normalization': 'spectral_norm', 'kl_warmup': 'epoch'},
        readjust_bn_passes=4,
        readjust_bn_batch=4,
    ).resolved()
    keras.utils.set_random_seed(0)
    model = NVAE(options.model_config(image_size=32))
    model(binary_batch(8), training=True)
    export.readjust_bn(model, options)
    export.export(model, str(root / 'model' / 'Format-Serving'), tft_output, options)
    return model, root / 'model'


def test_spectral_norm_model_saves_loads_and_serves(exported):
    model, model_uri = exported
    loaded = keras.models.load_model(export.keras_model_path(str(model_uri)))
    assert loaded.config == model.config and loaded.config.normalization == 'spectral_norm'
    for a, b in zip(loaded._convs(), model._convs(), strict=True):
        np.testing.assert_array_equal(np_(a.spectral_u), np_(b.spectral_u))
    x = binary_batch(4, seed=5)
    np.testing.assert_array_equal(np_(loaded.reconstruct(x)), np_(model.reconstruct(x)))

    served = tf.saved_model.load(str(model_uri / 'Format-Serving'))
    images = served.signatures['sample'](
        num=tf.constant(4), temperature=tf.constant(1.0), seed=tf.constant(2)
    )['images'].numpy()
    assert images.shape == (4, 32, 32, 1) and np.isfinite(images).all()
    np.testing.assert_allclose(
        images, np_(loaded.sample(4, 1.0, sampling_state=True, seed=2)), atol=1e-5
    )
    recon = served.signatures['reconstruct'](images=tf.constant(x))['images'].numpy()
    np.testing.assert_allclose(recon, np_(model.reconstruct(x)), atol=1e-5)
    nats = served.signatures['log_likelihood_images'](
        images=tf.constant(x), num_samples=tf.constant(3)
    )['log_likelihood'].numpy()
    assert nats.shape == (4,) and np.all(np.isfinite(nats)) and np.all(nats < 0)


# ---------------------------------------------------------------------- KL warm-up per epoch


def test_epoch_warmup_is_the_step_ramp_held_for_each_epoch():
    steps = np.arange(1000)
    step_cfg = get_config('tiny', total_steps=1000, steps_per_epoch=50)
    epoch_cfg = get_config('tiny', total_steps=1000, steps_per_epoch=50, kl_warmup='epoch')
    per_step = np_(schedules.kl_coefficient(steps, step_cfg))
    per_epoch = np_(schedules.kl_coefficient(steps, epoch_cfg))

    def official(s):  # NVAE's kl_coeff: const portion 1e-4, anneal over 30%, floor 1e-4
        return np.maximum(np.minimum((s - 0.1) / 300.0, 1.0), 1e-4)

    np.testing.assert_allclose(per_step, official(steps), rtol=1e-5)
    np.testing.assert_allclose(per_epoch, official(steps // 50 * 50), rtol=1e-5)
    epochs = per_epoch.reshape(20, 50)
    assert (epochs == epochs[:, :1]).all()  # constant within each epoch
    # Epochs 0..6 start on the ramp (epoch 6 at step 300, just short of its end), 7.. at 1.
    assert len(np.unique(epochs[:, 0])) == 8 and (epochs[7:] == 1.0).all()
    np.testing.assert_array_equal(per_epoch[::50], per_step[::50])


def test_the_training_loss_uses_the_epoch_warmup():
    config = get_config('tiny', kl_warmup='epoch', total_steps=40, steps_per_epoch=8)
    model = NVAE(config)
    x = binary_batch(4)
    out = model(x, training=False)
    betas = {}
    for step in (0, 7, 8, 15, 16):
        model.global_step.assign(step)
        model.trackers['beta'].reset_state()
        model.compute_loss(x, None, out, training=True)
        betas[step] = float(np_(model.trackers['beta'].result()))
        assert int(np_(model.global_step)) == step + 1
    assert betas[0] == betas[7] < betas[8] == betas[15] < betas[16]
    assert betas[8] == pytest.approx((8 - 40e-4) / 12.0)  # the step ramp at step 8


# -------------------------------------------------------------------- settings and errors


@pytest.mark.parametrize('field, value', [('normalization', 'weight_norm'), ('kl_warmup', 'batch')])
def test_an_unknown_variant_is_one_error_naming_the_field(field, value):
    with pytest.raises(ValueError) as raised:
        get_config('cpu', {field: value})
    assert str(raised.value).startswith(f'{field} must be one of (')
    assert f"got '{value}'" in str(raised.value)


def test_variants_show_in_print_config_and_bad_ones_stop_the_runner(tmp_path):
    config, imported = print_config(
        'run_local', '--set', 'normalization=spectral_norm', '--set', 'kl_warmup=epoch'
    )
    assert imported == []
    assert config['model']['normalization'] == 'spectral_norm'
    assert config['model']['kl_warmup'] == 'epoch'
    assert config['training']['overrides'] == {
        'normalization': 'spectral_norm',
        'kl_warmup': 'epoch',
    }
    default, _ = print_config('run_local')
    assert (default['model']['normalization'], default['model']['kl_warmup']) == (
        'spectral_reg',
        'step',
    )
    results = run_cases(
        {
            'normalization': ['--print_config', '--set', 'normalization=spectral'],
            'kl_warmup': ['--set', 'kl_warmup=per_epoch'],
        },
        tmp_path,
    )
    choices = {'normalization': NORMALIZATIONS, 'kl_warmup': KL_WARMUPS}
    for field, value in (('normalization', 'spectral'), ('kl_warmup', 'per_epoch')):
        code, err, _ = results[field]
        assert code not in (0, None)
        assert err.splitlines() == [
            f'error: --set {field}={value}: {field} must be one of {choices[field]}, got {value!r}'
        ]
