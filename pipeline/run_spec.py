"""The run specification: everything a run will use, resolved once, checked once, before TFX,
Beam or TensorFlow is imported. Every runner builds one (pipeline/cli.py, from flags; tests
directly), and pre-flight, --print_config and create_pipeline take it.

Resolution: the transform settings default to the source's dataset; the evaluation follows the
training's protocol and sampling temperature (the Trainer readjusts BatchNorm at the
temperature the Evaluator samples at); then each options object fills what its owner gives
(nvae_tfx/options.py). Checks: the components agree on the data; the scored and FID reference
splits are splits the source has; the model configuration the Trainer will build is valid
(validated, not built); a face crop fits the images; a FID threshold has a feature network to
measure FID with.
"""

import dataclasses

from model_code import config as nvae_config
from nvae_tfx import datasets
from nvae_tfx.data import checks
from nvae_tfx.options import EvaluationOptions, SourceOptions, TrainingOptions, TransformOptions
from pipeline import configs


@dataclasses.dataclass(frozen=True)
class OutputPaths:
    """Where a run writes: every artifact, the pushed models, and (local runners) ML Metadata."""

    pipeline_root: str
    serving_dir: str
    metadata_path: str | None = None


@dataclasses.dataclass(frozen=True)
class RunSpec:
    name: str  # the pipeline's
    source: SourceOptions
    transform: TransformOptions
    training: TrainingOptions | None  # None: the data half only (ingestion to Transform)
    evaluation: EvaluationOptions | None  # with training
    paths: OutputPaths
    beam_args: tuple[str, ...] = configs.DEFAULT_BEAM_ARGS

    @classmethod
    def create(
        cls,
        source: SourceOptions,
        paths: OutputPaths,
        transform: TransformOptions | None = None,
        training: TrainingOptions | None = None,
        evaluation: EvaluationOptions | None = None,
        beam_args=configs.DEFAULT_BEAM_ARGS,
        name: str | None = None,
    ) -> 'RunSpec':
        """Resolves and checks the options given (None: the defaults for the data); name: the
        pipeline's (default: nvae-<dataset>)."""
        source = source.resolved()
        transform = (transform or TransformOptions(dataset=source.dataset)).resolved()
        _agree('TransformOptions', transform.dataset, source.dataset)
        if transform.crop is not None:
            try:
                datasets.check_crop(transform.crop, source.image_shape)
            except ValueError as e:
                raise ValueError(f'--crop/--image_shape: {e}') from e
        if training is not None:
            training = training.resolved()
            _agree('TrainingOptions', training.dataset, source.dataset)
            if source.dataset == 'mnist' and training.binarization != transform.binarization:
                raise ValueError(
                    f'TrainingOptions.binarization {training.binarization!r} is not the one '
                    f'Transform applies, {transform.binarization!r}'
                )
            evaluation = evaluation or EvaluationOptions()
            if evaluation.sample_temperature not in (None, training.sample_temperature):
                raise ValueError(
                    f'EvaluationOptions.sample_temperature {evaluation.sample_temperature!r} is '
                    f"not the TrainingOptions' {training.sample_temperature!r}: the Trainer "
                    'readjusts BatchNorm at the temperature the Evaluator samples at'
                )
            evaluation = dataclasses.replace(
                evaluation,
                eval_protocol=evaluation.eval_protocol or training.eval_protocol,
                sample_temperature=training.sample_temperature,
            ).resolved()
            _check_splits(source, evaluation)
            _check_feature_network(source.dataset, evaluation)
            _check_model(training, transform)
        else:
            evaluation = None
        return cls(
            name=name or configs.pipeline_name(source.dataset),
            source=source,
            transform=transform,
            training=training,
            evaluation=evaluation,
            paths=paths,
            beam_args=tuple(beam_args),
        )

    def model_config(self) -> nvae_config.NVAEConfig:
        """The model the Trainer will build (on one device, at the options' precision)."""
        return self.training.model_config(
            image_size=self.transform.model_image_size(),
            mixed_precision=self.training.mixed_precision,
        )

    def as_dict(self, **runner) -> dict:
        """Everything the run will use, as --print_config shows it; runner: the runner's own
        settings (where metadata lives, which cluster)."""
        config = {
            'pipeline': self.name,
            'source': dataclasses.asdict(self.source),
            'transform': self.transform.to_custom_config(),
            'training': None,
            'schedule': None,
            'model': None,
            'evaluation': None,
            'paths': dataclasses.asdict(self.paths),
            'beam_args': list(self.beam_args),
            'runner': runner,
        }
        if self.training is None:
            return config
        model = self.model_config()
        training = self.training
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
            evaluation=dataclasses.asdict(self.evaluation),
        )
        return config


def _agree(name: str, dataset: str, read: str) -> None:
    if dataset != read:
        raise ValueError(f'{name}.dataset {dataset!r} is not the dataset read, {read!r}')


def _check_splits(source: SourceOptions, evaluation: EvaluationOptions) -> None:
    """The scored split and the FID reference split must be splits the source provides."""
    splits = checks.split_names(source)
    for flag, split in (
        ('eval_split', evaluation.eval_split),
        ('fid_reference_split', evaluation.fid_reference_split),
    ):
        if split not in splits:
            raise ValueError(
                f'--{flag}={split}: {source.dataset} from the {source.source} source has the '
                f'splits {", ".join(splits)}'
            )


def _check_feature_network(dataset: str, evaluation: EvaluationOptions) -> None:
    if evaluation.max_fid is not None and not evaluation.measures_sample_quality(dataset):
        raise ValueError(
            f'--max_fid={evaluation.max_fid}: no feature network measures FID on {dataset} '
            'here; give --inception_weights FILE'
            + (' or drop --no_digit_classifier' if dataset == 'mnist' else '')
        )


def _check_model(training: TrainingOptions, transform: TransformOptions) -> None:
    size = transform.model_image_size()
    try:
        training.model_config(image_size=size, mixed_precision=training.mixed_precision)
    except ValueError as e:
        settings = ', '.join(
            [f'preset {training.preset}', f'{size}x{size} images']
            + [f'{k}={v}' for k, v in training.overrides.items()]
        )
        raise ValueError(f'the model configuration ({settings}) is invalid: {e}') from e
