"""Pre-flight: everything about a run that can be checked before TFX, Beam and TensorFlow are
imported (which takes a minute or more on a small machine), so that a bad flag or missing data
fails at once with one line instead of minutes later inside a component.

Checked: the options the flags build (nvae_tfx/options.py) and the ranges of the few flags they
leave unchecked; the crop against the images' shape; the evaluation and FID reference splits
against the splits the source provides; the model configuration the Trainer will build
(validated, not built: model_code/config.py); the data the chosen source needs, on local paths
(nvae_tfx/data/checks.py; remote paths are checked by ExampleGen on the machine that reads
them); local files named by flags. Imports nothing heavier than NumPy.
"""

import os

from model_code import config as nvae_config
from nvae_tfx import datasets
from nvae_tfx.data import checks
from nvae_tfx.data.errors import DataError
from pipeline import cli

# Flags whose range no options object checks (nvae_tfx/options.py checks the rest). A flag
# whose value is None is left to the preset or protocol.
_POSITIVE = ('digit_classifier_epochs', 'image_size')
_NON_NEGATIVE = ('checkpoint_every_steps', 'nll_tolerance', 'fid_tolerance', 'max_nll', 'max_fid')


def check_settings(args) -> None:
    """The flags and what they resolve to, without reading any file."""
    _check_ranges(args)
    source = cli.source_options(args)
    transform = cli.transform_options(args)
    if transform.crop is not None:
        try:
            datasets.check_crop(transform.crop, source.image_shape)
        except ValueError as e:
            raise ValueError(f'--crop/--image_shape: {e}') from e
    _check_overrides(args)
    training = cli.training_options(args)
    evaluation = cli.evaluation_options(args)
    _check_splits(source, evaluation)
    if training is not None:
        _check_model(training, transform)


def check_files(args) -> None:
    """The data the source needs and the files flags name, where they are local paths."""
    source = cli.source_options(args)
    if not cli.is_uri(source.data_dir or ''):
        checks.check_source(source)
    weights = cli.evaluation_options(args).inception_weights
    if weights and not cli.is_uri(weights) and not os.path.isfile(weights):
        raise DataError(weights, 'Inception-v3 weights file (--inception_weights) not found')


def _check_ranges(args) -> None:
    for name in _POSITIVE:
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise ValueError(f'--{name} must be at least 1, got {value}')
    for name in _NON_NEGATIVE:
        value = getattr(args, name, None)
        if value is not None and value < 0:
            raise ValueError(f'--{name} must not be negative, got {value}')
    if args.sample_temperature is not None and args.sample_temperature <= 0:
        raise ValueError(f'--sample_temperature must be positive, got {args.sample_temperature}')


def _check_splits(source, evaluation) -> None:
    """The scored split and the FID reference split must be splits the source provides."""
    splits = checks.split_names(source)
    for flag, split in (
        ('eval_split', evaluation.split),
        ('fid_reference_split', evaluation.fid_reference_split),
    ):
        if split not in splits:
            raise ValueError(
                f'--{flag}={split}: {source.dataset} from the {source.source} source has the '
                f'splits {", ".join(splits)}'
            )


def _check_overrides(args) -> None:
    """Each --set alone, so that the message names the one that is wrong."""
    for item in args.set:
        name, value = item.split('=', 1)
        try:
            nvae_config.get_config(args.preset, {name: value})
        except ValueError as e:
            raise ValueError(f'--set {item}: {e}') from e


def _check_model(training, transform) -> None:
    size = cli.model_image_size(transform)
    try:
        training.model_config(image_size=size, mixed_precision=training.mixed_precision)
    except ValueError as e:
        settings = ', '.join(
            [f'preset {training.preset}', f'{size}x{size} images']
            + [f'{k}={v}' for k, v in training.overrides.items()]
        )
        raise ValueError(f'the model configuration ({settings}) is invalid: {e}') from e
