"""Command-line flags every runner shares, and the pipeline options they build.

Runners add their own flags (where metadata lives, which cluster) on top; everything after a
bare '--' goes to Beam unchanged.
"""

import argparse
import os
from collections.abc import Sequence

from model_code import config as nvae_config
from nvae_tfx import datasets, options
from pipeline import configs

# Flags that name files or directories: '~' is the home directory in each (runners add some).
PATH_FLAGS = (
    'data_dir',
    'pipeline_root',
    'serving_dir',
    'metadata_path',
    'inception_weights',
    'output',
)


class FlagParser(argparse.ArgumentParser):
    """A bad flag is one line, `error: ...`, like every other error a runner reports; --help
    shows the usage."""

    def error(self, message):
        self.exit(2, f'error: {message} (--help lists the flags)\n')


def split_beam_args(argv: Sequence[str]) -> tuple[list[str], list[str] | None]:
    """(own flags, Beam args or None when there is no bare '--')."""
    argv = list(argv)
    if '--' not in argv:
        return argv, None
    return argv[: argv.index('--')], argv[argv.index('--') + 1 :]


def pipeline_parser(description: str) -> argparse.ArgumentParser:
    """The flags every runner shares; their defaults are the options' (nvae_tfx/options.py)."""
    source, transform = options.SourceOptions(), options.TransformOptions()
    training, evaluation = options.TrainingOptions(), options.EvaluationOptions()
    p = FlagParser(description=description, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument('--dataset', choices=datasets.DATASETS, default=source.dataset)
    p.add_argument(
        '--source',
        help='; '.join(
            f'{dataset}: {sources[0]} (default) | ' + ' | '.join(sources[1:])
            for dataset, sources in options.SOURCES.items()
        ),
    )
    p.add_argument(
        '--data_dir',
        help='directory with the IDX files, the CelebA folder or a prepared TFDS data_dir',
    )
    p.add_argument(
        '--on_corrupt',
        choices=options.ON_CORRUPT,
        default=source.on_corrupt,
        help='unreadable images: stop with an error (default) or skip, log and count',
    )
    p.add_argument(
        '--binarization',
        choices=datasets.BINARIZATIONS,
        default=transform.binarization,
        help='MNIST: dynamic (a fresh sample every training step, as NVAE) or static (once)',
    )
    p.add_argument('--binarization_seed', type=int, default=transform.binarization_seed)
    p.add_argument(
        '--image_size', type=int, default=transform.image_size, help='CelebA: output side'
    )
    p.add_argument(
        '--celeba_pixels', choices=options.CELEBA_PIXELS, default=transform.celeba_pixels
    )
    p.add_argument(
        '--preset',
        choices=nvae_config.PRESETS,
        default=training.preset,
        help='the NVAE preset (model_code/config.py)',
    )
    p.add_argument(
        '--set',
        action='append',
        default=[],
        metavar='FIELD=VALUE',
        help='override a model_code config field, e.g. --set num_channels_enc=32',
    )
    p.add_argument('--train_steps', type=int, default=training.train_steps)
    p.add_argument('--batch_size', type=int, default=training.batch_size)
    p.add_argument('--steps_per_epoch', type=int, default=training.steps_per_epoch)
    p.add_argument(
        '--checkpoint_every_steps',
        type=int,
        default=training.checkpoint_every_steps,
        help='checkpoint interval (also at every epoch end); a re-run resumes from it',
    )
    p.add_argument(
        '--mixed_precision',
        default=training.mixed_precision,
        choices=nvae_config.PRECISIONS,
        help='GPU only',
    )
    p.add_argument(
        '--jit_compile',
        default=training.jit_compile,
        choices=options.JIT_COMPILE,
        help="XLA compilation of the train step ('auto': where Keras supports it)",
    )
    p.add_argument('--no_train', action='store_true', help='stop after Transform')
    p.add_argument('--eval_split', default=evaluation.split, help="'eval' or 'test' (CelebA)")
    p.add_argument('--eval_examples', type=int, default=evaluation.num_eval_examples)
    p.add_argument(
        '--iw_samples',
        type=int,
        default=evaluation.num_iw_samples,
        help='importance samples K for the NLL bound (the paper: 1000)',
    )
    p.add_argument('--fid_samples', type=int, default=evaluation.fid_num_samples)
    p.add_argument(
        '--sample_temperature',
        type=float,
        default=training.sample_temperature,
        help="of generated images: the Evaluator's metrics and grids, TensorBoard's grids",
    )
    p.add_argument('--readjust_bn_passes', type=int, default=evaluation.readjust_bn_passes)
    p.add_argument(
        '--no_digit_classifier',
        action='store_true',
        help='MNIST: no FID/precision/recall on the trained digit classifier',
    )
    p.add_argument(
        '--digit_classifier_epochs', type=int, default=evaluation.digit_classifier_epochs
    )
    p.add_argument(
        '--inception_weights',
        default=evaluation.inception_weights,
        help='Inception-v3 no-top weights file (.h5): adds *_inception_v3 metrics',
    )
    p.add_argument(
        '--max_nll',
        type=float,
        default=evaluation.max_nll,
        help='blessing threshold in nats (default: none)',
    )
    p.add_argument(
        '--max_fid',
        type=float,
        default=evaluation.max_fid,
        help='blessing threshold on the first feature network (default: none)',
    )
    p.add_argument(
        '--max_regression',
        type=float,
        default=evaluation.max_regression,
        help='allowed fraction by which NLL/FID may be worse than the last blessed',
    )
    p.add_argument('--serving_dir', help='Pusher destination (one numbered version per push)')
    p.add_argument('--pipeline_root', help='where every artifact is written')
    return p


def parse(
    parser: argparse.ArgumentParser,
    argv: Sequence[str],
    default_beam_args: Sequence[str] = configs.DEFAULT_BEAM_ARGS,
) -> argparse.Namespace:
    own, beam_args = split_beam_args(argv)
    args = parser.parse_args(own)
    args.beam_args = beam_args if beam_args is not None else list(default_beam_args)
    bad = [item for item in args.set if '=' not in item]
    if bad:
        parser.error(f'--set expects FIELD=VALUE, got {bad[0]!r}')
    for name in PATH_FLAGS:
        value = getattr(args, name, None)
        if value and '://' not in value:
            setattr(args, name, os.path.expanduser(value))
    return args


def _local(path: str) -> str:
    """User paths on this machine become absolute; remote URIs (gs://...) stay as they are."""
    return path if not path or '://' in path else os.path.abspath(os.path.expanduser(path))


def source_options(args) -> options.SourceOptions:
    return options.SourceOptions(
        dataset=args.dataset,
        source=args.source,
        data_dir=_local(args.data_dir),
        on_corrupt=args.on_corrupt,
    )


def transform_options(args) -> options.TransformOptions:
    return options.TransformOptions(
        dataset=args.dataset,
        binarization=args.binarization,
        binarization_seed=args.binarization_seed,
        image_size=args.image_size,
        celeba_pixels=args.celeba_pixels,
    )


def training_options(args) -> options.TrainingOptions | None:
    if args.no_train:
        return None
    return options.TrainingOptions(
        dataset=args.dataset,
        binarization=args.binarization,
        preset=args.preset,
        overrides=dict(item.split('=', 1) for item in args.set),
        train_steps=args.train_steps,
        batch_size=args.batch_size,
        steps_per_epoch=args.steps_per_epoch,
        checkpoint_every_steps=args.checkpoint_every_steps,
        mixed_precision=args.mixed_precision,
        jit_compile=args.jit_compile,
        sample_temperature=args.sample_temperature,
    )


def evaluation_options(args, **runtime_parameters) -> options.EvaluationOptions:
    """runtime_parameters: fields given as orchestrator RuntimeParameters instead of values."""
    values = dict(
        split=args.eval_split,
        num_eval_examples=args.eval_examples,
        num_iw_samples=args.iw_samples,
        fid_num_samples=args.fid_samples,
        sample_temperature=args.sample_temperature,
        readjust_bn_passes=args.readjust_bn_passes,
        digit_classifier=not args.no_digit_classifier,
        digit_classifier_epochs=args.digit_classifier_epochs,
        inception_weights=_local(args.inception_weights),
        max_nll=args.max_nll,
        max_fid=args.max_fid,
        max_regression=args.max_regression,
    )
    return options.EvaluationOptions(**{**values, **runtime_parameters})
