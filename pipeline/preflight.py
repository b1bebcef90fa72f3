"""Pre-flight: everything about a run that can be checked before TFX, Beam and TensorFlow are
imported (which takes a minute or more on a small machine), so that a bad flag or missing data
fails at once with one line instead of minutes later inside a component.

Checked: every numeric flag's range; the options the flags build (nvae_tfx/options.py); the
evaluation split against the splits the source provides; the model configuration the Trainer
will build (validated, not built: model_code/config.py); the data the chosen source needs, on
local paths (nvae_tfx/data/checks.py; remote paths are checked by ExampleGen on the machine that
reads them); local files named by flags. Imports nothing heavier than NumPy.
"""

import os

from model_code import config as nvae_config
from nvae_tfx import datasets
from nvae_tfx.data import checks
from nvae_tfx.data.errors import DataError
from pipeline import cli

# Flags that count something: at least 1. A flag whose value is None is left to its default.
_POSITIVE = (
    'train_steps',
    'batch_size',
    'steps_per_epoch',
    'checkpoint_every_steps',
    'eval_examples',
    'iw_samples',
    'fid_samples',
    'digit_classifier_epochs',
    'image_size',
)
_NON_NEGATIVE = ('readjust_bn_passes', 'max_regression', 'max_nll', 'max_fid')


def is_remote(path: str | None) -> bool:
    return bool(path) and '://' in path


def check(args) -> None:
    """Raises ValueError (DataError for files) with a message naming the flag or file."""
    _check_ranges(args)
    source = cli.source_options(args)
    transform = cli.transform_options(args)
    _check_eval_split(args, source)
    _check_overrides(args)
    training = cli.training_options(args)
    evaluation = cli.evaluation_options(args)
    if training is not None:
        _check_model(training, transform)
    if not is_remote(source.data_dir):
        checks.check_source(source)
    weights = evaluation.inception_weights
    if weights and not is_remote(weights) and not os.path.isfile(weights):
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


def _check_eval_split(args, source) -> None:
    splits = checks.split_names(source)
    if args.eval_split not in splits:
        raise ValueError(
            f'--eval_split={args.eval_split}: {source.dataset} from the {source.source} source '
            f'has the splits {", ".join(splits)}'
        )


def _check_overrides(args) -> None:
    """Each --set alone, so that the message names the one that is wrong."""
    for item in args.set:
        name, value = item.split('=', 1)
        try:
            nvae_config.get_config(args.preset, {name: value})
        except ValueError as e:
            raise ValueError(f'--set {item}: {e}') from e


def model_image_size(transform) -> int:
    """The side of the images the model sees: MNIST's canvas, CelebA's --image_size."""
    return datasets.MNIST_CANVAS if transform.dataset == 'mnist' else transform.image_size


def _check_model(training, transform) -> None:
    size = model_image_size(transform)
    try:
        training.model_config(image_size=size, mixed_precision=training.mixed_precision)
    except ValueError as e:
        settings = ', '.join(
            [f'preset {training.preset}', f'{size}x{size} images']
            + [f'{k}={v}' for k, v in training.overrides.items()]
        )
        raise ValueError(f'the model configuration ({settings}) is invalid: {e}') from e
