"""Command-line flags, made from the fields they set, and their resolution into a run
specification: the only place argparse's Namespace exists.

Every field of the options (nvae_tfx/options.py) and of a runner's own settings is one flag of
the field's name (a bool defaulting to True is --no_<name>), with the field's type, choices and
help; a field shared by several options (dataset, binarization, ...) is one flag for all. A flag
not given leaves its field at the default, or to its owner (preset, protocol, dataset).
Everything after a bare '--' goes to Beam unchanged.
"""

import argparse
import dataclasses
import os
from collections.abc import Callable, Sequence

from model_code import config as nvae_config
from nvae_tfx.options import (
    EvaluationOptions,
    SourceOptions,
    TrainingOptions,
    TransformOptions,
    field_type,
    setting,
)
from pipeline import configs
from pipeline.flags import FlagParser
from pipeline.run_spec import OutputPaths, RunSpec

OPTIONS = (SourceOptions, TransformOptions, TrainingOptions, EvaluationOptions)
# Flags that name files or directories: '~' is the home directory in each, and local ones
# become absolute.
PATH_FIELDS = ('data_dir', 'inception_weights', 'pipeline_root', 'serving_dir', 'metadata_path')


@dataclasses.dataclass(frozen=True)
class Outputs:
    """The output flags every runner has (OutputPaths, before each runner's defaults)."""

    pipeline_root: str | None = setting(help='where every artifact is written')
    serving_dir: str | None = setting(help='Pusher destination (one numbered version per push)')
    no_train: bool = setting(False, 'stop after Transform')


@dataclasses.dataclass(frozen=True)
class LocalOutputs(Outputs):
    """The outputs of runners with a local ML Metadata store."""

    metadata_path: str | None = setting(
        help='SQLite ML Metadata file; default: outputs/metadata/<pipeline name>/metadata.sqlite'
    )


def split_beam_args(argv: Sequence[str]) -> tuple[list[str], list[str] | None]:
    """(own flags, Beam args or None when there is no bare '--')."""
    argv = list(argv)
    if '--' not in argv:
        return argv, None
    return argv[: argv.index('--')], argv[argv.index('--') + 1 :]


def is_uri(path: str) -> bool:
    """A path on a file system tf.io.gfile reaches by scheme (gs://...), not on this machine."""
    return '://' in path


def local_path(path: str | None) -> str | None:
    """User paths on this machine become absolute with '~' expanded; URIs stay as they are."""
    return path if not path or is_uri(path) else os.path.abspath(os.path.expanduser(path))


def _help(field: dataclasses.Field) -> str:
    text = field.metadata.get('help', '')
    default = field.default
    shown = not field.metadata.get('owner') and default not in (None, '', dataclasses.MISSING)
    if shown and field_type(field) is not bool and 'default' not in text:
        text = f'{text} (default: {default})' if text else f'default: {default}'
    return text


def _with_its_message(parse):
    """A field's own parser, whose ValueError says what is expected: argparse shows that text,
    not its generic 'invalid value'."""

    def convert(text):
        try:
            return parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from e

    return convert


def _add_flag(parser: argparse.ArgumentParser, field: dataclasses.Field) -> None:
    meta = field.metadata
    name = meta.get('flag') or field.name
    kind = field_type(field)
    common = {'dest': field.name, 'default': None, 'help': _help(field)}
    if kind is bool:
        if field.default is True:
            parser.add_argument(f'--no_{name}', action='store_false', **common)
        else:
            parser.add_argument(f'--{name}', action='store_true', **common)
        return
    parse = _with_its_message(meta['parse']) if meta.get('parse') else kind
    repeated = kind in (dict, list)
    parser.add_argument(
        f'--{name}',
        type=parse,
        choices=meta.get('choices'),
        metavar=meta.get('metavar'),
        action='append' if repeated else 'store',
        required=bool(meta.get('required')),
        **common,
    )


def parser(description: str, *classes) -> FlagParser:
    """The flags of the options and of `classes` (the runner's outputs and settings): each field
    a flag, a name seen before not added again."""
    p = FlagParser(description=description, formatter_class=argparse.RawTextHelpFormatter)
    seen = set()
    for cls in (*OPTIONS, *classes):
        for field in dataclasses.fields(cls):
            if field.name in seen or field.metadata.get('flag', '') is None:
                continue
            seen.add(field.name)
            _add_flag(p, field)
    return p


def _given(cls, args: argparse.Namespace, **values):
    """An object of cls from the flags given (the others at their defaults) and `values`."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    given = {name: getattr(args, name) for name in fields if getattr(args, name, None) is not None}
    for name, value in given.items():
        if name in PATH_FIELDS:
            given[name] = local_path(value) if isinstance(value, str) else value
        elif field_type(fields[name]) is dict:
            given[name] = dict(value)
    return cls(**{**given, **values})


def parse(
    p: argparse.ArgumentParser,
    argv: Sequence[str],
    paths: Callable[[str, Outputs], OutputPaths],
    outputs_class=Outputs,
    settings_class=None,
    default_beam_args: Sequence[str] = configs.DEFAULT_BEAM_ARGS,
):
    """(the run specification, the runner's settings or None), from flags of parser(description,
    outputs_class, settings_class). paths(dataset, outputs given): the runner's output paths. A
    bad value is a ValueError naming it; a flag argparse cannot read exits with one error line."""
    own, beam_args = split_beam_args(argv)
    args = p.parse_args(own)
    preset = args.preset or TrainingOptions.preset
    # The paper presets name their dataset; the others train on the default one.
    dataset = args.dataset or nvae_config.preset_dataset(preset) or SourceOptions.dataset
    runner = _given(settings_class, args) if settings_class else None
    outputs = _given(outputs_class, args)
    spec = RunSpec.create(
        source=_given(SourceOptions, args, dataset=dataset),
        transform=_given(TransformOptions, args, dataset=dataset),
        training=None if outputs.no_train else _given(TrainingOptions, args, dataset=dataset),
        evaluation=None if outputs.no_train else _given(EvaluationOptions, args),
        paths=paths(dataset, outputs),
        beam_args=default_beam_args if beam_args is None else beam_args,
    )
    return spec, runner
