"""The model's latent functions under each backend: encode's posterior means and seeded samples,
and decode with some groups kept and the others drawn from the conditional prior, against the
model's own reconstruct and sample."""

import keras
import numpy as np
import pytest

from tests.support import backends

SEED, TEMPERATURE = 7, 0.8


def latent_facts() -> dict:
    """Gaps and shapes of a tiny NVAE on two latent scales with a flow per group; runs under any
    backend."""
    from model_code.config import get_config
    from model_code.nvae import NVAE

    np_ = keras.ops.convert_to_numpy
    keras.utils.set_random_seed(0)
    model = NVAE(get_config('tiny', num_latent_scales=2, num_nf=1))
    groups = model.num_groups
    x = (np.random.default_rng(0).random((3, 32, 32, 1)) < 0.3).astype('float32')
    means = model.encode(x)
    sample, again, other = (model.posterior_sample(x, s) for s in (SEED, SEED, SEED + 1))

    def gap(a, b):
        return max(float(np.abs(np_(u) - np_(v)).max()) for u, v in zip(a, b, strict=True))

    def decode(latents, keep, temperature, seed=SEED):
        images, decoded = model.decode(latents, keep, temperature, seed)
        return np_(images), decoded

    kept, _ = decode(means, [True] * groups, [0.3] * groups, seed=SEED + 5)
    drawn, drawn_latents = decode(means, [False] * groups, [TEMPERATURE] * groups)
    # The top group kept as drawn, the rest drawn again: the same seed draws the same noise.
    partial, partial_latents = decode(
        [drawn_latents[0], *means[1:]], [True] + [False] * (groups - 1), [TEMPERATURE] * groups
    )
    # Only the top group drawn at half the temperature: its latent N(0, 1.01 t) halves.
    _, cooler = decode(means, [False] * groups, [TEMPERATURE / 2] + [TEMPERATURE] * (groups - 1))
    return {
        'backend': keras.backend.backend(),
        'shapes': [list(z.shape[1:]) for z in means],
        'latent_shapes': [list(s) for s in model.latent_shapes()],
        'sample_repeat_gap': gap(sample, again),
        'sample_seed_gap': gap(sample, other),
        'sample_mean_gap': gap(sample, means),
        'kept_vs_reconstruct': float(np.abs(kept - np_(model.reconstruct(x))).max()),
        'kept_latents_gap': gap(decode(sample, [True] * groups, [1.0] * groups)[1], sample),
        'drawn_vs_sample': float(
            np.abs(drawn - np_(model.sample(3, TEMPERATURE, mean_image=True, seed=SEED))).max()
        ),
        'partial_gap': float(np.abs(partial - drawn).max()),
        'partial_latents_gap': gap(partial_latents, drawn_latents),
        'cooler_top_gap': float(np.abs(np_(cooler[0]) - np_(drawn_latents[0]) / 2).max()),
        'cooler_rest_gap': gap(cooler[1:], drawn_latents[1:]),
    }


@pytest.mark.parametrize('backend', ['tensorflow', 'jax'])
def test_encode_and_decode_agree_with_reconstruct_and_sample(backend):
    facts = backends.facts_under(backend, latent_facts)
    assert facts['backend'] == backend
    # Decoder order, coarsest first: two 8x8 groups, then two 16x16 groups.
    assert facts['shapes'] == facts['latent_shapes'] == [[8, 8, 4]] * 2 + [[16, 16, 4]] * 2
    # Posterior samples: equal seeds equal, another seed or the means differ.
    assert facts['sample_repeat_gap'] == 0.0
    assert facts['sample_seed_gap'] > 1e-2 and facts['sample_mean_gap'] > 1e-2
    # Every group kept: the means decode to reconstruct's images, whatever seed and temperature,
    # and decode returns the latents it was given.
    assert facts['kept_vs_reconstruct'] < 1e-5
    assert facts['kept_latents_gap'] == 0.0
    # None kept: sample's mean images (training statistics) from the same seed.
    assert facts['drawn_vs_sample'] < 1e-5
    # Keeping a group as it was drawn changes nothing: the draws do not depend on what is kept.
    assert facts['partial_gap'] < 1e-5 and facts['partial_latents_gap'] < 1e-5
    # Temperatures are per group.
    assert facts['cooler_top_gap'] < 1e-5
    assert facts['cooler_rest_gap'] > 1e-3  # the groups below see a different top group
