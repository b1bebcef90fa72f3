"""The Evaluator's blessing decision, branch by branch; metrics.json as strict JSON; baselines
that cannot be loaded or scored are skipped with the reason."""

import json
import math
import os

import keras
import pytest
from tfx.types import standard_artifacts

from components.evaluator.executor import (
    Executor,
    blessing_decision,
    strict_json,
    unscorable,
)
from model_code.config import get_config
from model_code.nvae import NVAE
from nvae_tfx.training import export

FID = 'fid_mnist_classifier'
GOOD = {'nll_nats': 100.0, FID: 50.0, 'eval_split': 'eval', 'num_iw_samples': 50}
NAN, INF = math.nan, math.inf


def decide(metrics=GOOD, baseline=None, primary_fid=FID, max_nll=None, max_fid=None):
    return blessing_decision(metrics, baseline or {}, primary_fid, max_nll, max_fid, 0.01)


def test_finite_metrics_within_thresholds_are_blessed():
    assert decide() == []
    assert decide(max_nll=100.0, max_fid=50.0) == []  # at the threshold is within it
    assert decide(primary_fid='', metrics={'nll_nats': 100.0}) == []  # no FID, none asked for


def test_non_finite_candidate_metrics_are_never_blessed():
    reasons = decide(metrics={**GOOD, 'nll_nats': NAN, FID: INF})
    assert reasons == [f'non-finite metrics: nll_nats, {FID}']
    # Text recorded beside the metrics (split, protocol) is not a metric.
    assert decide(metrics={**GOOD, 'eval_protocol': 'paper'}) == []


def test_thresholds():
    assert decide(max_nll=99.5) == ['nll_nats 100.000 > threshold 99.5']
    assert decide(max_fid=49.0) == [f'{FID} 50.000 > threshold 49.0']
    assert len(decide(max_nll=99.5, max_fid=49.0)) == 2


def test_max_fid_without_a_measured_fid_fails_the_blessing():
    reasons = decide(metrics={'nll_nats': 100.0}, primary_fid='', max_fid=30.0)
    assert reasons == ['max_fid 30.0 is set but no feature network measured FID']


def test_regression_against_the_baseline():
    within = {'nll_nats': 99.2, FID: 49.6}  # 100 is 0.8% worse, 50 also 0.8%
    assert decide(baseline=within) == []
    beyond = {'nll_nats': 98.0, FID: 49.6}
    assert decide(baseline=beyond) == [
        'nll_nats 100.000 worse than baseline 98.000 beyond tolerance 1.0%'
    ]
    assert decide(baseline={'nll_nats': 99.9, FID: 40.0}) == [
        f'{FID} 50.000 worse than baseline 40.000 beyond tolerance 1.0%'
    ]
    # Only the primary FID is compared.
    assert decide(baseline={**within, 'fid_inception_v3': 1.0}) == []


@pytest.mark.parametrize('value', [NAN, INF, -INF])
def test_a_non_finite_baseline_metric_lets_nothing_through(value):
    # A far better candidate still cannot be shown to be no worse than NaN or infinity.
    better = {**GOOD, 'nll_nats': 1.0, FID: 1.0}
    reasons = decide(metrics=better, baseline={'nll_nats': value, FID: 40.0})
    assert reasons == [f'baseline nll_nats is {value}: no comparison is possible']
    assert decide(metrics=better, baseline={'nll_nats': 90.0}) == [
        f'baseline {FID} is nan: no comparison is possible'
    ]


def test_without_a_baseline_only_thresholds_count():
    assert decide(baseline={}) == []
    assert decide(baseline={}, max_nll=1.0) == ['nll_nats 100.000 > threshold 1.0']


def test_metrics_json_is_strict_json():
    report = {'metrics': {'nll_nats': NAN, 'fid': INF, 'x': [-INF, 1.5]}, 'blessed': False}
    text = json.dumps(strict_json(report), allow_nan=False)

    def refuse(constant):
        raise ValueError(f'non-standard JSON constant {constant}')

    parsed = json.loads(text, parse_constant=refuse)
    assert parsed == {'metrics': {'nll_nats': 'nan', 'fid': 'inf', 'x': ['-inf', 1.5]},
                      'blessed': False}  # fmt: skip


def test_unscorable_configs_are_named():
    mnist = get_config('tiny')
    assert unscorable(mnist, (32, 32, 1), mnist) == ''
    assert unscorable(get_config('tiny', image_size=16), (32, 32, 1), mnist) == (
        'it takes (16, 16, 1) images, the data holds (32, 32, 1)'
    )
    celeba = get_config('tiny', dataset='celeba')
    assert unscorable(celeba, (32, 32, 1), mnist) == 'it models celeba, the candidate mnist'
    five_bits = get_config('tiny', num_x_bits=5)
    assert unscorable(five_bits, (32, 32, 1), mnist) == ('it scores 5-bit pixels, the candidate 8')


def model_artifact(tmp_path, name, artifact_id):
    artifact = standard_artifacts.Model()
    artifact.uri = str(tmp_path / name)
    artifact.id = artifact_id
    os.makedirs(os.path.dirname(export.keras_model_path(artifact.uri)))
    return artifact


def test_baselines_that_cannot_be_loaded_or_scored_are_skipped_with_the_reason(tmp_path):
    def score(nvae):
        return {'nll_nats': 1.0}, None

    candidate = get_config('tiny')
    broken = model_artifact(tmp_path, 'broken', 7)
    with open(export.keras_model_path(broken.uri), 'w') as f:
        f.write('saved by another version')
    metrics, skipped = Executor._score_baseline(broken, score, (32, 32, 1), candidate)
    assert metrics == {}
    assert skipped.startswith(f'baseline model 7 ({broken.uri}) not compared: this code cannot')

    smaller = model_artifact(tmp_path, 'smaller', 8)
    keras.saving.save_model(
        NVAE(get_config('tiny', image_size=16)), export.keras_model_path(smaller.uri)
    )
    metrics, skipped = Executor._score_baseline(smaller, score, (32, 32, 1), candidate)
    assert metrics == {} and skipped.endswith(
        'not compared: it takes (16, 16, 1) images, the data holds (32, 32, 1)'
    )

    same = model_artifact(tmp_path, 'same', 9)
    nvae = NVAE(candidate)
    keras.saving.save_model(nvae, export.keras_model_path(same.uri))
    metrics, skipped = Executor._score_baseline(same, score, (32, 32, 1), candidate)
    assert metrics == {} and skipped.endswith(
        'not compared: it has no sampling state (its BatchNorm was never readjusted for sampling)'
    )
    nvae.readjust_bn(num_passes=0, batch_size=1, temperature=1.0)
    keras.saving.save_model(nvae, export.keras_model_path(same.uri))
    assert Executor._score_baseline(same, score, (32, 32, 1), candidate) == (
        {'nll_nats': 1.0},
        '',
    )
