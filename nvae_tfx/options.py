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
"""

import dataclasses
import types
import typing
from typing import ClassVar

from google.protobuf import json_format, struct_pb2
from tfx.proto import example_gen_pb2

from model_code import config as nvae_config
from nvae_tfx import datasets

# Not a setting: the hash of the code a component imports (pipeline/configs.py), which the
# pipeline adds to a custom_config so that editing that code invalidates the component's cache.
CODE_FINGERPRINT = 'code_fingerprint'

SOURCES = {'mnist': ('embedded', 'idx', 'tfds'), 'celeba': ('dir', 'tfds')}  # first: default
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


def _decode(cls, values: dict, **given):
    """An options object from a decoded custom_config or execution properties: every value as
    its field's type (JSON and Struct carry numbers loosely), absent fields at their defaults,
    the code fingerprint dropped; an unknown key is an error, not a setting silently lost."""
    values = {k: v for k, v in {**values, **given}.items() if k != CODE_FINGERPRINT}
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
    # (height, width, channels) every CelebA image must have.
    celeba_shape: tuple[int, int, int] = datasets.CELEBA_SHAPE

    def __post_init__(self):
        _check('dataset', self.dataset, datasets.DATASETS)
        if self.source is None:
            object.__setattr__(self, 'source', SOURCES[self.dataset][0])
        _check(f'source for {self.dataset}', self.source, SOURCES[self.dataset])
        if self.source != 'embedded' and not self.data_dir:
            raise ValueError(f'source {self.source!r} reads from a directory: give data_dir')
        _check('on_corrupt', self.on_corrupt, ON_CORRUPT)
        object.__setattr__(self, 'celeba_shape', tuple(int(v) for v in self.celeba_shape))

    def to_custom_config(self) -> example_gen_pb2.CustomConfig:
        struct = struct_pb2.Struct()
        struct.update(
            {
                k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()
                if v is not None
            }
        )
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
    # CelebA: the side of the square output (64: NVAE's CelebA-64) and the pixels' storage.
    # Measured (bench/results.jsonl): uint8 values in int64 features materialise in 14.1 KB per
    # 64x64x3 example against 18.6 KB for [0, 1] floats, losslessly (BUILD_NOTES.md).
    image_size: int = 64
    celeba_pixels: str = 'uint8'

    # The settings that apply to each dataset: changing the other dataset's leaves the cache.
    DATASET_FIELDS: ClassVar = {
        'mnist': ('binarization', 'binarization_seed'),
        'celeba': ('image_size', 'celeba_pixels'),
    }

    def __post_init__(self):
        _check('dataset', self.dataset, datasets.DATASETS)
        _check('binarization', self.binarization, datasets.BINARIZATIONS)
        _check('celeba_pixels', self.celeba_pixels, CELEBA_PIXELS)

    def to_custom_config(self) -> dict:
        """The dataset and the settings that apply to it."""
        fields = self.DATASET_FIELDS[self.dataset]
        return {'dataset': self.dataset, **{k: getattr(self, k) for k in fields}}

    @classmethod
    def from_custom_config(cls, config: dict) -> 'TransformOptions':
        return _decode(cls, config)


@dataclasses.dataclass(frozen=True)
class TrainingOptions:
    """What the Trainer runs (components/trainer/trainer_module.py): the model is a model_code
    preset with overrides (model_code/config.py), trained for train_steps on this data."""

    dataset: str = SourceOptions.dataset
    binarization: str = TransformOptions.binarization  # as Transform stores MNIST images
    preset: str = 'cpu'
    overrides: dict[str, str] = dataclasses.field(default_factory=dict)
    # 450: about 12 minutes of the cpu preset on 2 cores (bench/bench_pipeline.py).
    train_steps: int = 450
    batch_size: int = 64
    steps_per_epoch: int = 75  # about one pass over the embedded 4,500 training digits
    eval_steps: int = 5
    checkpoint_every_steps: int = 200  # and at every epoch end; a re-run resumes from the last
    mixed_precision: str = 'float32'  # GPU only
    jit_compile: str = 'auto'  # XLA for the train step: 'auto' where Keras supports it
    sample_temperature: float = 1.0  # of the sample grids in TensorBoard

    # Carried by TFX's TrainArgs and EvalArgs, not by custom_config.
    STEP_FIELDS: ClassVar = ('train_steps', 'eval_steps')

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
            **fields,
        )


@dataclasses.dataclass(frozen=True)
class EvaluationOptions:
    """What GenerativeEvaluator measures and when it blesses (components/evaluator/), and the
    MNIST feature network it measures sample quality with (DigitClassifierTrainer)."""

    split: str = 'eval'
    num_eval_examples: int = 500
    num_iw_samples: int = 50  # the paper uses 1000 (--iw_samples=1000); recorded with every result
    fid_num_samples: int = 1000
    sample_temperature: float = TrainingOptions.sample_temperature
    readjust_bn_passes: int = 100
    inception_weights: str = ''  # a local Inception-v3 no-top weights file enables *_inception_v3
    max_nll: float | None = None  # blessing thresholds; None: not checked
    max_fid: float | None = None
    max_regression: float = 0.01  # a candidate may be at most 1% worse than the last blessed model
    seed: int = 0
    digit_classifier: bool = True  # MNIST: train the feature network for FID (cached across runs)
    digit_classifier_epochs: int = 10

    # Settings of DigitClassifierTrainer, which the pipeline adds when digit_classifier is set;
    # every other field is an execution parameter of GenerativeEvaluator.
    CLASSIFIER_FIELDS: ClassVar = ('digit_classifier', 'digit_classifier_epochs')

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
