"""The architecture is the official one: exact parameter counts and shapes for every preset."""

import numpy as np
import pytest
from keras import ops

from model_code.config import get_config
from model_code.nvae import NVAE

# nn.Parameters of NVlabs/NVAE built with the same flags (see NVAE_PORTING_NOTES.md).
OFFICIAL_PARAMETERS = {'cpu': 2_231_270, 'paper_mnist': 33_363_134, 'paper_celeba64': 153_281_364}
# Conv layers under spectral regularisation / BatchNorm layers, from the same trace.
OFFICIAL_LAYER_COUNTS = {'paper_mnist': (255, 214), 'paper_celeba64': (730, 436)}


@pytest.fixture(scope='module', params=['tiny', 'cpu', 'paper_mnist', 'paper_celeba64'])
def preset_model(request):
    model = NVAE(get_config(request.param))
    yield request.param, model
    del model


def test_parameter_count_equals_official(preset_model):
    preset, model = preset_model
    if preset in OFFICIAL_PARAMETERS:
        assert model.num_parameters() == OFFICIAL_PARAMETERS[preset]
    if preset in OFFICIAL_LAYER_COUNTS:
        assert (len(model._convs()), len(model._batch_norms())) == OFFICIAL_LAYER_COUNTS[preset]
    # BN moving statistics, power-iteration vectors and the step are state, not parameters.
    assert all(not w.trainable for w in model.non_trainable_weights)


@pytest.mark.parametrize(
    'preset_model',
    ['tiny', 'cpu', 'paper_mnist', 'paper_celeba64'],  # paper: eager passes of 33M/153M parameters
    indirect=True,
)
def test_output_shapes(preset_model):
    preset, model = preset_model
    cfg = model.config
    size, channels = cfg.image_size, cfg.in_channels
    x = (np.random.default_rng(0).random((1, size, size, channels)) < 0.5).astype('float32')
    out = model(x, training=False)
    assert tuple(out['logits'].shape) == (1, size, size, 1 if cfg.dataset == 'mnist' else 100)
    assert tuple(out['kl'].shape) == (1, sum(cfg.groups_per_scale))
    assert out['logits'].dtype == 'float32'
    top = size // 2 ** (cfg.num_preprocess_blocks + cfg.num_latent_scales - 1)
    assert model.z0_shape == (top, top, cfg.num_latent_per_group)
    latents = model.encode(x)
    # Decoder order: coarsest scale first, each scale twice the resolution of the one above.
    sizes = [z.shape[1] for z in latents]
    expected = [top * 2**s for s, n in enumerate(reversed(cfg.groups_per_scale)) for _ in range(n)]
    assert sizes == expected
    images = model.sample(2, 1.0)
    assert tuple(images.shape) == (2, size, size, channels)
    values = ops.convert_to_numpy(images)
    assert values.min() >= 0.0 and values.max() <= 1.0
