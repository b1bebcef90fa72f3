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


class GenerativeEvaluatorSpec(types.ComponentSpec):
    PARAMETERS = {
        'split': ExecutionParameter(type=str),
        'num_eval_examples': ExecutionParameter(type=int),
        'num_iw_samples': ExecutionParameter(type=int),
        'fid_num_samples': ExecutionParameter(type=int),
        'sample_temperature': ExecutionParameter(type=float),
        'readjust_bn_passes': ExecutionParameter(type=int),
        'inception_weights': ExecutionParameter(type=str, optional=True),
        # None: no threshold (MLMD cannot store an infinite float).
        'max_nll': ExecutionParameter(type=float, optional=True),
        'max_fid': ExecutionParameter(type=float, optional=True),
        'max_regression': ExecutionParameter(type=float),
        'seed': ExecutionParameter(type=int),
    }
    INPUTS = {
        'model': ChannelParameter(type=standard_artifacts.Model),
        'examples': ChannelParameter(type=standard_artifacts.Examples),
        'transform_graph': ChannelParameter(type=standard_artifacts.TransformGraph),
        'baseline_model': ChannelParameter(type=standard_artifacts.Model, optional=True),
        'feature_network': ChannelParameter(type=FeatureNetwork, optional=True),
    }
    OUTPUTS = {
        'evaluation': ChannelParameter(type=standard_artifacts.ModelEvaluation),
        'blessing': ChannelParameter(type=standard_artifacts.ModelBlessing),
    }


class GenerativeEvaluator(base_beam_component.BaseBeamComponent):
    """Scores a trained NVAE on transformed examples and blesses it when all metrics are finite,
    NLL <= max_nll and FID <= max_fid (on the primary feature network) where those are given, and
    neither is worse than the baseline's by more than max_regression (a fraction)."""

    SPEC_CLASS = GenerativeEvaluatorSpec
    # A Beam executor spec because TFX's Evaluator executor, the base class, is a Beam executor.
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(
        self,
        model,
        examples,
        transform_graph,
        baseline_model=None,
        feature_network=None,
        split: str = 'eval',
        num_eval_examples: int = 500,
        num_iw_samples: int = 100,
        fid_num_samples: int = 1000,
        sample_temperature: float = 1.0,
        readjust_bn_passes: int = 100,
        inception_weights: str = '',
        max_nll: float | None = None,
        max_fid: float | None = None,
        max_regression: float = 0.0,
        seed: int = 0,
    ):
        super().__init__(
            spec=GenerativeEvaluatorSpec(
                model=model,
                examples=examples,
                transform_graph=transform_graph,
                baseline_model=baseline_model,
                feature_network=feature_network,
                split=split,
                num_eval_examples=num_eval_examples,
                num_iw_samples=num_iw_samples,
                fid_num_samples=fid_num_samples,
                sample_temperature=sample_temperature,
                readjust_bn_passes=readjust_bn_passes,
                inception_weights=inception_weights,
                max_nll=max_nll,
                max_fid=max_fid,
                max_regression=max_regression,
                seed=seed,
                evaluation=types.Channel(type=standard_artifacts.ModelEvaluation),
                blessing=types.Channel(type=standard_artifacts.ModelBlessing),
            )
        )
