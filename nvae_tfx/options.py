"""The settings of each component the pipeline configures, typed, with their defaults: this is the
only place a default is written. The runners build them (pipeline/cli.py, from flags), the
pipeline passes them to the components, and each crosses the TFX boundary in one encoding that
the component's executor or module file decodes:

* SourceOptions -> ImageExampleGen: ExampleGen's standard CustomConfig proto (a
  google.protobuf.Struct), so the component keeps FileBasedExampleGen's spec and driver;
* TransformOptions -> Transform's custom_config, read by preprocessing_fn;
* TrainingOptions -> the Trainer's custom_config, read by run_fn; the step counts travel in
  TrainArgs and EvalArgs;
* EvaluationOptions -> GenerativeEvaluator's execution parameters, one per field (so that a
  field may be an orchestrator's runtime parameter), and DigitClassifierTrainer's epochs.

A field whose default is None is owned by the model preset (model_code/config.py: batch size,
steps) or by the evaluation protocol the preset names (PROTOCOLS: images scored, importance
samples, generated and real counts, temperature, BatchNorm readjustment): given a value, that
value wins; left at None, the object fills it in when it is made (`_resolve`), so every options
object a component receives, and ML Metadata records, holds the values actually used.
"""

import dataclasses
import math
import types
import typing
from typing import ClassVar

from google.protobuf import json_format, struct_pb2
from tfx.proto import example_gen_pb2

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


def _check(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f'{name} must be one of {tuple(choices)}, got {value!r}')


def field_type(field: dataclasses.Field):
    """The field's type without None (float for `float | None`) and without parameters (dict
    for `dict[str, str]`)."""
    kind = field.type
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        kind = next(t for t in typing.get_args(kind) if t is not type(None))
    return typing.get_origin(kind) or kind


def _resolve(options, **defaults) -> None:
    """Fills the fields of a frozen options object that are None with the given defaults."""
    for name, value in defaults.items():
        if getattr(options, name) is None:
            object.__setattr__(options, name, value)


def _plain(value):
    """Tuples as lists, as JSON and protobuf Structs carry them."""
    return list(value) if isinstance(value, tuple) else value


def _check_at_least(name: str, value, minimum: int) -> None:
    """Numbers only: a field may hold an orchestrator's runtime parameter instead."""
    if isinstance(value, (int, float)) and value < minimum:
        raise ValueError(f'{name} must be at least {minimum}, got {value}')


def _decode(cls, values: dict, **given):
    """An options object from a decoded custom_config or execution properties: every value as
    its field's type (JSON and Struct carry numbers loosely), absent fields at their defaults,
    what the pipeline adds dropped; an unknown key is an error, not a setting silently lost."""
    values = {k: v for k, v in {**values, **given}.items() if k not in _PIPELINE_KEYS}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f'{cls.__name__} has no settings {unknown}; known: {sorted(fields)}')
    typed = {}
    for name, value in values.items():
        kind = field_type(fields[name])
        typed[name] = kind(value) if value is not None and kind in (int, float, str) else value
    return cls(**typed)


@dataclasses.dataclass(frozen=True)
class SourceOptions:
    """What ImageExampleGen reads: dataset, source, data directory and bad-record policy."""

    dataset: str = 'mnist'
    source: str | None = None  # None: the dataset's default, the first of SOURCES[dataset]
    data_dir: str | None = None
    on_corrupt: str = 'fail'
    # Colour datasets: the (height, width, channels) every image must have; None: the dataset's
    # (datasets.FACE_GEOMETRY). MNIST: None (digits are 28x28 by their format).
    image_shape: tuple[int, int, int] | None = None
    # 'faces': the share of images put in 'eval' (EVAL_FRACTION when None); others: None.
    eval_fraction: float | None = None

    def __post_init__(self):
        _check('dataset', self.dataset, datasets.DATASETS)
        if self.source is None:
            object.__setattr__(self, 'source', SOURCES[self.dataset][0])
        _check(f'source for {self.dataset}', self.source, SOURCES[self.dataset])
        if self.source != 'embedded' and not self.data_dir:
            raise ValueError(f'source {self.source!r} reads from a directory: give data_dir')
        _check('on_corrupt', self.on_corrupt, ON_CORRUPT)
        if self.dataset in datasets.FACE_GEOMETRY:
            _resolve(self, image_shape=datasets.FACE_GEOMETRY[self.dataset][0])
            object.__setattr__(self, 'image_shape', tuple(int(v) for v in self.image_shape))
            if len(self.image_shape) != 3 or self.image_shape[2] != 3 or min(self.image_shape) < 1:
                raise ValueError(f'image_shape must be (height, width, 3), got {self.image_shape}')
        elif self.image_shape is not None:
            raise ValueError(f'image_shape is for colour images; {self.dataset} has its own')
        if self.dataset == 'faces':
            _resolve(self, eval_fraction=EVAL_FRACTION)
            if not 0.0 < self.eval_fraction < 1.0:
                raise ValueError(f'eval_fraction must be in (0, 1), got {self.eval_fraction}')
        elif self.eval_fraction is not None:
            raise ValueError(
                f'eval_fraction splits the faces dataset; {self.dataset} has its own splits'
            )

    def to_custom_config(self, code_fingerprint: str = '') -> example_gen_pb2.CustomConfig:
        struct = struct_pb2.Struct()
        struct.update({k: _plain(v) for k, v in dataclasses.asdict(self).items() if v is not None})
        if code_fingerprint:
            struct.update({CODE_FINGERPRINT: code_fingerprint})
        config = example_gen_pb2.CustomConfig()
        config.custom_config.Pack(struct)
        return config

    @classmethod
    def from_custom_config(cls, config: example_gen_pb2.CustomConfig) -> 'SourceOptions':
        struct = struct_pb2.Struct()
        if not config.custom_config.Unpack(struct):
            raise ValueError('ImageExampleGen custom_config does not hold SourceOptions')
        return _decode(cls, json_format.MessageToDict(struct))


@dataclasses.dataclass(frozen=True)
class TransformOptions:
    """How Transform lays out images for the model (components/transform/preprocessing.py)."""

    dataset: str = SourceOptions.dataset
    # MNIST: 'dynamic' or 'static' binarization (datasets.BINARIZATIONS); the seed of 'static'.
    binarization: str = 'dynamic'
    binarization_seed: int = 0
    # Colour faces (CelebA, faces): the side of the square output (64: NVAE's CelebA-64) and the
    # pixels' storage. Measured (bench/results.jsonl): uint8 values in int64 features materialise
    # in 14.1 KB per 64x64x3 example against 18.6 KB for [0, 1] floats, losslessly
    # (BUILD_NOTES.md).
    image_size: int = 64
    celeba_pixels: str = 'uint8'
    # Colour faces: the square (left, top, right, bottom) cut from each image before resizing;
    # None: the dataset's (datasets.FACE_GEOMETRY: NVAE's for CelebA, LFW's centre for faces).
    crop: tuple[int, int, int, int] | None = None

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
        if self.dataset in datasets.FACE_GEOMETRY:
            _resolve(self, crop=datasets.FACE_GEOMETRY[self.dataset][1])
            object.__setattr__(self, 'crop', tuple(int(v) for v in self.crop))
            if len(self.crop) != 4:
                raise ValueError(f'crop must be (left, top, right, bottom), got {self.crop}')
        elif self.crop is not None:
            raise ValueError(f'crop is for colour images; {self.dataset} has its own layout')

    def to_custom_config(self) -> dict:
        """The dataset and the settings that apply to it."""
        fields = self.DATASET_FIELDS[self.dataset]
        values = {k: getattr(self, k) for k in fields}
        return {'dataset': self.dataset, **{k: _plain(v) for k, v in values.items()}}

    @classmethod
    def from_custom_config(cls, config: dict) -> 'TransformOptions':
        return _decode(cls, config)


SPLITS = ('train', 'eval', 'test')  # 'test': CelebA only


@dataclasses.dataclass(frozen=True)
class EvaluationProtocol:
    """How models are scored; each field is the default of the EvaluationOptions field of the
    same name. BatchNorm readjustment and the sampling temperature are TrainingOptions fields
    too: the Trainer readjusts the decoder's statistics and exports them as the model's sampling
    state, so a pushed model samples as it was evaluated."""

    # Scored for the likelihoods. 'eval' is the split NVAE reports: MNIST's 10,000 test digits
    # (the embedded source's 500 eval digits), CelebA's validation partition (19,867 images).
    split: str
    num_eval_examples: int  # 0: the whole split
    num_iw_samples: int  # importance samples K of the NLL bound
    # FID and precision/recall: generated images against real ones from fid_reference_split
    # (None: the split scored), at most fid_reference_examples of them (0: the whole split).
    fid_num_samples: int
    fid_reference_split: str | None
    fid_reference_examples: int
    sample_temperature: float  # of the prior's latents, in readjustment and in sampling
    readjust_bn_passes: int  # decoder forward passes in training mode before sampling
    readjust_bn_batch: int  # prior samples per pass
    # How much worse than the last and the best blessed model a candidate's NLL and FID may be,
    # as fractions: above the spread of each metric over evaluation seeds, measured for this
    # protocol (docs/blessing.md, bench/bench_metric_noise.py).
    nll_tolerance: float
    fid_tolerance: float


PROTOCOLS = {
    # NVAE's evaluate.py: IW-NLL with K=1000 on the whole split; FID as its FID mode (z at
    # temperature 1.0, BatchNorm readjusted over 500 passes of 2 samples) with 10,000 generated
    # images (the official 50,000 on request: --fid_samples) against the whole training split
    # (the official reference statistics stop at 50,000 images: --fid_reference_examples).
    'paper': EvaluationProtocol(
        split='eval',
        num_eval_examples=0,
        num_iw_samples=1000,
        fid_num_samples=10_000,
        fid_reference_split='train',
        fid_reference_examples=0,
        sample_temperature=1.0,
        readjust_bn_passes=500,
        readjust_bn_batch=2,
        nll_tolerance=0.002,
        fid_tolerance=0.02,
    ),
    # Minutes on a CPU: K=50 on 500 images; 1,000 generated images against the whole split
    # scored (the embedded digits' 500).
    'quick': EvaluationProtocol(
        split='eval',
        num_eval_examples=500,
        num_iw_samples=50,
        fid_num_samples=1000,
        fid_reference_split=None,
        fid_reference_examples=0,
        sample_temperature=1.0,
        readjust_bn_passes=100,
        readjust_bn_batch=16,
        nll_tolerance=0.005,
        fid_tolerance=0.05,
    ),
}


def evaluation_protocol(preset: str, given: str | None = None) -> str:
    """The protocol given, else the one the preset names (model_code/config.py)."""
    protocol = given or nvae_config.EVALUATION_PROTOCOLS[preset]
    _check('eval_protocol', protocol, PROTOCOLS)
    return protocol


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


@dataclasses.dataclass(frozen=True)
class TrainingOptions:
    """What the Trainer runs (components/trainer/trainer_module.py): the model is a model_code
    preset with overrides (model_code/config.py), trained for train_steps on this data. The
    preset owns the schedule (batch size, steps, the LR warm-up scaled to train_steps) and names
    the evaluation protocol whose BatchNorm readjustment the Trainer applies before export."""

    dataset: str = SourceOptions.dataset
    binarization: str = TransformOptions.binarization  # as Transform stores MNIST images
    preset: str = 'cpu'
    overrides: dict[str, str] = dataclasses.field(default_factory=dict)
    # None: the preset's (NVAEConfig.total_steps, batch_size, steps_per_epoch). batch_size is
    # global, over all replicas.
    train_steps: int | None = None
    batch_size: int | None = None
    steps_per_epoch: int | None = None
    eval_steps: int = 5
    # And at every epoch end (0: only there); a re-run resumes from the last checkpoint.
    checkpoint_every_steps: int = 200
    mixed_precision: str = 'float32'  # any device; for GPUs (slow on most CPUs)
    jit_compile: str = 'auto'  # XLA for the train step: 'auto' where Keras supports it
    eval_protocol: str | None = None  # None: the preset's (nvae_config.EVALUATION_PROTOCOLS)
    # None: the protocol's. The temperature of generated images (TensorBoard's grids too).
    sample_temperature: float | None = None
    readjust_bn_passes: int | None = None
    readjust_bn_batch: int | None = None
    # Start from the last blessed model's weights (the pipeline gives it to the Trainer as
    # base_model) instead of from scratch.
    warm_start: bool = False

    # Carried by TFX's TrainArgs and EvalArgs, not by custom_config.
    STEP_FIELDS: ClassVar = ('train_steps', 'eval_steps')
    # The protocol's settings of the BatchNorm readjustment the Trainer applies before export.
    SAMPLING_FIELDS: ClassVar = ('sample_temperature', 'readjust_bn_passes', 'readjust_bn_batch')

    def __post_init__(self):
        _check('dataset', self.dataset, datasets.DATASETS)
        _check('binarization', self.binarization, datasets.BINARIZATIONS)
        _check('preset', self.preset, nvae_config.PRESETS)
        _check('mixed_precision', self.mixed_precision, nvae_config.PRECISIONS)
        _check('jit_compile', self.jit_compile, JIT_COMPILE)
        model_fields = {f.name for f in dataclasses.fields(nvae_config.NVAEConfig)}
        unknown = sorted(set(self.overrides) - model_fields)
        if unknown:
            raise ValueError(f'overrides name no model_code config field: {unknown}')
        for name in sorted(set(self.overrides) & set(_NOT_OVERRIDABLE)):
            raise ValueError(f'overrides cannot set {name}: {_NOT_OVERRIDABLE[name]} does')
        made_for = nvae_config.preset_dataset(self.preset)
        if made_for not in (None, self.dataset):
            raise ValueError(
                f"preset {self.preset} is the paper's {made_for} model; the dataset is "
                f'{self.dataset}'
            )
        object.__setattr__(
            self, 'eval_protocol', evaluation_protocol(self.preset, self.eval_protocol)
        )
        preset = nvae_config.get_config(self.preset, self.overrides)
        protocol = PROTOCOLS[self.eval_protocol]
        _resolve(
            self,
            train_steps=preset.total_steps,
            batch_size=preset.batch_size,
            steps_per_epoch=preset.steps_per_epoch,
            **{name: getattr(protocol, name) for name in self.SAMPLING_FIELDS},
        )
        for name in ('train_steps', 'batch_size', 'steps_per_epoch', 'readjust_bn_batch'):
            _check_at_least(name, getattr(self, name), 1)
        _check_at_least('readjust_bn_passes', self.readjust_bn_passes, 0)

    def to_custom_config(self) -> dict:
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
        return nvae_config.scaled_config(
            self.preset,
            self.overrides,
            self.train_steps,
            dataset=self.dataset,
            batch_size=self.batch_size,
            steps_per_epoch=self.steps_per_epoch,
            **fields,
        )


@dataclasses.dataclass(frozen=True)
class EvaluationOptions:
    """What GenerativeEvaluator measures and when it blesses (components/evaluator/), and the
    MNIST feature network it measures sample quality with (DigitClassifierTrainer). Fields at
    None take the protocol's value (EvaluationProtocol says what each means)."""

    protocol: str = evaluation_protocol(TrainingOptions.preset)
    split: str | None = None
    num_eval_examples: int | None = None
    num_iw_samples: int | None = None
    fid_num_samples: int | None = None
    fid_reference_split: str | None = None
    fid_reference_examples: int | None = None
    # Of generated images; the model's sampling state was readjusted at the Trainer's, which the
    # pipeline checks is this one. The readjustment itself is recorded from the model.
    sample_temperature: float | None = None
    # Further temperatures at which FID and precision/recall are measured (comma-separated),
    # each after BatchNorm readjustment there; the blessing uses sample_temperature's.
    sample_temperatures: str = ''
    inception_weights: str = ''  # a local Inception-v3 no-top weights file enables *_inception_v3
    max_nll: float | None = None  # blessing thresholds; None: not checked
    max_fid: float | None = None
    nll_tolerance: float | None = None
    fid_tolerance: float | None = None
    # A last blessed model that cannot be read (a storage error, a damaged file) refuses the
    # blessing, unless this allows blessing without that comparison.
    bless_without_baseline: bool = False
    seed: int = 0  # of the MNIST images' one binarization for the likelihoods, and of sampling
    digit_classifier: bool = True  # MNIST: train the feature network for FID (cached across runs)
    digit_classifier_epochs: int = 10

    # Settings of DigitClassifierTrainer, which the pipeline adds when digit_classifier is set;
    # every other field is an execution parameter of GenerativeEvaluator.
    CLASSIFIER_FIELDS: ClassVar = ('digit_classifier', 'digit_classifier_epochs')

    def __post_init__(self):
        _check('protocol', self.protocol, PROTOCOLS)
        protocol = PROTOCOLS[self.protocol]
        _resolve(
            self,
            **{
                f.name: getattr(protocol, f.name)
                for f in dataclasses.fields(EvaluationProtocol)
                if f.name != 'fid_reference_split' and hasattr(self, f.name)
            },
        )
        _resolve(self, fid_reference_split=protocol.fid_reference_split or self.split)
        _check('split', self.split, SPLITS)
        _check('fid_reference_split', self.fid_reference_split, SPLITS)
        for name in ('num_eval_examples', 'fid_reference_examples'):
            _check_at_least(name, getattr(self, name), 0)
        _check_at_least('num_iw_samples', self.num_iw_samples, 1)
        # k-NN precision/recall needs more than k = 3 generated images.
        _check_at_least('fid_num_samples', self.fid_num_samples, 4)
        for name in ('nll_tolerance', 'fid_tolerance'):
            _check_at_least(name, getattr(self, name), 0)
        if isinstance(self.sample_temperatures, str):  # not a runtime parameter
            self.extra_temperatures()
        for name in ('max_nll', 'max_fid', 'nll_tolerance', 'fid_tolerance'):
            value = getattr(self, name)
            # Every comparison with NaN is false: a NaN threshold would bless anything.
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f'{name} must be a finite number, got {value}')

    def extra_temperatures(self) -> tuple[float, ...]:
        """sample_temperatures as numbers, without sample_temperature itself."""
        values = []
        for text in filter(None, (t.strip() for t in self.sample_temperatures.split(','))):
            try:
                value = float(text)
            except ValueError:
                raise ValueError(
                    f'sample_temperatures must be comma-separated numbers, got {text!r}'
                ) from None
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f'sample_temperatures must be positive, got {text}')
            if value != self.sample_temperature and value not in values:
                values.append(value)
        return tuple(values)

    def measures_sample_quality(self, dataset: str) -> bool:
        """Whether a feature network measures FID and precision/recall: the MNIST digit
        classifier, or Inception-v3 from inception_weights."""
        return bool(self.inception_weights) or (dataset == 'mnist' and self.digit_classifier)

    @classmethod
    def evaluator_fields(cls) -> tuple[dataclasses.Field, ...]:
        return tuple(f for f in dataclasses.fields(cls) if f.name not in cls.CLASSIFIER_FIELDS)

    def evaluator_parameters(self) -> dict:
        """GenerativeEvaluator's execution parameters; a value may be a RuntimeParameter."""
        return {f.name: getattr(self, f.name) for f in self.evaluator_fields()}

    @classmethod
    def from_evaluator_parameters(cls, exec_properties: dict) -> 'EvaluationOptions':
        """The executor's options; absent parameters (a threshold of None) at their defaults."""
        names = {f.name for f in cls.evaluator_fields()}
        return _decode(
            cls, {k: v for k, v in exec_properties.items() if k in names and v is not None}
        )
