"""The architecture is the official one: exact parameter counts for every preset, and output
shapes on one, two and three latent scales (the paper presets' eager passes, 33M and 153M
parameters: tests/extended/test_paper_presets.py)."""

import pytest

from model_code.config import get_config
from model_code.nvae import NVAE
from tests.support.model_shapes import assert_output_shapes

# nn.Parameters of NVlabs/NVAE built with the same flags (see NVAE_PORTING_NOTES.md).
OFFICIAL_PARAMETERS = {'cpu': 2_231_270, 'paper_mnist': 33_363_134, 'paper_celeba64': 153_281_364}
# Conv layers under spectral regularisation / BatchNorm layers, from the same trace.
OFFICIAL_LAYER_COUNTS = {'paper_mnist': (255, 214), 'paper_celeba64': (730, 436)}


@pytest.mark.parametrize('preset', ['tiny', 'cpu', 'paper_mnist', 'paper_celeba64'])
def test_parameter_count_equals_official(preset):
    model = NVAE(get_config(preset))
    if preset in OFFICIAL_PARAMETERS:
        assert model.num_parameters() == OFFICIAL_PARAMETERS[preset]
    if preset in OFFICIAL_LAYER_COUNTS:
        assert (len(model._convs()), len(model._batch_norms())) == OFFICIAL_LAYER_COUNTS[preset]
    # BN moving statistics, power-iteration vectors and the step are state, not parameters.
    assert all(not w.trainable for w in model.non_trainable_weights)


@pytest.mark.parametrize(
    'config',
    [
        get_config('tiny'),  # one scale
        get_config('cpu'),  # two
        get_config('tiny', dataset='celeba', image_size=64, num_latent_scales=3),  # three
    ],
    ids=['tiny', 'cpu', 'tiny_celeba_three_scales'],
)
def test_output_shapes(config):
    assert_output_shapes(NVAE(config))
