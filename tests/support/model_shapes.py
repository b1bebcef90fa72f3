"""What any NVAE's outputs look like, from its configuration: the checks of the presets' shapes
(tests/unit/test_model_presets.py, tests/extended/test_paper_presets.py)."""

import numpy as np
from keras import ops


def assert_output_shapes(model):
    """One image through the model, its latents and two samples, against the configuration."""
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
