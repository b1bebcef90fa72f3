"""GenerativeEvaluator: likelihood and sample-quality metrics, and the blessing Pusher reads.

A fully custom component (not a @component function) because its executor must subclass TFX's
stock Evaluator executor: on Kubeflow V2 only that class gets `current_model_id` rewritten to
the artifact name the LatestBlessedModelStrategy query matches, so the baseline resolves there.
"""

from tfx import types
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.artifacts import FeatureNetwork
from components.evaluator import executor
from nvae_tfx.options import CODE_FINGERPRINT, EvaluationOptions, field_type


def _parameter(field) -> ExecutionParameter:
    """An EvaluationOptions field as an execution parameter; optional where it may be None (no
    threshold: MLMD cannot store an infinite float)."""
    return ExecutionParameter(type=field_type(field), optional=field.default is None)


class GenerativeEvaluatorSpec(types.ComponentSpec):
    PARAMETERS = {
        **{f.name: _parameter(f) for f in EvaluationOptions.evaluator_fields()},
        # The hash of the code the executor runs (pipeline/code_fingerprints.py): in the cache
        # key, and in the key of the protocol under which metrics are comparable.
        CODE_FINGERPRINT: ExecutionParameter(type=str),
    }
    INPUTS = {
        'model': ChannelParameter(type=standard_artifacts.Model),
        'model_run': ChannelParameter(type=standard_artifacts.ModelRun, optional=True),
        'examples': ChannelParameter(type=standard_artifacts.Examples),
        'transform_graph': ChannelParameter(type=standard_artifacts.TransformGraph),
        'baseline_model': ChannelParameter(type=standard_artifacts.Model, optional=True),
        'baseline_blessing': ChannelParameter(type=standard_artifacts.ModelBlessing, optional=True),
        'feature_network': ChannelParameter(type=FeatureNetwork, optional=True),
    }
    OUTPUTS = {
        'evaluation': ChannelParameter(type=standard_artifacts.ModelEvaluation),
        'blessing': ChannelParameter(type=standard_artifacts.ModelBlessing),
    }


class GenerativeEvaluator(base_beam_component.BaseBeamComponent):
    """Scores a trained NVAE on transformed examples, and the last blessed model (baseline)
    beside it, and blesses it by the rule of nvae_tfx/evaluation/blessing.py: finite metrics,
    the thresholds given, and NLL and FID within their tolerances of the baseline's and of the
    best blessed values (recorded on the baseline's blessing). The Trainer's summary (model_run)
    must show training ended on finite losses. The settings are an EvaluationOptions, whose
    fields are the execution parameters."""

    SPEC_CLASS = GenerativeEvaluatorSpec
    # A Beam executor spec because TFX's Evaluator executor, the base class, is a Beam executor.
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(
        self,
        model,
        examples,
        transform_graph,
        options: EvaluationOptions,
        code_fingerprint: str,
        model_run=None,
        baseline_model=None,
        baseline_blessing=None,
        feature_network=None,
    ):
        super().__init__(
            spec=GenerativeEvaluatorSpec(
                model=model,
                model_run=model_run,
                examples=examples,
                transform_graph=transform_graph,
                baseline_model=baseline_model,
                baseline_blessing=baseline_blessing,
                feature_network=feature_network,
                **options.evaluator_parameters(),
                **{CODE_FINGERPRINT: code_fingerprint},
                evaluation=types.Channel(type=standard_artifacts.ModelEvaluation),
                blessing=types.Channel(type=standard_artifacts.ModelBlessing),
            )
        )
