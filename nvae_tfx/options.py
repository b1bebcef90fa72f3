"""The settings of each component the pipeline configures, typed, with their defaults, checks
and help: the one place each is written. The runners' flags are made from these fields, a flag
of the field's name each (pipeline/cli.py); the run specification (pipeline/run_spec.py) holds
them resolved; the pipeline passes them to the components, and each crosses the TFX boundary in
one encoding that the component's executor or module file decodes:

* SourceOptions -> ImageExampleGen's CustomConfig (components/example_gen/component.py packs the
  dict), so the component keeps FileBasedExampleGen's spec and driver;
* TransformOptions -> Transform's custom_config, read by preprocessing_fn;
* TrainingOptions -> the Trainer's custom_config, read by run_fn; the step counts travel in
  TrainArgs and EvalArgs;
* EvaluationOptions -> GenerativeEvaluator's execution parameters, one per field (so that a
  field may be an orchestrator's runtime parameter), and DigitClassifierTrainer's epochs.

A field whose default is None is owned by something else: the dataset (its source, image shape,
crop, split), the model preset (model_code/config.py: batch size, steps) or the evaluation
protocol the preset names (PROTOCOLS: images scored, importance samples, generated and real
counts, temperature, BatchNorm readjustment, tolerances). An options object holds what was
given; resolved() returns a copy with every such field filled in, which is what components
receive and ML Metadata records. A value given always wins. Objects are never filled in place:
dataclasses.replace() on given options, then resolved(), derives afresh what was not given.

Imports neither TensorFlow nor TFX: runners read these before either is imported.
"""

import dataclasses
import math
import types
import typing
from typing import ClassVar

from model_code import config as nvae_config
from nvae_tfx import datasets

# Not settings, but what the pipeline adds to a component's custom_config: the hash of the code
# the component runs (pipeline/code_fingerprints.py), so that editing that code invalidates its
# cache; the Trainer's checkpoint directory, under the pipeline root.
CODE_FINGERPRINT = 'code_fingerprint'
CHECKPOINT_ROOT = 'checkpoint_root'
_PIPELINE_KEYS = (CODE_FINGERPRINT, CHECKPOINT_ROOT)

# Each dataset's sources, its default first. 'faces': a folder of JPEG/PNG files, or TFDS 'lfw'.
SOURCES = {
    'mnist': ('embedded', 'idx', 'tfds'),
    'celeba': ('dir', 'tfds'),
    'faces': ('folder', 'tfds'),
}
# 'faces' has no split of its own: a hash of each image's name (nvae_tfx/data/hash_split.py)
# puts this share of them in 'eval', the rest in 'train'.
EVAL_FRACTION = 0.1
ON_CORRUPT = ('fail', 'skip')
CELEBA_PIXELS = ('uint8', 'float')
JIT_COMPILE = ('auto', 'true', 'false')
SPLITS = ('train', 'eval', 'test')  # 'test': CelebA only


def setting(default=None, help='', *, owner='', flag='', factory=None, **flag_options):
    """A field with its help text. owner: what gives a default of None ('dataset', 'preset',
    'protocol', 'training'); flag: the flag's name if not the field's, None for no flag;
    flag_options: choices, metavar, parse (text -> value) for the flag."""
    metadata = {'help': help, 'owner': owner, 'flag': flag, **flag_options}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def integers(separator: str, count: int):
    """A flag's parser of `count` integers joined by `separator` (e.g. 218x178x3)."""

    def parse(text: str) -> tuple[int, ...]:
        values = tuple(int(v) for v in text.split(separator))
        if len(values) != count:
            raise ValueError(f'expected {count} integers joined by {separator!r}, got {text!r}')
        return values

    parse.__name__ = f'{count} integers joined by {separator!r}'  # argparse's error names it
    return parse


def _check(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f'{name} must be one of {tuple(choices)}, got {value!r}')


def _check_at_least(name: str, value, minimum) -> None:
    """Numbers only: None is left to its owner, and a field may hold an orchestrator's runtime
    parameter instead."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value < minimum:
        raise ValueError(f'{name} must be at least {minimum}, got {value}')


def _check_finite(name: str, value) -> None:
    # Every comparison with NaN is false: a NaN threshold would bless anything.
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f'{name} must be a finite number, got {value}')


def field_type(field: dataclasses.Field):
    """The field's type without None (float for `float | None`) and without parameters (dict
    for `dict[str, str]`)."""
    kind = field.type
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        kind = next(t for t in typing.get_args(kind) if t is not type(None))
    return typing.get_origin(kind) or kind


def _filled(options, **values):
    """A copy with the fields that are None set to `values`."""
    return dataclasses.replace(
        options, **{k: v for k, v in values.items() if getattr(options, k) is None}
    )


def _plain(value):
    """Tuples as lists, as JSON and protobuf Structs carry them."""
    return list(value) if isinstance(value, tuple) else value


def _decode(cls, values: dict, **given):
    """An options object from a decoded custom_config or execution properties: every value as
    its field's type (JSON and Struct carry numbers loosely, tuples as lists), absent fields at
    their defaults, what the pipeline adds dropped; an unknown key is an error, not a setting
    silently lost."""
    values = {k: v for k, v in {**values, **given}.items() if k not in _PIPELINE_KEYS}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f'{cls.__name__} has no settings {unknown}; known: {sorted(fields)}')
    typed = {}
    for name, value in values.items():
        kind = field_type(fields[name])
        if value is not None and kind in (int, float, str):
            value = kind(value)
        elif value is not None and kind is tuple:
            value = tuple(int(v) for v in value)
        typed[name] = value
    return cls(**typed)


def _owned_unset(options, names=None) -> list[str]:
    """The fields (of `names`, or every owned one) whose owner has not filled them in."""
    return [
        f.name
        for f in dataclasses.fields(options)
        if f.metadata.get('owner')
        and (names is None or f.name in names)
        and getattr(options, f.name) is None
    ]


def _require_resolved(options) -> None:
    missing = options.unresolved()
    if missing:
        raise ValueError(
            f'{type(options).__name__} is not resolved ({", ".join(missing)} unset): use '
            '.resolved(), or build a run specification (pipeline/run_spec.py)'
        )


@dataclasses.dataclass(frozen=True)
class SourceOptions:
    """What ImageExampleGen reads: dataset, source, data directory and bad-record policy."""

    dataset: str = setting(
        'mnist', "default: the preset's (paper_celeba64: celeba), else mnist",
        choices=datasets.DATASETS,
    )  # fmt: skip
    source: str | None = setting(
        help='; '.join(
            f'{dataset}: {sources[0]} (default) | ' + ' | '.join(sources[1:])
            for dataset, sources in SOURCES.items()
        ),
        owner='dataset',
    )
    data_dir: str | None = setting(
        help='directory with the IDX files, the CelebA folder, a folder of face images (JPEG, '
        'PNG; subfolders too) or a prepared TFDS data_dir'
    )
    on_corrupt: str = setting(
        'fail', 'unreadable images: stop with an error (default) or skip, log and count',
        choices=ON_CORRUPT,
    )  # fmt: skip
    image_shape: tuple[int, int, int] | None = setting(
        help="celeba, faces: HxWxC every stored image must have; default: the dataset's ("
        + ', '.join(f'{d} {"x".join(map(str, g[0]))}' for d, g in datasets.FACE_GEOMETRY.items())
        + ')',
        owner='dataset',
        parse=integers('x', 3),
        metavar='HxWxC',
    )
    eval_fraction: float | None = setting(
        help='faces: the share of images a hash of their names puts in eval (the rest: train); '
        f'default {EVAL_FRACTION}',
        owner='dataset',
    )

    def __post_init__(self):
        _check('dataset', self.dataset, datasets.DATASETS)
        if self.source is not None:
            _check(f'source for {self.dataset}', self.source, SOURCES[self.dataset])
        if self.source not in (None, 'embedded') and not self.data_dir:
            raise ValueError(f'source {self.source!r} reads from a directory: give data_dir')
        _check('on_corrupt', self.on_corrupt, ON_CORRUPT)
        colour = self.dataset in datasets.FACE_GEOMETRY
        if self.image_shape is not None:
            if not colour:
                raise ValueError(f'image_shape is for colour images; {self.dataset} has its own')
            shape = tuple(int(v) for v in self.image_shape)
            object.__setattr__(self, 'image_shape', shape)  # a list from JSON as the tuple
            if len(shape) != 3 or shape[2] != 3 or min(shape) < 1:
                raise ValueError(f'image_shape must be (height, width, 3), got {shape}')
        if self.eval_fraction is not None:
            if self.dataset != 'faces':
                raise ValueError(
                    f'eval_fraction splits the faces dataset; {self.dataset} has its own splits'
                )
            if not 0.0 < self.eval_fraction < 1.0:
                raise ValueError(f'eval_fraction must be in (0, 1), got {self.eval_fraction}')

    def resolved(self) -> 'SourceOptions':
        """The dataset's source, image shape and split where not given."""
        values = {'source': SOURCES[self.dataset][0]}
        if self.dataset in datasets.FACE_GEOMETRY:
            values['image_shape'] = datasets.FACE_GEOMETRY[self.dataset][0]
        if self.dataset == 'faces':
            values['eval_fraction'] = EVAL_FRACTION
        resolved = _filled(self, **values)
        if resolved.source != 'embedded' and not resolved.data_dir:
            raise ValueError(f'source {resolved.source!r} reads from a directory: give data_dir')
        return resolved

    def unresolved(self) -> list[str]:
        """Owned fields still unset; those the dataset has no use for are not."""
        owned = {'source'}
        if self.dataset in datasets.FACE_GEOMETRY:
            owned.add('image_shape')
        if self.dataset == 'faces':
            owned.add('eval_fraction')
        return _owned_unset(self, owned)

    def to_custom_config(self) -> dict:
        _require_resolved(self)
        return {k: _plain(v) for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_custom_config(cls, config: dict) -> 'SourceOptions':
        return _decode(cls, config)


@dataclasses.dataclass(frozen=True)
class TransformOptions:
    """How Transform lays out images for the model (components/transform/preprocessing.py)."""

    dataset: str = SourceOptions.dataset
    binarization: str = setting(
        'dynamic',
        'MNIST: dynamic (a fresh sample every training step, as NVAE) or static (once, in '
        'Transform)',
        choices=datasets.BINARIZATIONS,
    )
    binarization_seed: int = setting(0, "MNIST: the seed of 'static' binarization")
    # Colour faces: uint8 values in int64 features are lossless and smaller than [0, 1] floats
    # (docs/measurements.md, ingestion).
    image_size: int = setting(64, "celeba, faces: the side of the model's square images")
    celeba_pixels: str = setting(
        'uint8', 'celeba, faces: how Transform stores pixels', choices=CELEBA_PIXELS
    )
    crop: tuple[int, int, int, int] | None = setting(
        help='celeba, faces: the square LEFT,TOP,RIGHT,BOTTOM cut before resizing to '
        "--image_size; default: the dataset's ("
        + ', '.join(f'{d} {",".join(map(str, g[1]))}' for d, g in datasets.FACE_GEOMETRY.items())
        + ')',
        owner='dataset',
        parse=integers(',', 4),
        metavar='L,T,R,B',
    )

    # The settings that apply to each dataset: changing another dataset's leaves the cache.
    DATASET_FIELDS: ClassVar = {
        'mnist': ('binarization', 'binarization_seed'),
        'celeba': ('image_size', 'celeba_pixels', 'crop'),
        'faces': ('image_size', 'celeba_pixels', 'crop'),
    }

    def __post_init__(self):
        _check('dataset', self.dataset, datasets.DATASETS)
        _check('binarization', self.binarization, datasets.BINARIZATIONS)
        _check('celeba_pixels', self.celeba_pixels, CELEBA_PIXELS)
        _check_at_least('image_size', self.image_size, 1)
        if self.crop is not None:
            if self.dataset not in datasets.FACE_GEOMETRY:
                raise ValueError(f'crop is for colour images; {self.dataset} has its own layout')
            crop = tuple(int(v) for v in self.crop)
            object.__setattr__(self, 'crop', crop)  # a list from JSON as the tuple
            if len(crop) != 4:
                raise ValueError(f'crop must be (left, top, right, bottom), got {crop}')

    def resolved(self) -> 'TransformOptions':
        if self.dataset not in datasets.FACE_GEOMETRY:
            return self
        return _filled(self, crop=datasets.FACE_GEOMETRY[self.dataset][1])

    def unresolved(self) -> list[str]:
        return _owned_unset(self, self.DATASET_FIELDS[self.dataset])

    def to_custom_config(self) -> dict:
        """The dataset and the settings that apply to it."""
        _require_resolved(self)
        values = {k: getattr(self, k) for k in self.DATASET_FIELDS[self.dataset]}
        return {'dataset': self.dataset, **{k: _plain(v) for k, v in values.items()}}

    @classmethod
    def from_custom_config(cls, config: dict) -> 'TransformOptions':
        return _decode(cls, config)

    def model_image_size(self) -> int:
        """The side of the images the model sees: MNIST's canvas, the faces' Transform output."""
        return datasets.MNIST_CANVAS if self.dataset == 'mnist' else self.image_size


@dataclasses.dataclass(frozen=True)
class EvaluationProtocol:
    """How models are scored; each field is the default of the EvaluationOptions field of the
    same name. BatchNorm readjustment and the sampling temperature are TrainingOptions fields
    too: the Trainer readjusts the decoder's statistics and exports them as the model's sampling
    state, so a pushed model samples as it was evaluated."""

    # Scored for the likelihoods. 'eval' is the split NVAE reports: MNIST's 10,000 test digits
    # (the embedded source's 500 eval digits), CelebA's validation partition (19,867 images).
    eval_split: str
    eval_examples: int  # 0: the whole split
    iw_samples: int  # importance samples K of the NLL bound
    # FID and precision/recall: generated images against real ones from fid_reference_split
    # (None: the split scored), at most fid_reference_examples of them (0: the whole split).
    fid_samples: int
    fid_reference_split: str | None
    fid_reference_examples: int
    sample_temperature: float  # of the prior's latents, in readjustment and in sampling
    readjust_bn_passes: int  # decoder forward passes in training mode before sampling
    readjust_bn_batch: int  # prior samples per pass
    # How much worse than the last and the best blessed model a candidate's NLL and FID may be,
    # as fractions: twice the spread of each metric over evaluation seeds (docs/blessing.md,
    # bench/bench_metric_noise.py).
    nll_tolerance: float
    fid_tolerance: float


PROTOCOLS = {
    # NVAE's evaluate.py: IW-NLL with K=1000 on the whole split; FID as its FID mode (z at
    # temperature 1.0, BatchNorm readjusted over 500 passes of 2 samples) with 10,000 generated
    # images (the official 50,000 on request: --fid_samples) against the whole training split
    # (the official reference statistics stop at 50,000 images: --fid_reference_examples).
    'paper': EvaluationProtocol(
        eval_split='eval',
        eval_examples=0,
        iw_samples=1000,
        fid_samples=10_000,
        fid_reference_split='train',
        fid_reference_examples=0,
        sample_temperature=1.0,
        readjust_bn_passes=500,
        readjust_bn_batch=2,
        nll_tolerance=0.0015,
        fid_tolerance=0.015,
    ),
    # Minutes on a CPU: K=50 on 500 images; 1,000 generated images against the whole split
    # scored (the embedded digits' 500).
    'quick': EvaluationProtocol(
        eval_split='eval',
        eval_examples=500,
        iw_samples=50,
        fid_samples=1000,
        fid_reference_split=None,
        fid_reference_examples=0,
        sample_temperature=1.0,
        readjust_bn_passes=100,
        readjust_bn_batch=16,
        nll_tolerance=0.007,
        fid_tolerance=0.05,
    ),
    # Seconds: that a pipeline runs end to end (the tiny preset's, for tests and trying a
    # deployment); its numbers are noise, and so its tolerances are wide.
    'smoke': EvaluationProtocol(
        eval_split='eval',
        eval_examples=32,
        iw_samples=2,
        fid_samples=32,
        fid_reference_split=None,
        fid_reference_examples=0,
        sample_temperature=1.0,
        readjust_bn_passes=2,
        readjust_bn_batch=4,
        nll_tolerance=0.05,
        fid_tolerance=0.5,
    ),
}


def evaluation_protocol(preset: str, given: str | None = None) -> str:
    """The protocol given, else the one the preset names (model_code/config.py)."""
    protocol = given or nvae_config.EVALUATION_PROTOCOLS[preset]
    _check('eval_protocol', protocol, PROTOCOLS)
    return protocol


def _preset_defaults(field: str) -> str:
    """'default: the preset's (tiny 8, cpu 64, ...)' for a model_code config field."""
    values = ', '.join(
        f'{p} {getattr(nvae_config.get_config(p), field)}' for p in nvae_config.PRESETS
    )
    return f"default: the preset's ({values})"


def _protocol_defaults(field: str) -> str:
    """'default: the evaluation protocol's (paper 1000, quick 50, ...)' for a protocol field."""
    values = ', '.join(f'{n} {getattr(p, field)}' for n, p in PROTOCOLS.items())
    return f"default: the evaluation protocol's ({values})"


# Model config fields that overrides cannot set: {field: what sets it}.
_NOT_OVERRIDABLE = {
    'dataset': 'the dataset',
    'image_size': 'the data',
    'batch_size': 'TrainingOptions.batch_size (--batch_size)',
    'total_steps': 'TrainingOptions.train_steps (--train_steps)',
    'steps_per_epoch': 'TrainingOptions.steps_per_epoch (--steps_per_epoch)',
    'mixed_precision': 'TrainingOptions.mixed_precision (--mixed_precision)',
    'sync_batch_norm': 'the number of replicas',
}


def _override(text: str) -> tuple[str, str]:
    """--set FIELD=VALUE."""
    if '=' not in text:
        raise ValueError(f'expected FIELD=VALUE, got {text!r}')
    name, value = text.split('=', 1)
    return name, value


_override.__name__ = 'FIELD=VALUE'


@dataclasses.dataclass(frozen=True)
class TrainingOptions:
    """What the Trainer runs (components/trainer/trainer_module.py): the model is a model_code
    preset with overrides (model_code/config.py), trained for train_steps on this data. The
    preset owns the schedule (batch size, steps, the LR warm-up scaled to train_steps) and names
    the evaluation protocol whose BatchNorm readjustment the Trainer applies before export."""

    dataset: str = SourceOptions.dataset
    binarization: str = TransformOptions.binarization  # as Transform stores MNIST images
    preset: str = setting(
        'cpu', 'the NVAE preset (model_code/config.py)', choices=nvae_config.PRESETS
    )
    overrides: dict[str, str] = setting(
        help='override a model_code config field, e.g. --set num_channels_enc=32 (repeatable)',
        factory=dict,
        flag='set',
        parse=_override,
        metavar='FIELD=VALUE',
    )
    train_steps: int | None = setting(help=_preset_defaults('total_steps'), owner='preset')
    batch_size: int | None = setting(
        help='global, over all replicas; ' + _preset_defaults('batch_size'), owner='preset'
    )
    steps_per_epoch: int | None = setting(help=_preset_defaults('steps_per_epoch'), owner='preset')
    eval_steps: int = setting(5, 'validation batches after every epoch (the same ones each time)')
    checkpoint_every_steps: int = setting(
        200,
        'checkpoint interval in steps, and at every epoch end (0: at epoch ends only); a re-run '
        'resumes from the last checkpoint',
    )
    mixed_precision: str = setting(
        'float32', 'any device; for GPUs (slow on most CPUs)', choices=nvae_config.PRECISIONS
    )
    jit_compile: str = setting(
        'auto', "XLA compilation of the train step ('auto': where Keras supports it)",
        choices=JIT_COMPILE,
    )  # fmt: skip
    eval_protocol: str | None = setting(
        help="how models are scored: 'paper' (NVAE's evaluation: K=1000 on the whole split, "
        "FID of 10,000 samples against the training split), 'quick' (minutes on a CPU) or "
        "'smoke' (seconds: that it runs); "
        "default: the preset's ("
        + ', '.join(f'{k} {v}' for k, v in nvae_config.EVALUATION_PROTOCOLS.items())
        + '); the flags below override single settings',
        owner='preset',
        choices=tuple(PROTOCOLS),
    )
    sample_temperature: float | None = setting(
        help="of generated images: BatchNorm readjustment, the Evaluator's metrics and grids, "
        "TensorBoard's grids; " + _protocol_defaults('sample_temperature'),
        owner='protocol',
    )
    readjust_bn_passes: int | None = setting(
        help='BatchNorm readjustment before sampling: decoder passes in training mode; '
        + _protocol_defaults('readjust_bn_passes'),
        owner='protocol',
    )
    readjust_bn_batch: int | None = setting(
        help='prior samples per readjustment pass; ' + _protocol_defaults('readjust_bn_batch'),
        owner='protocol',
    )
    warm_start: bool = setting(
        False,
        "train from the last blessed model's weights instead of from scratch (the same preset "
        'and overrides; its schedule starts over)',
    )

    # Carried by TFX's TrainArgs and EvalArgs, not by custom_config.
    STEP_FIELDS: ClassVar = ('train_steps', 'eval_steps')

    def __post_init__(self):
        _check('dataset', self.dataset, datasets.DATASETS)
        _check('binarization', self.binarization, datasets.BINARIZATIONS)
        _check('preset', self.preset, nvae_config.PRESETS)
        _check('mixed_precision', self.mixed_precision, nvae_config.PRECISIONS)
        _check('jit_compile', self.jit_compile, JIT_COMPILE)
        if self.eval_protocol is not None:
            _check('eval_protocol', self.eval_protocol, PROTOCOLS)
        for name in sorted(set(self.overrides) & set(_NOT_OVERRIDABLE)):
            raise ValueError(f'overrides cannot set {name}: {_NOT_OVERRIDABLE[name]} does')
        for name, value in self.overrides.items():
            try:
                nvae_config.get_config(self.preset, {name: value})
            except ValueError as e:
                raise ValueError(f'--set {name}={value}: {e}') from e  # the flag of overrides
        made_for = nvae_config.preset_dataset(self.preset)
        if made_for not in (None, self.dataset):
            raise ValueError(
                f"preset {self.preset} is the paper's {made_for} model; the dataset is "
                f'{self.dataset}'
            )
        for name in ('train_steps', 'batch_size', 'steps_per_epoch', 'readjust_bn_batch'):
            _check_at_least(name, getattr(self, name), 1)
        for name in ('eval_steps', 'checkpoint_every_steps', 'readjust_bn_passes'):
            _check_at_least(name, getattr(self, name), 0)
        if self.sample_temperature is not None and not self.sample_temperature > 0:
            raise ValueError(f'sample_temperature must be positive, got {self.sample_temperature}')

    def resolved(self) -> 'TrainingOptions':
        """The preset's schedule and protocol, and the protocol's sampling settings, where not
        given."""
        protocol = evaluation_protocol(self.preset, self.eval_protocol)
        preset = nvae_config.get_config(self.preset, self.overrides)
        sampling = PROTOCOLS[protocol]
        return _filled(
            self,
            eval_protocol=protocol,
            train_steps=preset.total_steps,
            batch_size=preset.batch_size,
            steps_per_epoch=preset.steps_per_epoch,
            sample_temperature=sampling.sample_temperature,
            readjust_bn_passes=sampling.readjust_bn_passes,
            readjust_bn_batch=sampling.readjust_bn_batch,
        )

    def unresolved(self) -> list[str]:
        return _owned_unset(self)

    def to_custom_config(self) -> dict:
        _require_resolved(self)
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in self.STEP_FIELDS}

    @classmethod
    def from_custom_config(
        cls, config: dict, *, train_steps: int, eval_steps: int
    ) -> 'TrainingOptions':
        return _decode(cls, config, train_steps=train_steps, eval_steps=eval_steps)

    def model_config(self, **fields) -> nvae_config.NVAEConfig:
        """The model to train: the preset with the overrides, for this data, batch size and
        number of steps, and `fields` only known where training runs (image size, precision,
        synchronized BatchNorm)."""
        _require_resolved(self)
        return nvae_config.scaled_config(
            self.preset,
            self.overrides,
            self.train_steps,
            dataset=self.dataset,
            batch_size=self.batch_size,
            steps_per_epoch=self.steps_per_epoch,
            **fields,
        )


def _temperatures(text: str) -> tuple[float, ...]:
    values = []
    for item in filter(None, (t.strip() for t in text.split(','))):
        try:
            value = float(item)
        except ValueError:
            raise ValueError(
                f'sample_temperatures must be comma-separated numbers, got {item!r}'
            ) from None
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f'sample_temperatures must be positive, got {item}')
        values.append(value)
    return tuple(values)


@dataclasses.dataclass(frozen=True)
class EvaluationOptions:
    """What GenerativeEvaluator measures and when it blesses (components/evaluator/), and the
    MNIST feature network it measures sample quality with (DigitClassifierTrainer). Fields at
    None take the protocol's value (EvaluationProtocol says what each means)."""

    # The flags of these two are the Trainer's: one setting for both (pipeline/run_spec.py).
    eval_protocol: str | None = setting(owner='training', flag=None)
    eval_split: str | None = setting(
        help="scored split: 'eval' (MNIST test digits, CelebA validation) or 'test' (CelebA); "
        + _protocol_defaults('eval_split'),
        owner='protocol',
        choices=SPLITS[1:],
    )
    eval_examples: int | None = setting(
        help='images scored (0: the whole split); ' + _protocol_defaults('eval_examples'),
        owner='protocol',
    )
    iw_samples: int | None = setting(
        help='importance samples K of the NLL bound; ' + _protocol_defaults('iw_samples'),
        owner='protocol',
    )
    fid_samples: int | None = setting(
        help='generated images for FID and precision/recall; ' + _protocol_defaults('fid_samples'),
        owner='protocol',
    )
    fid_reference_split: str | None = setting(
        help="real images they are compared with; default: the protocol's (paper train; quick, "
        'smoke: the scored split)',
        owner='protocol',
        choices=SPLITS,
    )
    fid_reference_examples: int | None = setting(
        help='at most this many real images (0: the whole split); '
        + _protocol_defaults('fid_reference_examples'),
        owner='protocol',
    )
    # The model's sampling state was readjusted at the Trainer's temperature, which the run
    # specification checks is this one. The readjustment itself is recorded from the model.
    sample_temperature: float | None = setting(owner='training', flag=None)
    sample_temperatures: str = setting(
        '',
        'further temperatures at which FID and precision/recall are measured and grids drawn, '
        'each after BatchNorm readjustment there (e.g. 0.6,0.8,1.0); the blessing uses '
        '--sample_temperature',
        metavar='T1,T2,...',
    )
    inception_weights: str = setting(
        '', 'Inception-v3 no-top weights file (.h5): adds *_inception_v3 metrics'
    )
    max_nll: float | None = setting(help='blessing threshold in nats (default: none)')
    max_fid: float | None = setting(
        help='blessing threshold on the first feature network (default: none); needs one: the '
        'MNIST digit classifier or --inception_weights'
    )
    nll_tolerance: float | None = setting(
        help='fraction by which NLL may be worse than the last and the best blessed model; '
        + _protocol_defaults('nll_tolerance'),
        owner='protocol',
    )
    fid_tolerance: float | None = setting(
        help='the same for FID; ' + _protocol_defaults('fid_tolerance'), owner='protocol'
    )
    bless_without_baseline: bool = setting(
        False,
        'bless by the thresholds and the best blessed metrics when the last blessed model cannot '
        'be read (default: not blessed)',
    )
    eval_seed: int = setting(
        0, "of the MNIST images' one binarization for the likelihoods, and of every draw"
    )
    digit_classifier: bool = setting(
        True, 'MNIST: FID and precision/recall on a digit classifier the pipeline trains (cached)'
    )
    digit_classifier_epochs: int = setting(10, "the digit classifier's training epochs")

    # Settings of DigitClassifierTrainer, which the pipeline adds when digit_classifier is set;
    # every other field is an execution parameter of GenerativeEvaluator.
    CLASSIFIER_FIELDS: ClassVar = ('digit_classifier', 'digit_classifier_epochs')

    def __post_init__(self):
        if self.eval_protocol is not None:
            _check('eval_protocol', self.eval_protocol, PROTOCOLS)
        if self.eval_split is not None:
            _check('eval_split', self.eval_split, SPLITS)
        if self.fid_reference_split is not None:
            _check('fid_reference_split', self.fid_reference_split, SPLITS)
        for name in ('eval_examples', 'fid_reference_examples', 'nll_tolerance', 'fid_tolerance'):
            _check_at_least(name, getattr(self, name), 0)
        for name in ('max_nll', 'max_fid'):
            _check_at_least(name, getattr(self, name), 0)
        _check_at_least('iw_samples', self.iw_samples, 1)
        _check_at_least('digit_classifier_epochs', self.digit_classifier_epochs, 1)
        # k-NN precision/recall needs more than k = 3 generated images.
        _check_at_least('fid_samples', self.fid_samples, 4)
        for name in ('max_nll', 'max_fid', 'nll_tolerance', 'fid_tolerance'):
            _check_finite(name, getattr(self, name))
        if self.sample_temperature is not None and not self.sample_temperature > 0:
            raise ValueError(f'sample_temperature must be positive, got {self.sample_temperature}')
        if isinstance(self.sample_temperatures, str):  # not a runtime parameter
            _temperatures(self.sample_temperatures)

    def resolved(self) -> 'EvaluationOptions':
        """The protocol's settings where not given (the default preset's protocol if none)."""
        name = self.eval_protocol or evaluation_protocol(TrainingOptions.preset)
        protocol = PROTOCOLS[name]
        values = {
            f.name: getattr(protocol, f.name)
            for f in dataclasses.fields(EvaluationProtocol)
            if f.name != 'fid_reference_split' and hasattr(self, f.name)
        }
        resolved = _filled(self, eval_protocol=name, **values)
        return _filled(
            resolved, fid_reference_split=protocol.fid_reference_split or resolved.eval_split
        )

    def unresolved(self) -> list[str]:
        return _owned_unset(self)

    def extra_temperatures(self) -> tuple[float, ...]:
        """sample_temperatures as numbers, without sample_temperature itself."""
        extra = []
        for value in _temperatures(self.sample_temperatures):
            if value != self.sample_temperature and value not in extra:
                extra.append(value)
        return tuple(extra)

    def measures_sample_quality(self, dataset: str) -> bool:
        """Whether a feature network measures FID and precision/recall: the MNIST digit
        classifier, or Inception-v3 from inception_weights."""
        return bool(self.inception_weights) or (dataset == 'mnist' and self.digit_classifier)

    @classmethod
    def evaluator_fields(cls) -> tuple[dataclasses.Field, ...]:
        return tuple(f for f in dataclasses.fields(cls) if f.name not in cls.CLASSIFIER_FIELDS)

    def evaluator_parameters(self) -> dict:
        """GenerativeEvaluator's execution parameters; a value may be a RuntimeParameter."""
        _require_resolved(self)
        return {f.name: getattr(self, f.name) for f in self.evaluator_fields()}

    @classmethod
    def from_evaluator_parameters(cls, exec_properties: dict) -> 'EvaluationOptions':
        """The executor's options; absent parameters (a threshold of None) at their defaults."""
        names = {f.name for f in cls.evaluator_fields()}
        return _decode(
            cls, {k: v for k, v in exec_properties.items() if k in names and v is not None}
        )
