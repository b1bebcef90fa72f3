"""The paper presets' eager passes (33M and 153M parameters): outputs, latents and samples of the
shapes their configurations say. make test checks their parameter counts and the same shapes on
one, two and three latent scales (tests/unit/test_model_presets.py)."""

import pytest

from model_code.config import get_config
from model_code.nvae import NVAE
from tests.support.model_shapes import assert_output_shapes


@pytest.mark.parametrize('preset', ['paper_mnist', 'paper_celeba64'])
def test_output_shapes(preset):
    assert_output_shapes(NVAE(get_config(preset)))
