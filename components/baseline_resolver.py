"""The Evaluator's baseline: the latest blessed model other than the candidate.

TFX's LatestBlessedModelStrategy returns the latest blessed model, which after a run whose
Trainer was cached is the candidate itself: the Evaluator then re-runs against it, blesses it
again, and Pusher pushes the same model once more. Leaving the candidate out gives an identical
rerun the baseline its first run had, so the Evaluator and Pusher are cached too.
"""

from tfx import v1 as tfx
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import (
    LatestBlessedModelStrategy,
)

# The input that carries the candidate (the Trainer's model).
CANDIDATE = 'candidate'


class LatestBlessedOtherModelStrategy(LatestBlessedModelStrategy):
    """Inputs: 'model' and 'model_blessing' (every one in the store), CANDIDATE (the Trainer's
    output); outputs the latest blessed model that is not the candidate, and its blessing."""

    def resolve_artifacts(self, store, input_dict):
        candidate_ids = {a.id for a in input_dict[CANDIDATE]}
        others = {
            'model': [a for a in input_dict['model'] if a.id not in candidate_ids],
            'model_blessing': input_dict['model_blessing'],
        }
        if not others['model'] or not others['model_blessing']:
            resolved = {key: [] for key in others}
        else:
            resolved = self._resolve(others, 'model', 'model_blessing')
        return {**resolved, CANDIDATE: input_dict[CANDIDATE]}


def latest_blessed_model(node_id: str):
    """A Resolver node with TFX's own strategy: the latest blessed model in the store."""
    return tfx.dsl.Resolver(
        strategy_class=LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id(node_id)


def baseline_resolver(candidate: tfx.dsl.Channel, exclude_candidate: bool = True):
    """The Resolver node; exclude_candidate=False: TFX's own strategy."""
    if not exclude_candidate:
        return latest_blessed_model('latest_blessed_model_resolver')
    return tfx.dsl.Resolver(
        strategy_class=LatestBlessedOtherModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
        **{CANDIDATE: candidate},
    ).with_id('latest_blessed_model_resolver')
