"""Command-line flags every runner shares, and the pipeline options they build.

Runners add their own flags (where metadata lives, which cluster) on top; everything after a
bare '--' goes to Beam unchanged.
"""

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Sequence

from model_code import config as nvae_config
from nvae_tfx import datasets, options
from pipeline import configs
from pipeline.flags import FlagParser

# Flags that name files or directories: '~' is the home directory in each (runners add some).
PATH_FLAGS = (
    'data_dir',
    'pipeline_root',
    'serving_dir',
    'metadata_path',
    'inception_weights',
    'output',
)


def split_beam_args(argv: Sequence[str]) -> tuple[list[str], list[str] | None]:
    """(own flags, Beam args or None when there is no bare '--')."""
    argv = list(argv)
    if '--' not in argv:
        return argv, None
    return argv[: argv.index('--')], argv[argv.index('--') + 1 :]


def _preset_defaults(field: str) -> str:
    """'default: the preset's (tiny 8, cpu 64, ...)' for a model_code config field."""
    values = ', '.join(
        f'{p} {getattr(nvae_config.get_config(p), field)}' for p in nvae_config.PRESETS
    )
    return f"default: the preset's ({values})"


def _protocol_defaults(field: str) -> str:
    """'default: the evaluation protocol's (paper 1000, quick 50)' for a protocol field."""
    values = ', '.join(f'{n} {getattr(p, field)}' for n, p in options.PROTOCOLS.items())
    return f"default: the evaluation protocol's ({values})"


def _integers(separator: str, count: int):
    """An argparse type: `count` integers joined by `separator` (250x250x3, 50,50,200,200)."""

    def parse(text: str) -> tuple[int, ...]:
        try:
            values = tuple(int(v) for v in text.split(separator))
        except ValueError:
            values = ()
        if len(values) != count:
            raise argparse.ArgumentTypeError(
                f'expected {count} integers joined by {separator!r}, got {text!r}'
            )
        return values

    return parse


def _geometry(index: int, separator: str) -> str:
    """Each colour dataset's default image shape (index 0) or crop (1), for --help."""
    return ', '.join(
        f'{dataset} {separator.join(str(v) for v in geometry[index])}'
        for dataset, geometry in datasets.FACE_GEOMETRY.items()
    )


def pipeline_parser(description: str) -> argparse.ArgumentParser:
    """The flags every runner shares; their defaults are the options' (nvae_tfx/options.py).
    Flags that default to None are owned by the preset or its evaluation protocol: the options
    resolve them, and a flag given always wins."""
    source, transform = options.SourceOptions(), options.TransformOptions()
    training, evaluation = options.TrainingOptions(), options.EvaluationOptions()
    p = FlagParser(description=description, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        '--dataset',
        choices=datasets.DATASETS,
        help=f"default: the preset's (paper_celeba64: celeba), else {source.dataset}",
    )
    p.add_argument(
        '--source',
        help='; '.join(
            f'{dataset}: {sources[0]} (default) | ' + ' | '.join(sources[1:])
            for dataset, sources in options.SOURCES.items()
        ),
    )
    p.add_argument(
        '--data_dir',
        help='directory with the IDX files, the CelebA folder, a folder of face images (JPEG, '
        'PNG; subfolders too) or a prepared TFDS data_dir',
    )
    p.add_argument(
        '--image_shape',
        type=_integers('x', 3),
        help="celeba, faces: HxWxC every stored image must have; default: the dataset's "
        f'({_geometry(0, "x")})',
    )
    p.add_argument(
        '--crop',
        type=_integers(',', 4),
        help='celeba, faces: the square LEFT,TOP,RIGHT,BOTTOM cut before resizing to '
        f"--image_size; default: the dataset's ({_geometry(1, ',')})",
    )
    p.add_argument(
        '--eval_fraction',
        type=float,
        help='faces: the share of images a hash of their names puts in eval (the rest: train); '
        f'default {options.EVAL_FRACTION}',
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
        '--image_size', type=int, default=transform.image_size, help='celeba, faces: output side'
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
    p.add_argument('--train_steps', type=int, help=_preset_defaults('total_steps'))
    p.add_argument(
        '--batch_size',
        type=int,
        help='global, over all GPUs; ' + _preset_defaults('batch_size'),
    )
    p.add_argument('--steps_per_epoch', type=int, help=_preset_defaults('steps_per_epoch'))
    p.add_argument(
        '--checkpoint_every_steps',
        type=int,
        default=training.checkpoint_every_steps,
        help='checkpoint interval in steps, and at every epoch end (0: at epoch ends only); a '
        're-run resumes from the last checkpoint',
    )
    p.add_argument(
        '--mixed_precision',
        default=training.mixed_precision,
        choices=nvae_config.PRECISIONS,
        help='float16/bfloat16 compute with float32 weights; for GPUs (slow on most CPUs)',
    )
    p.add_argument(
        '--jit_compile',
        default=training.jit_compile,
        choices=options.JIT_COMPILE,
        help="XLA compilation of the train step ('auto': where Keras supports it)",
    )
    p.add_argument(
        '--warm_start',
        action='store_true',
        help="train from the last blessed model's weights instead of from scratch (the same "
        'preset and overrides; its schedule starts over)',
    )
    p.add_argument('--no_train', action='store_true', help='stop after Transform')
    p.add_argument(
        '--eval_protocol',
        choices=tuple(options.PROTOCOLS),
        help="how models are scored: 'paper' (NVAE's evaluation: K=1000 on the whole split, "
        'FID of 10,000 samples against up to 50,000 training images) or '
        "'quick' (minutes on a CPU); default: the preset's "
        f'({", ".join(f"{k} {v}" for k, v in nvae_config.EVALUATION_PROTOCOLS.items())}). '
        'The flags below override single settings',
    )
    p.add_argument(
        '--eval_split',
        choices=options.SPLITS[1:],
        help="scored split: 'eval' (MNIST test digits, CelebA validation) or 'test' (CelebA); "
        + _protocol_defaults('split'),
    )
    p.add_argument(
        '--eval_examples',
        type=int,
        help='images scored (0: the whole split); ' + _protocol_defaults('num_eval_examples'),
    )
    p.add_argument(
        '--iw_samples',
        type=int,
        help='importance samples K of the NLL bound; ' + _protocol_defaults('num_iw_samples'),
    )
    p.add_argument(
        '--fid_samples',
        type=int,
        help='generated images for FID and precision/recall; '
        + _protocol_defaults('fid_num_samples'),
    )
    p.add_argument(
        '--fid_reference_split',
        choices=options.SPLITS,
        help="real images they are compared with; default: the protocol's (paper train, "
        'quick the scored split)',
    )
    p.add_argument(
        '--fid_reference_examples',
        type=int,
        help='at most this many real images (0: the whole split); '
        + _protocol_defaults('fid_reference_examples'),
    )
    p.add_argument(
        '--sample_temperature',
        type=float,
        help="of generated images: BatchNorm readjustment, the Evaluator's metrics and grids, "
        "TensorBoard's grids; " + _protocol_defaults('sample_temperature'),
    )
    p.add_argument(
        '--sample_temperatures',
        default=evaluation.sample_temperatures,
        metavar='T1,T2,...',
        help='further temperatures at which FID and precision/recall are measured and grids '
        'drawn, each after BatchNorm readjustment there (e.g. 0.6,0.8,1.0); the blessing uses '
        '--sample_temperature',
    )
    p.add_argument(
        '--readjust_bn_passes',
        type=int,
        help='BatchNorm readjustment before sampling: decoder passes in training mode; '
        + _protocol_defaults('readjust_bn_passes'),
    )
    p.add_argument(
        '--readjust_bn_batch',
        type=int,
        help='prior samples per readjustment pass; ' + _protocol_defaults('readjust_bn_batch'),
    )
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
        help='blessing threshold on the first feature network (default: none); needs one: '
        'the MNIST digit classifier or --inception_weights',
    )
    p.add_argument(
        '--nll_tolerance',
        type=float,
        help='fraction by which NLL may be worse than the last and the best blessed model; '
        + _protocol_defaults('nll_tolerance'),
    )
    p.add_argument(
        '--fid_tolerance',
        type=float,
        help='the same for FID; ' + _protocol_defaults('fid_tolerance'),
    )
    p.add_argument(
        '--bless_without_baseline',
        action='store_true',
        help='bless by the thresholds and the best blessed metrics when the last blessed model '
        'cannot be read (default: not blessed)',
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
        if value and not is_uri(value):
            setattr(args, name, os.path.expanduser(value))
    # The paper presets name their dataset; the others train on the default one.
    args.dataset = (
        args.dataset or nvae_config.preset_dataset(args.preset) or options.SourceOptions.dataset
    )
    return args


def is_uri(path: str) -> bool:
    """A path on a file system tf.io.gfile reaches by scheme (gs://...), not on this machine."""
    return '://' in path


def local_path(path: str | None) -> str | None:
    """User paths on this machine become absolute (parse expanded ~); URIs stay as they are."""
    return path if not path or is_uri(path) else os.path.abspath(path)


def source_options(args) -> options.SourceOptions:
    return options.SourceOptions(
        dataset=args.dataset,
        source=args.source,
        data_dir=local_path(args.data_dir),
        on_corrupt=args.on_corrupt,
        image_shape=args.image_shape,
        eval_fraction=args.eval_fraction,
    )


def transform_options(args) -> options.TransformOptions:
    return options.TransformOptions(
        dataset=args.dataset,
        binarization=args.binarization,
        binarization_seed=args.binarization_seed,
        image_size=args.image_size,
        celeba_pixels=args.celeba_pixels,
        crop=args.crop,
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
        eval_protocol=args.eval_protocol,
        sample_temperature=args.sample_temperature,
        readjust_bn_passes=args.readjust_bn_passes,
        readjust_bn_batch=args.readjust_bn_batch,
        warm_start=args.warm_start,
    )


def evaluation_options(args, **runtime_parameters) -> options.EvaluationOptions:
    """runtime_parameters: fields given as orchestrator RuntimeParameters instead of values.
    Refuses --max_fid where no feature network will measure FID."""
    values = dict(
        protocol=options.evaluation_protocol(args.preset, args.eval_protocol),
        split=args.eval_split,
        num_eval_examples=args.eval_examples,
        num_iw_samples=args.iw_samples,
        fid_num_samples=args.fid_samples,
        fid_reference_split=args.fid_reference_split,
        fid_reference_examples=args.fid_reference_examples,
        sample_temperature=args.sample_temperature,
        sample_temperatures=args.sample_temperatures,
        digit_classifier=not args.no_digit_classifier,
        digit_classifier_epochs=args.digit_classifier_epochs,
        inception_weights=local_path(args.inception_weights),
        max_nll=args.max_nll,
        max_fid=args.max_fid,
        nll_tolerance=args.nll_tolerance,
        fid_tolerance=args.fid_tolerance,
        bless_without_baseline=args.bless_without_baseline,
    )
    evaluation = options.EvaluationOptions(**{**values, **runtime_parameters})
    if evaluation.max_fid is not None and not evaluation.measures_sample_quality(args.dataset):
        raise ValueError(
            f'--max_fid={evaluation.max_fid}: no feature network measures FID on '
            f'{args.dataset} here; give --inception_weights FILE'
            + (' or drop --no_digit_classifier' if args.dataset == 'mnist' else '')
        )
    return evaluation


def model_image_size(transform: options.TransformOptions) -> int:
    """The side of the images the model sees: MNIST's canvas, the faces' Transform output."""
    return datasets.MNIST_CANVAS if transform.dataset == 'mnist' else transform.image_size


def resolved_config(args, **runner) -> dict:
    """Everything a run will use, resolved from preset, protocol and flags: what --print_config
    shows. runner: the runner's own settings (where metadata lives, which cluster)."""
    source, transform = source_options(args), transform_options(args)
    training = training_options(args)
    config = {
        'source': dataclasses.asdict(source),
        'transform': transform.to_custom_config(),
        'training': None,
        'schedule': None,
        'model': None,
        'evaluation': None,
        'beam_args': list(args.beam_args),
        'runner': runner,
    }
    if training is None:
        return config
    model = training.model_config(image_size=model_image_size(transform))
    config.update(
        training=dataclasses.asdict(training),
        schedule={
            'global_batch': training.batch_size,
            'train_steps': training.train_steps,
            'steps_per_epoch': training.steps_per_epoch,
            'epochs': round(training.train_steps / training.steps_per_epoch, 2),
            'learning_rate': model.learning_rate,
            'lr_warmup_steps': model.warmup_steps,
            'lr_cosine_to': model.learning_rate_min,
            'kl_warmup_steps': round(model.kl_anneal_portion * model.total_steps),
        },
        model=dataclasses.asdict(model),
        evaluation=dataclasses.asdict(evaluation_options(args)),
    )
    return config


def print_config(args, **runner) -> None:
    """--print_config: the resolved configuration as JSON on stdout, or one error line."""
    try:
        config = resolved_config(args, **runner)
    except ValueError as e:
        sys.exit(f'error: {e}')
    print(json.dumps(config, indent=1))
