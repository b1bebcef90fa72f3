"""create_pipeline(): the runner-agnostic NVAE pipeline definition.

ImageExampleGen -> StatisticsGen -> ImportSchemaGen -> ExampleValidator -> ValidationGate
-> Transform -> Trainer -> GenerativeEvaluator (baseline: the latest blessed model; features:
the DigitClassifierTrainer's network) -> Pusher -> RunReport (the run's report, and the pushed
model's card). Runners (run_local.py, ...) only choose where and how it runs.
"""

import os

from tfx import v1 as tfx

from components.baseline_resolver import baseline_resolver, latest_blessed_model
from components.digit_classifier_trainer import DigitClassifierTrainer
from components.evaluator.component import GenerativeEvaluator
from components.example_gen.component import ImageExampleGen
from components.run_report.component import run_report
from components.validation_gate import ValidationGate
from nvae_tfx.options import CHECKPOINT_ROOT, CODE_FINGERPRINT
from pipeline import code_fingerprints, configs
from pipeline.run_spec import RunSpec


def create_pipeline(
    spec: RunSpec,
    metadata_connection_config=None,
    enable_cache: bool = True,
    schema_dir: str | None = None,
    user_code: str = 'module_files',
    image_root: str | None = None,
    baseline_excludes_candidate: bool = True,
) -> tfx.dsl.Pipeline:
    """The pipeline of a run specification (pipeline/run_spec.py: resolved and checked
    options, output paths, Beam args); without training, only the data half (ingestion,
    validation, Transform).

    user_code: 'module_files' (TFX packages the Transform and Trainer module files when the
    pipeline is compiled: local runs) or 'installed' (they are imported from the installed
    project, as in the Airflow environment and the container image). Either way each of the
    project's components carries the hash of the code it runs (pipeline/code_fingerprints.py),
    which keeps its cache honest.
    image_root: where the project lives inside the container image the components run in (its
    schemas, the embedded digits); None: this checkout.
    baseline_excludes_candidate: the Evaluator's baseline is the latest blessed model other than
    the candidate, so that an identical rerun is cached through Pusher
    (components/baseline_resolver.py); False: TFX's own strategy, where the orchestrator
    compiles only TFX's strategies (Kubeflow Pipelines v2) or resolves the candidate channel to
    every model the Trainer ever made (Airflow).
    """
    if user_code not in ('module_files', 'installed'):
        raise ValueError(f"user_code must be 'module_files' or 'installed', got {user_code!r}")
    source, transform = spec.source, spec.transform
    input_base = None
    if image_root:
        schema_dir = schema_dir or os.path.join(image_root, 'schemas', source.dataset)
        if source.source == 'embedded':
            input_base = os.path.join(image_root, configs.IMAGE_EMBEDDED_DATA)
    example_gen = ImageExampleGen(
        source,
        input_base=input_base,
        code_fingerprint=code_fingerprints.fingerprint('ImageExampleGen'),
    )
    if user_code == 'installed':
        transform_code = dict(preprocessing_fn=configs.TRANSFORM_FN)
    else:
        transform_code = dict(module_file=configs.TRANSFORM_MODULE)
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs['examples'])
    schema_gen = tfx.components.ImportSchemaGen(
        schema_file=os.path.join(schema_dir or configs.schema_dir(source.dataset), 'schema.pbtxt')
    )
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs['statistics'], schema=schema_gen.outputs['schema']
    )
    validation_gate = ValidationGate(
        anomalies=example_validator.outputs['anomalies'],
        schema=schema_gen.outputs['schema'],
        code_fingerprint=code_fingerprints.fingerprint('ValidationGate'),
    )
    transform_component = tfx.components.Transform(
        examples=example_gen.outputs['examples'],
        schema=validation_gate.outputs['validated_schema'],
        custom_config={
            **transform.to_custom_config(),
            CODE_FINGERPRINT: code_fingerprints.fingerprint('Transform'),
        },
        **transform_code,
        # Per-pixel statistics of images are large and say little; ingestion stats suffice.
        disable_statistics=True,
    )

    components = [
        example_gen,
        statistics_gen,
        schema_gen,
        example_validator,
        validation_gate,
        transform_component,
    ]
    if spec.training is not None:
        components += _model_half(
            transform_component,
            spec.training,
            spec.evaluation,
            spec.paths.serving_dir,
            _join(spec.paths.pipeline_root, 'Trainer', 'checkpoints'),
            user_code,
            baseline_excludes_candidate,
        )
    components.append(run_report(spec.name, components, metadata_connection_config))

    return tfx.dsl.Pipeline(
        pipeline_name=spec.name,
        pipeline_root=spec.paths.pipeline_root,
        components=components,
        enable_cache=enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=list(spec.beam_args),
    )


def _join(root: str, *parts: str) -> str:
    """A path under a local root or a URI (gs://...), whose separator is '/' everywhere."""
    return '/'.join([root.rstrip('/'), *parts])


def _model_half(
    transform,
    training,
    evaluation,
    serving_dir,
    checkpoint_root,
    user_code,
    baseline_excludes_candidate,
):
    trainer_code = (
        dict(run_fn=configs.TRAINER_FN)
        if user_code == 'installed'
        else dict(module_file=configs.TRAINER_MODULE)
    )
    # On a warm start, the Trainer starts from the last blessed model before this run.
    start = latest_blessed_model('warm_start_model_resolver') if training.warm_start else None
    trainer = tfx.components.Trainer(
        **trainer_code,
        examples=transform.outputs['transformed_examples'],
        transform_graph=transform.outputs['transform_graph'],
        base_model=start.outputs['model'] if start else None,
        train_args=tfx.proto.TrainArgs(num_steps=training.train_steps),
        eval_args=tfx.proto.EvalArgs(num_steps=training.eval_steps),
        # Checkpoints live under the pipeline root, not under one run's (or job's) outputs, so that
        # a rerun or a resubmitted job resumes the same training.
        custom_config={
            **training.to_custom_config(),
            CODE_FINGERPRINT: code_fingerprints.fingerprint('Trainer'),
            CHECKPOINT_ROOT: checkpoint_root,
        },
    )
    baseline = baseline_resolver(trainer.outputs['model'], baseline_excludes_candidate)
    nodes = [trainer, baseline] + ([start] if start else [])
    feature_network = None
    if training.dataset == 'mnist' and evaluation.digit_classifier:
        classifier = DigitClassifierTrainer(
            examples=transform.outputs['transformed_examples'],
            transform_graph=transform.outputs['transform_graph'],
            epochs=evaluation.digit_classifier_epochs,
            code_fingerprint=code_fingerprints.fingerprint('DigitClassifierTrainer'),
        )
        feature_network = classifier.outputs['feature_network']
        nodes.append(classifier)
    evaluator = GenerativeEvaluator(
        model=trainer.outputs['model'],
        model_run=trainer.outputs['model_run'],
        examples=transform.outputs['transformed_examples'],
        transform_graph=transform.outputs['transform_graph'],
        options=evaluation,
        code_fingerprint=code_fingerprints.fingerprint('GenerativeEvaluator'),
        baseline_model=baseline.outputs['model'],
        baseline_blessing=baseline.outputs['model_blessing'],
        feature_network=feature_network,
    )
    # Gated by model_blessing rather than tfx.dsl.Cond: the blessing check inside Pusher holds on
    # every orchestrator (Airflow's runner ignores Cond).
    pusher = tfx.components.Pusher(
        model=trainer.outputs['model'],
        model_blessing=evaluator.outputs['blessing'],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=serving_dir)
        ),
    )
    return nodes + [evaluator, pusher]
