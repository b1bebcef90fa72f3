"""The Evaluator's blessing rule, branch by branch (nvae_tfx/evaluation/blessing.py): thresholds,
tolerances against the last blessed model and the best blessed values, non-finite metrics; the
record of the best; metrics.json as strict JSON; baselines that cannot be read refuse the
blessing, baselines of other data are skipped, baselines sampled otherwise are readjusted."""

import json
import math
import os

import keras
import numpy as np
import pytest
from tfx.types import standard_artifacts

from components.evaluator.executor import Executor, training_problems, unscorable
from model_code.config import get_config
from model_code.nvae import NVAE
from nvae_tfx import strict_json
from nvae_tfx.evaluation.blessing import Best, Rule, decide, protocol_key
from nvae_tfx.options import EvaluationOptions
from nvae_tfx.training import export

FID = 'fid_mnist_classifier'
GOOD = {'nll_nats': 100.0, FID: 50.0, 'eval_split': 'eval', 'num_iw_samples': 50}
NAN, INF = math.nan, math.inf
RULE = Rule(max_nll=None, max_fid=None, nll_tolerance=0.01, fid_tolerance=0.04)


def judge(metrics=GOOD, baseline=None, best=None, primary_fid=FID, baseline_id=None, **rule):
    return decide(
        metrics,
        Rule(**{**RULE.__dict__, **rule}),
        primary_fid,
        baseline or {},
        best,
        baseline_id,
    )


def best_of(nll, fid, model_id=3):
    return Best('key', {'nll_nats': {'value': nll, 'model_id': model_id},
                        FID: {'value': fid, 'model_id': model_id}})  # fmt: skip


def test_finite_metrics_within_thresholds_are_blessed():
    assert judge() == []
    assert judge(max_nll=100.0, max_fid=50.0) == []  # at the threshold is within it
    assert judge(primary_fid='', metrics={'nll_nats': 100.0}) == []  # no FID, none asked for


def test_non_finite_candidate_metrics_are_never_blessed():
    reasons = judge(metrics={**GOOD, 'nll_nats': NAN, FID: INF})
    assert reasons == [f'non-finite metrics: nll_nats, {FID}']
    # Text recorded beside the metrics (split, protocol) is not a metric.
    assert judge(metrics={**GOOD, 'eval_protocol': 'paper'}) == []


def test_thresholds():
    assert judge(max_nll=99.5) == ['nll_nats 100.000 > threshold 99.5']
    assert judge(max_fid=49.0) == [f'{FID} 50.000 > threshold 49.0']
    assert len(judge(max_nll=99.5, max_fid=49.0)) == 2


def test_max_fid_without_a_measured_fid_fails_the_blessing():
    reasons = judge(metrics={'nll_nats': 100.0}, primary_fid='', max_fid=30.0)
    assert reasons == ['max_fid 30.0 is set but no feature network measured FID']


def test_each_metric_has_its_own_tolerance_against_the_last_blessed_model():
    within = {'nll_nats': 99.2, FID: 48.5}  # 0.8% and 3.1% better than the candidate
    assert judge(baseline=within) == []
    assert judge(baseline={'nll_nats': 98.0, FID: 49.6}) == [
        "nll_nats 100.000 worse than the last blessed model's 98.000 beyond its tolerance of 1.00%"
    ]
    assert judge(baseline={'nll_nats': 99.9, FID: 47.0}) == [
        f"{FID} 50.000 worse than the last blessed model's 47.000 beyond its tolerance of 4.00%"
    ]
    # Only the first feature network's FID is compared.
    assert judge(baseline={**within, 'fid_inception_v3': 1.0}) == []


def test_the_best_blessed_values_bound_the_drift():
    """Each candidate within tolerance of the last blessed one could drift down without limit;
    the best blessed values stop it."""
    last = {'nll_nats': 99.5, FID: 49.5}
    assert judge(baseline=last, best=best_of(99.5, 49.5), baseline_id=3) == []
    # The last blessed model was itself a little worse than the best: the candidate, within
    # tolerance of the last, is compared with the best too.
    reasons = judge(baseline=last, best=best_of(98.5, 47.0, model_id=1), baseline_id=3)
    assert reasons == [
        "nll_nats 100.000 worse than the best blessed (model 1)'s 98.500 beyond its tolerance "
        'of 1.00%',
        f"{FID} 50.000 worse than the best blessed (model 1)'s 47.000 beyond its tolerance of "
        '4.00%',
    ]
    # Without a baseline to score (bless_without_baseline), the record still holds.
    assert len(judge(best=best_of(98.5, 47.0, model_id=1))) == 2


def test_the_best_record_takes_in_better_values_only():
    best = Best('key', {}).updated(GOOD, model_id=5, compared=['nll_nats', FID])
    assert best.values == {'nll_nats': {'value': 100.0, 'model_id': 5},
                           FID: {'value': 50.0, 'model_id': 5}}  # fmt: skip
    best = best.updated({'nll_nats': 99.0, FID: 51.0}, model_id=6, compared=['nll_nats', FID])
    assert best.values == {'nll_nats': {'value': 99.0, 'model_id': 6},
                           FID: {'value': 50.0, 'model_id': 5}}  # fmt: skip
    assert Best.from_json(best.to_json()) == best


def test_the_protocol_key_changes_with_the_images_the_features_and_the_code():
    images, features = np.zeros((4, 2, 2, 1), 'float32'), {'net': np.ones((4, 3), 'float32')}
    key = protocol_key({'num_iw_samples': 50}, images, features, 'code1')
    assert key == protocol_key({'num_iw_samples': 50}, images.copy(), features, 'code1')
    assert key != protocol_key({'num_iw_samples': 51}, images, features, 'code1')
    assert key != protocol_key({'num_iw_samples': 50}, images + 1, features, 'code1')
    assert key != protocol_key({'num_iw_samples': 50}, images, {'net': np.zeros((4, 3))}, 'code1')
    assert key != protocol_key({'num_iw_samples': 50}, images, features, 'code2')


def test_the_rule_is_written_out():
    text = Rule(max_nll=90.0, max_fid=None, nll_tolerance=0.005, fid_tolerance=0.05).text(FID)
    assert text == (
        'every metric finite; nll_nats <= 90.0; nll_nats within 0.50% of the last blessed model '
        '(scored beside it, same images and seeds) and of the best blessed value; '
        f'{FID} within 5.00% of the last blessed model (scored beside it, same images and '
        'seeds) and of the best blessed value'
    )


@pytest.mark.parametrize('value', [NAN, INF, -INF])
def test_a_non_finite_baseline_metric_lets_nothing_through(value):
    # A far better candidate still cannot be shown to be no worse than NaN or infinity.
    better = {**GOOD, 'nll_nats': 1.0, FID: 1.0}
    reasons = judge(metrics=better, baseline={'nll_nats': value, FID: 40.0})
    assert reasons == [f'the last blessed model has nll_nats {value}: no comparison is possible']
    assert judge(metrics=better, baseline={'nll_nats': 90.0}) == [
        f'the last blessed model has {FID} nan: no comparison is possible'
    ]


def test_without_a_baseline_or_record_only_thresholds_count():
    assert judge(baseline={}) == []
    assert judge(baseline={}, max_nll=1.0) == ['nll_nats 100.000 > threshold 1.0']


def test_metrics_json_is_strict_json():
    report = {'metrics': {'nll_nats': NAN, 'fid': INF, 'x': [-INF, 1.5]}, 'blessed': False}
    text = strict_json.dumps(report)

    def refuse(constant):
        raise ValueError(f'non-standard JSON constant {constant}')

    parsed = json.loads(text, parse_constant=refuse)
    assert parsed == {'metrics': {'nll_nats': 'nan', 'fid': 'inf', 'x': ['-inf', 1.5]},
                      'blessed': False}  # fmt: skip
    assert strict_json.non_finite({'a': NAN, 'b': 1, 'c': 'nan', 'd': True}) == ['a']


def test_training_that_ended_on_non_finite_losses_is_a_reason(tmp_path):
    assert training_problems(str(tmp_path)) == [
        f'{tmp_path}/training_summary.json is missing: training did not record how it ended'
    ]
    summary = {'steps': 4, 'final': {'loss': NAN, 'val_loss': 2.0, 'kl': INF}}
    (tmp_path / 'training_summary.json').write_text(strict_json.dumps(summary))
    assert training_problems(str(tmp_path)) == [
        f'training ended with non-finite kl, loss ({tmp_path}/training_summary.json)'
    ]
    summary['final'] = {'loss': 1.0}
    (tmp_path / 'training_summary.json').write_text(strict_json.dumps(summary))
    assert training_problems(str(tmp_path)) == []


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


def score_baseline(artifact, candidate, **options):
    def score(nvae):
        return {'nll_nats': 1.0, 'sampling': nvae.sampling_settings()}, None

    return Executor._score_baseline(
        artifact, score, (32, 32, 1), candidate, EvaluationOptions(**options).resolved()
    )


def test_a_baseline_that_cannot_be_read_refuses_the_blessing_unless_allowed(tmp_path):
    candidate = NVAE(get_config('tiny'))
    candidate.readjust_bn(num_passes=0, batch_size=1, temperature=1.0)
    broken = model_artifact(tmp_path, 'broken', 7)
    with open(export.keras_model_path(broken.uri), 'w') as f:
        f.write('a truncated or damaged file')
    scored = score_baseline(broken, candidate)
    assert scored.metrics == {} and not scored.skipped
    assert scored.refused.startswith(f'the last blessed model 7 ({broken.uri}) could not be read')
    assert scored.refused.endswith(
        'not blessed without that comparison (bless_without_baseline allows it)'
    )
    allowed = score_baseline(broken, candidate, bless_without_baseline=True)
    assert not allowed.refused and allowed.skipped.endswith(
        'judged without it (bless_without_baseline)'
    )
    missing = model_artifact(tmp_path, 'missing', 8)  # its directory, no file (storage error)
    assert score_baseline(missing, candidate).refused.startswith(
        f'the last blessed model 8 ({missing.uri}) could not be read'
    )


def test_a_baseline_of_other_data_is_skipped_with_the_reason(tmp_path):
    candidate = NVAE(get_config('tiny'))
    smaller = model_artifact(tmp_path, 'smaller', 8)
    keras.saving.save_model(
        NVAE(get_config('tiny', image_size=16)), export.keras_model_path(smaller.uri)
    )
    scored = score_baseline(smaller, candidate)
    assert scored.metrics == {} and not scored.refused
    assert scored.skipped.endswith(
        'not compared: it takes (16, 16, 1) images, the data holds (32, 32, 1)'
    )


def test_a_baseline_is_sampled_under_the_candidates_batchnorm_readjustment(tmp_path):
    candidate = NVAE(get_config('tiny'))
    candidate.readjust_bn(num_passes=2, batch_size=3, temperature=0.7)
    ours = candidate.sampling_settings()
    same = model_artifact(tmp_path, 'same', 9)
    nvae = NVAE(get_config('tiny'))
    keras.saving.save_model(nvae, export.keras_model_path(same.uri))  # never readjusted
    scored = score_baseline(same, candidate)
    assert scored.metrics['sampling'] == ours
    assert scored.readjusted.startswith('the last blessed model 9')
    assert scored.readjusted.endswith('its own: none')
    nvae.readjust_bn(num_passes=1, batch_size=2, temperature=1.0)  # another protocol
    keras.saving.save_model(nvae, export.keras_model_path(same.uri))
    scored = score_baseline(same, candidate)
    assert scored.metrics['sampling'] == ours and 'passes' in scored.readjusted
    nvae.readjust_bn(num_passes=2, batch_size=3, temperature=0.7)  # the candidate's
    keras.saving.save_model(nvae, export.keras_model_path(same.uri))
    scored = score_baseline(same, candidate)
    assert scored.metrics['sampling'] == ours and scored.readjusted == ''
