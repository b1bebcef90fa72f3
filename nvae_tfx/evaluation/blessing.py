"""When the Evaluator blesses a candidate, and the record of the best blessed metrics that passes
from blessing to blessing.

A candidate is blessed when every metric is finite, NLL and the first feature network's FID are
within the thresholds given (max_nll, max_fid), and each of the two is no worse, beyond its
tolerance, than

* the last blessed model's, scored again beside the candidate on the same images with the same
  seeds (paired: the noise of the draws is shared, not compared), and
* the best value any blessed model reached under the same protocol, recorded on the blessings:
  every blessed model is within its tolerance of the best, so quality cannot drift down a
  tolerance at a time.

Tolerances are fractions of the reference value, one per metric, set by the evaluation protocol
from the measured spread of each metric over evaluation seeds (docs/blessing.md).
"""

import dataclasses
import hashlib
import json
import math

import numpy as np

from nvae_tfx import strict_json

LIKELIHOOD = 'nll_nats'


def compared_metrics(primary_fid: str) -> list[str]:
    """The metrics compared with the baseline and the best: NLL, and the first feature network's
    FID where one was measured ('' when none)."""
    return [LIKELIHOOD] + ([primary_fid] if primary_fid else [])


@dataclasses.dataclass(frozen=True)
class Rule:
    max_nll: float | None  # None: not checked
    max_fid: float | None
    nll_tolerance: float  # fractions of the reference value
    fid_tolerance: float

    def tolerance(self, metric: str) -> float:
        return self.fid_tolerance if metric.startswith('fid_') else self.nll_tolerance

    def text(self, primary_fid: str) -> str:
        """The rule in words, recorded on the blessing."""
        parts = ['every metric finite']
        if self.max_nll is not None:
            parts.append(f'{LIKELIHOOD} <= {self.max_nll}')
        if self.max_fid is not None:
            parts.append(f'{primary_fid or "FID"} <= {self.max_fid}')
        for metric in compared_metrics(primary_fid):
            parts.append(
                f'{metric} within {self.tolerance(metric):.2%} of the last blessed model '
                '(scored beside it, same images and seeds) and of the best blessed value'
            )
        return '; '.join(parts)


@dataclasses.dataclass(frozen=True)
class Best:
    """The best value of each compared metric over the blessed models of one protocol (the
    protocol's key: what was scored, how, with which feature networks and evaluation code), and
    which model reached it."""

    protocol_key: str
    values: dict  # {metric: {'value': float, 'model_id': int}}

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> 'Best':
        return cls(**json.loads(text))

    def updated(self, metrics: dict, model_id: int, compared: list[str]) -> 'Best':
        """This record with a newly blessed model's metrics taken in where they are better."""
        values = dict(self.values)
        for metric in compared:
            if metric not in values or metrics[metric] < values[metric]['value']:
                values[metric] = {'value': float(metrics[metric]), 'model_id': int(model_id)}
        return Best(self.protocol_key, values)


def protocol_key(protocol: dict, scored_images: np.ndarray, reference: dict, code: str) -> str:
    """What makes metrics comparable across evaluations: the protocol's settings, the very
    images scored, the real images' features per feature network, and the evaluation code."""
    digest = hashlib.sha256(strict_json.dumps(protocol, sort_keys=True).encode())
    digest.update(np.ascontiguousarray(scored_images).tobytes())
    for name in sorted(reference):
        digest.update(name.encode() + np.ascontiguousarray(reference[name]).tobytes())
    digest.update(code.encode())
    return digest.hexdigest()[:16]


def decide(
    metrics: dict,
    rule: Rule,
    primary_fid: str,
    baseline: dict,
    best: Best | None,
    baseline_id: int | None = None,
) -> list[str]:
    """Reasons not to bless; empty means blessed. baseline: the metrics of the last blessed model
    (baseline_id) scored beside the candidate, {} when none was compared; best: the record of
    this protocol, None when there is none yet."""
    non_finite = strict_json.non_finite(metrics)
    if non_finite:
        return ['non-finite metrics: ' + ', '.join(non_finite)]
    reasons = []
    if rule.max_nll is not None and metrics[LIKELIHOOD] > rule.max_nll:
        reasons.append(f'{LIKELIHOOD} {metrics[LIKELIHOOD]:.3f} > threshold {rule.max_nll}')
    if rule.max_fid is not None and not primary_fid:
        reasons.append(f'max_fid {rule.max_fid} is set but no feature network measured FID')
    elif rule.max_fid is not None and metrics[primary_fid] > rule.max_fid:
        reasons.append(f'{primary_fid} {metrics[primary_fid]:.3f} > threshold {rule.max_fid}')
    for metric in compared_metrics(primary_fid):
        references = []
        if baseline:
            references.append(('the last blessed model', baseline.get(metric, math.nan)))
        entry = best.values.get(metric) if best is not None else None
        # The best model scored again as the baseline is compared once, by its new scores.
        if entry is not None and not (baseline and entry['model_id'] == baseline_id):
            references.append((f'the best blessed (model {entry["model_id"]})', entry['value']))
        for name, reference in references:
            # Every comparison with NaN is false: it must refuse, not let the candidate through.
            if not math.isfinite(reference):
                reasons.append(f'{name} has {metric} {reference}: no comparison is possible')
                continue
            tolerance = rule.tolerance(metric)
            if metrics[metric] > reference + tolerance * abs(reference):
                reasons.append(
                    f"{metric} {metrics[metric]:.3f} worse than {name}'s {reference:.3f} "
                    f'beyond its tolerance of {tolerance:.2%}'
                )
    return reasons
