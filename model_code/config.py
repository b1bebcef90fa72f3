"""NVAE hyper-parameters: one dataclass, named presets, per-field overrides.

Field names follow the official NVAE command-line flags so the presets can be
checked against the README commands of NVlabs/NVAE line by line.
"""

import dataclasses

DATASETS = ('mnist', 'celeba')
# MNIST digits are 28x28; the model sees them on an image_size canvas (32) and scores the digit,
# the canvas' central MNIST_CROP x MNIST_CROP, as NVAE does.
MNIST_CROP = 28
PRECISIONS = ('float32', 'mixed_float16', 'mixed_bfloat16')


@dataclasses.dataclass(frozen=True)
class NVAEConfig:
    # Data.
    dataset: str = 'mnist'  # 'mnist' (Bernoulli, 28x28 crop) or 'celeba' (DML)
    image_size: int = 32
    num_x_bits: int = 8
    num_mix: int = 10  # logistic components of the colour decoder
    dml_edge_threshold: float = 0.999  # official 0.99 mistreats pixel 254 at 8 bits

    # Architecture.
    num_channels_enc: int = 16
    num_channels_dec: int = 16
    num_latent_scales: int = 2
    num_groups_per_scale: int = 4
    ada_groups: bool = True
    min_groups_per_scale: int = 1
    num_latent_per_group: int = 20
    num_cell_per_cond_enc: int = 1
    num_cell_per_cond_dec: int = 1
    num_preprocess_blocks: int = 2
    num_preprocess_cells: int = 2
    num_postprocess_blocks: int = 2
    num_postprocess_cells: int = 2
    use_se: bool = True
    res_dist: bool = True
    num_nf: int = 0

    # Objective.
    kl_anneal_portion: float = 0.3
    kl_const_portion: float = 1e-4
    kl_const_coeff: float = 1e-4
    weight_decay_norm: float = 1e-2  # lambda of the spectral and BN-gamma penalties
    num_power_iter: int = 4

    # Optimisation.
    learning_rate: float = 1e-2
    learning_rate_min: float = 1e-4
    warmup_steps: int = 100
    weight_decay: float = 3e-4
    adamax_epsilon: float = 1e-3
    total_steps: int = 10000
    batch_size: int = 64
    mixed_precision: str = 'float32'  # one of PRECISIONS
    # BatchNorm statistics over the global batch of all replicas, as the official SyncBatchNorm
    # (Keras implements it on TensorFlow only); the Trainer sets it when training on several.
    sync_batch_norm: bool = False
    seed: int = 1

    @property
    def in_channels(self):
        return 1 if self.dataset == 'mnist' else 3

    @property
    def out_channels(self):
        return 1 if self.dataset == 'mnist' else 10 * self.num_mix

    @property
    def groups_per_scale(self):
        """Groups per latent scale, highest resolution first (encoder order)."""
        groups, n = [], self.num_groups_per_scale
        for _ in range(self.num_latent_scales):
            groups.append(n)
            if self.ada_groups:
                n = max(self.min_groups_per_scale, n // 2)
        return groups

    def validate(self):
        if self.dataset not in DATASETS:
            raise ValueError(f'unknown dataset {self.dataset!r}')
        if self.mixed_precision not in PRECISIONS:
            raise ValueError(f'unknown mixed_precision {self.mixed_precision!r}')
        factor = 2 ** (self.num_preprocess_blocks + self.num_latent_scales - 1)
        if self.image_size % factor:
            raise ValueError(
                f'image_size {self.image_size} must be divisible by the total down-sampling, '
                f'{factor} (2 ** (num_preprocess_blocks + num_latent_scales - 1))'
            )
        if self.num_postprocess_blocks != self.num_preprocess_blocks:
            raise ValueError('post-process must undo the pre-process down-sampling')
        return self


_PRESETS = {
    # Seconds per step on a CPU; for unit tests only.
    # Two groups on each scale so that combiners at both resolutions are exercised.
    'tiny': dict(
        num_channels_enc=8,
        num_channels_dec=8,
        num_groups_per_scale=2,
        ada_groups=False,
        num_latent_per_group=4,
        num_preprocess_blocks=1,
        num_preprocess_cells=1,
        num_postprocess_blocks=1,
        num_postprocess_cells=1,
        warmup_steps=5,
        total_steps=100,
        batch_size=8,
    ),
    # The default CPU run (2,231,270 parameters in the official code).
    'cpu': dict(),
    # README command of NVlabs/NVAE for MNIST (2 GPUs x 200, 400 epochs of 150 steps).
    'paper_mnist': dict(
        num_channels_enc=32,
        num_channels_dec=32,
        num_groups_per_scale=10,
        num_cell_per_cond_enc=2,
        num_cell_per_cond_dec=2,
        num_preprocess_cells=3,
        num_postprocess_cells=3,
        weight_decay_norm=1e-2,
        warmup_steps=750,
        total_steps=60000,
        batch_size=400,
    ),
    # README command for CelebA-64 (8 GPUs x 16, 90 epochs of 1,271 steps).
    'paper_celeba64': dict(
        dataset='celeba',
        image_size=64,
        num_channels_enc=64,
        num_channels_dec=64,
        num_latent_scales=3,
        num_groups_per_scale=20,
        num_cell_per_cond_enc=2,
        num_cell_per_cond_dec=2,
        num_preprocess_blocks=1,
        num_preprocess_cells=2,
        num_postprocess_blocks=1,
        num_postprocess_cells=2,
        num_nf=1,
        weight_decay_norm=1e-1,
        warmup_steps=6355,
        total_steps=114390,
        batch_size=128,
    ),
}

PRESETS = tuple(_PRESETS)


def _parse(field, text):
    """Converts a CLI string to the type of the dataclass field."""
    kind = field.type if isinstance(field.type, type) else type(field.default)
    if kind is bool:
        if text.lower() not in ('true', 'false', '1', '0'):
            raise ValueError(f'{field.name}: expected a boolean, got {text!r}')
        return text.lower() in ('true', '1')
    return kind(text)


def get_config(preset: str = 'cpu', overrides: dict | None = None, **kwargs) -> NVAEConfig:
    """Returns a preset with overrides.

    `overrides` may hold strings (from a command line); they are converted to
    the field's type. Keyword arguments are used as given.
    """
    if preset not in _PRESETS:
        raise ValueError(f'unknown preset {preset!r}; choose from {PRESETS}')
    fields = {f.name: f for f in dataclasses.fields(NVAEConfig)}
    values = dict(_PRESETS[preset])
    for name, value in {**(overrides or {}), **kwargs}.items():
        if name not in fields:
            raise ValueError(f'unknown config field {name!r}')
        values[name] = _parse(fields[name], value) if isinstance(value, str) else value
    return NVAEConfig(**values).validate()


def scaled_config(preset: str, overrides: dict, total_steps: int, **kwargs) -> NVAEConfig:
    """get_config for a run of total_steps: the LR warm-up keeps the fraction of training it has
    in the preset's official run (e.g. 5 of 400 epochs for MNIST); KL annealing is already a
    fraction (30%)."""
    base = get_config(preset, overrides, **kwargs)
    warmup = max(1, round(total_steps * base.warmup_steps / base.total_steps))
    return get_config(preset, overrides, total_steps=total_steps, warmup_steps=warmup, **kwargs)
