"""NVAE hyper-parameters: one dataclass, named presets, per-field overrides.

Field names follow the official NVAE command-line flags so the presets can be
checked against the README commands of NVlabs/NVAE line by line.
"""

import dataclasses
import math

# 'celeba' and 'faces' (other face photos) are the same colour model; the pipeline keeps them apart.
DATASETS = ('mnist', 'celeba', 'faces')
# MNIST digits are 28x28; the model sees them on an image_size canvas (32) and scores the digit,
# the canvas' central MNIST_CROP x MNIST_CROP, as NVAE does.
MNIST_CROP = 28
PRECISIONS = ('float32', 'mixed_float16', 'mixed_bfloat16')
# How the conv weights are kept smooth (NVAEConfig.normalization) and what the KL warm-up
# coefficient follows (NVAEConfig.kl_warmup); the first of each is NVAE's.
NORMALIZATIONS = ('spectral_reg', 'spectral_norm')
KL_WARMUPS = ('step', 'epoch')


@dataclasses.dataclass(frozen=True)
class NVAEConfig:
    # Data.
    dataset: str = 'mnist'  # 'mnist' (Bernoulli, 28x28 crop), 'celeba' or 'faces' (DML)
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
    # 'step': the KL coefficient follows the training step (NVAE); 'epoch': it is held for a
    # whole epoch at its value at the epoch's first step (the same ramp, in steps_per_epoch
    # stairs).
    kl_warmup: str = 'step'
    weight_decay_norm: float = 1e-2  # lambda of the spectral and BN-gamma penalties
    # 'spectral_reg' (NVAE): the loss adds weight_decay_norm * the sum over conv kernels of
    # their largest singular value, refined by num_power_iter power iterations a step.
    # 'spectral_norm': every conv kernel (after weight normalization) is divided by that value
    # instead, estimated from a persistent vector refined by one power iteration per training
    # step (as tf.keras SpectralNormalization wrappers); the spectral term is then not added
    # and num_power_iter is unused (the BN-gamma penalty stays).
    normalization: str = 'spectral_reg'
    num_power_iter: int = 4

    # Optimisation. The schedule's defaults are the default CPU run: 1,200 steps of 64 digits
    # (a quarter of an hour on a 2-core CPU) with the LR warm-up over 1% of them.
    learning_rate: float = 1e-2
    learning_rate_min: float = 1e-4
    warmup_steps: int = 12
    weight_decay: float = 3e-4
    adamax_epsilon: float = 1e-3
    total_steps: int = 1200
    batch_size: int = 64  # global: all replicas together
    steps_per_epoch: int = 75  # about one pass over the embedded 4,500 training digits
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
        for name, choices in (
            ('mixed_precision', PRECISIONS),
            ('normalization', NORMALIZATIONS),
            ('kl_warmup', KL_WARMUPS),
        ):
            if getattr(self, name) not in choices:
                raise ValueError(f'{name} must be one of {choices}, got {getattr(self, name)!r}')
        factor = 2 ** (self.num_preprocess_blocks + self.num_latent_scales - 1)
        if self.image_size % factor:
            raise ValueError(
                f'image_size {self.image_size} must be divisible by the total down-sampling, '
                f'{factor} (2 ** (num_preprocess_blocks + num_latent_scales - 1))'
            )
        if self.num_postprocess_blocks != self.num_preprocess_blocks:
            raise ValueError('post-process must undo the pre-process down-sampling')
        return self


def official_run(
    gpus: int, batch_per_gpu: int, epochs: int, train_images: int, warmup_epochs: int = 5
) -> dict:
    """The batch and step counts of an official train.py command. Its --batch_size is per GPU;
    each GPU reads ceil(train_images / gpus) images an epoch (PyTorch's DistributedSampler pads
    the last share) in batches that drop the incomplete last one; the LR rises linearly over
    warmup_epochs epochs (train.py's default 5) and the step-wise cosine spans all epochs."""
    steps_per_epoch = math.ceil(train_images / gpus) // batch_per_gpu
    return dict(
        batch_size=gpus * batch_per_gpu,
        steps_per_epoch=steps_per_epoch,
        total_steps=epochs * steps_per_epoch,
        warmup_steps=warmup_epochs * steps_per_epoch,
    )


_PRESETS = {
    # Seconds per step on a CPU; for tests only. One latent scale of two groups: a test's time
    # goes to tracing the training step, which grows with every scale (docs/testing.md); the
    # path between scales is tested on the other presets (tests/unit/test_model_presets.py).
    'tiny': dict(
        num_channels_enc=8,
        num_channels_dec=8,
        num_latent_scales=1,
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
        steps_per_epoch=50,
    ),
    # The default CPU run (2,231,270 parameters in the official code).
    'cpu': dict(),
    # README command of NVlabs/NVAE for MNIST: 2 GPUs x 200 for 400 epochs of the 60,000
    # training digits (150 steps each, 60,000 in all; warm-up 750).
    'paper_mnist': dict(
        dataset='mnist',
        num_channels_enc=32,
        num_channels_dec=32,
        num_groups_per_scale=10,
        num_cell_per_cond_enc=2,
        num_cell_per_cond_dec=2,
        num_preprocess_cells=3,
        num_postprocess_cells=3,
        weight_decay_norm=1e-2,
        **official_run(gpus=2, batch_per_gpu=200, epochs=400, train_images=60_000),
    ),
    # README command for CelebA-64: 8 GPUs x 16 for 90 epochs of the 162,770 training images
    # (1,271 steps each, 114,390 in all; warm-up 6,355).
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
        **official_run(gpus=8, batch_per_gpu=16, epochs=90, train_images=162_770),
    ),
}

PRESETS = tuple(_PRESETS)

# How each preset's models are scored unless told otherwise: 'paper' is NVAE's own evaluation
# (evaluate.py), 'quick' a CPU-sized one, 'smoke' seconds; nvae_tfx/options.py defines them.
EVALUATION_PROTOCOLS = {
    'tiny': 'smoke',
    'cpu': 'quick',
    'paper_mnist': 'paper',
    'paper_celeba64': 'paper',
}


def preset_dataset(preset: str) -> str | None:
    """The dataset a preset was made for (the paper's runs), None where it suits any."""
    return _PRESETS[preset].get('dataset')


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
    in the preset (e.g. 5 of 400 epochs for MNIST) unless the overrides set it; KL annealing is
    already a fraction (30%)."""
    base = get_config(preset, overrides, **kwargs)
    warmup = base.warmup_steps
    if 'warmup_steps' not in (overrides or {}):
        warmup = max(1, round(total_steps * base.warmup_steps / base.total_steps))
    return get_config(preset, overrides, total_steps=total_steps, warmup_steps=warmup, **kwargs)
