"""The whole pipeline with the tiny preset on the embedded digits, five runs in sequence:
1. an impossible NLL threshold: the digits ingested and transformed, trained, evaluated, not
   blessed, nothing pushed;
2. the same pipeline again: everything cached, nothing executes;
3. no threshold: the Evaluator re-runs and blesses, Pusher pushes;
4. more training steps: a new model, compared with run 3's as the baseline;
5. run 4 again: everything cached, the Evaluator's baseline still run 3's model, nothing pushed.
Each run's RunReport writes its report, read here in a real browser, and each push a model card.
"""

import dataclasses
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from PIL import Image

from components.evaluator import executor as evaluator_executor
from nvae_tfx import datasets
from nvae_tfx.data import transformed
from nvae_tfx.options import EvaluationOptions, SourceOptions, TrainingOptions
from nvae_tfx.training import export
from pipeline.run_report import model_card, page
from tests.support.chromium import Chromium
from tests.support.pipeline_helpers import (
    DATA_NODES,
    assert_embedded_digits_transformed,
    run_outputs,
    run_pipeline,
)

TINY = TrainingOptions(
    preset='tiny',
    train_steps=12,
    batch_size=8,
    steps_per_epoch=6,
    eval_steps=2,
    checkpoint_every_steps=4,
    jit_compile='false',
    readjust_bn_passes=2,
)
EVAL = EvaluationOptions(
    eval_examples=40,
    iw_samples=3,
    fid_samples=60,
    digit_classifier_epochs=1,
    max_nll=1.0,
)
MODEL_NODES = {'Trainer', 'DigitClassifierTrainer', 'GenerativeEvaluator', 'Pusher', 'RunReport'}
# In the page: every metric cell, every image, the text.
SHOWN_METRICS = (
    "Array.from(document.querySelectorAll('[data-metric]'))"
    '.map(e => [e.dataset.metric, e.dataset.role, e.textContent])'
)
SHOWN_IMAGES = 'Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])'


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp('pipeline')
    results = []
    for training, evaluation in (
        (TINY, EVAL),
        (TINY, EVAL),
        (TINY, dataclasses.replace(EVAL, max_nll=None)),
        (dataclasses.replace(TINY, train_steps=24), dataclasses.replace(EVAL, max_nll=None)),
        (dataclasses.replace(TINY, train_steps=24), dataclasses.replace(EVAL, max_nll=None)),
    ):
        results.append(
            run_outputs(
                run_pipeline(
                    tmp_path,
                    SourceOptions(),
                    training=training,
                    evaluation=evaluation,
                    user_code='module_files',  # as run_local runs it
                )
            )
        )
    return tmp_path, results


def artifact(outputs, node, key):
    return outputs[node][1][key][0]


def prop(a, key):
    value = a.custom_properties[key]
    return getattr(value, value.WhichOneof('value'))


def test_first_run_trains_evaluates_and_refuses_to_bless(runs):
    tmp_path, (first, *_) = runs
    assert MODEL_NODES <= set(first)
    assert all(state == 'COMPLETE' for state, _ in first.values())
    model = artifact(first, 'Trainer', 'model')
    assert os.path.exists(os.path.join(model.uri, 'Format-Serving', 'saved_model.pb'))
    assert os.path.exists(export.keras_model_path(model.uri))
    summary = json.load(
        open(os.path.join(artifact(first, 'Trainer', 'model_run').uri, 'training_summary.json'))
    )
    assert summary['steps'] == 12 and summary['skipped_non_finite_steps'] == 0
    assert {'recon', 'kl', 'beta', 'lr', 'spectral_loss', 'bn_loss', 'active_units'} <= set(
        summary['final']
    )

    evaluation = artifact(first, 'GenerativeEvaluator', 'evaluation')
    for name in ('metrics.json', 'samples.png', 'reconstructions.png'):
        assert os.path.getsize(os.path.join(evaluation.uri, name)) > 0
    assert {
        'nll_nats',
        'neg_elbo_nats',
        'nll_bits_per_dim',
        'fid_mnist_classifier',
        'precision_mnist_classifier',
        'recall_mnist_classifier',
        'mnist_classifier_eval_accuracy',
    } <= set(evaluation.custom_properties)
    assert prop(evaluation, 'num_iw_samples') == 3
    blessing = artifact(first, 'GenerativeEvaluator', 'blessing')
    assert prop(blessing, 'blessed') == 0 and prop(blessing, 'current_model_id') == model.id
    assert 'nll_nats' in prop(blessing, 'reasons') and 'threshold 1.0' in prop(blessing, 'reasons')
    pushed = artifact(first, 'Pusher', 'pushed_model')
    assert prop(pushed, 'pushed') == 0 and 'pushed_destination' not in pushed.custom_properties
    accuracy = prop(artifact(first, 'DigitClassifierTrainer', 'feature_network'), 'eval_accuracy')
    assert 0.0 <= accuracy <= 1.0


def test_first_run_ingested_and_transformed_the_embedded_digits(runs):
    _, (first, *_) = runs
    assert_embedded_digits_transformed({node: first[node] for node in DATA_NODES})


def test_identical_second_run_is_fully_cached(runs):
    _, (first, second, *_) = runs
    assert set(second) == set(first)
    # The resolver is a query, not an executor: it records a (trivial) execution on every run.
    executed = {
        node: state
        for node, (state, _) in second.items()
        if state != 'CACHED' and node != 'latest_blessed_model_resolver'
    }
    assert not executed and 'model' not in second['latest_blessed_model_resolver'][1]
    assert artifact(second, 'Trainer', 'model').id == artifact(first, 'Trainer', 'model').id


def test_blessed_model_is_pushed(runs):
    tmp_path, (first, _, third, *_) = runs
    assert third['Trainer'][0] == 'CACHED' and third['GenerativeEvaluator'][0] == 'COMPLETE'
    blessing = artifact(third, 'GenerativeEvaluator', 'blessing')
    assert prop(blessing, 'blessed') == 1, prop(blessing, 'reasons')
    pushed = artifact(third, 'Pusher', 'pushed_model')
    assert prop(pushed, 'pushed') == 1
    destination = prop(pushed, 'pushed_destination')
    assert destination.startswith(str(tmp_path / 'serving'))
    assert os.path.exists(os.path.join(destination, 'saved_model.pb'))


def test_only_blessed_models_reach_the_serving_directory(runs):
    tmp_path, results = runs
    destinations = {
        prop(artifact(r, 'Pusher', 'pushed_model'), 'pushed_destination')
        for r in results
        if prop(artifact(r, 'Pusher', 'pushed_model'), 'pushed') == 1
    }
    versions = {str(tmp_path / 'serving' / v) for v in os.listdir(tmp_path / 'serving')}
    assert destinations == versions


def test_rerun_after_a_push_is_cached_and_pushes_nothing(runs):
    tmp_path, (*_, fourth, fifth) = runs
    executed = {
        node: state
        for node, (state, _) in fifth.items()
        if state != 'CACHED' and node != 'latest_blessed_model_resolver'
    }
    assert not executed
    # The Evaluator is cached only if its baseline is run 4's, not the candidate itself (the
    # latest blessed model if run 4 blessed it); the resolver records what it resolved as the
    # Evaluator's inputs, not as outputs of its own.
    blessing = artifact(fourth, 'GenerativeEvaluator', 'blessing')
    assert artifact(fifth, 'GenerativeEvaluator', 'blessing').id == blessing.id
    pushed = artifact(fifth, 'Pusher', 'pushed_model')
    assert pushed.id == artifact(fourth, 'Pusher', 'pushed_model').id
    versions = os.listdir(tmp_path / 'serving')
    assert len(versions) == 1 + prop(blessing, 'blessed')  # run 3's push, run 4's if blessed


def test_new_model_is_compared_with_the_last_blessed_one(runs):
    _, (_, _, third, fourth, _) = runs
    assert fourth['Trainer'][0] == 'COMPLETE'
    baseline_id = artifact(third, 'Trainer', 'model').id
    blessing = artifact(fourth, 'GenerativeEvaluator', 'blessing')
    assert prop(blessing, 'baseline_model_id') == baseline_id
    assert prop(blessing, 'current_model_id') == artifact(fourth, 'Trainer', 'model').id
    report = json.load(
        open(
            os.path.join(artifact(fourth, 'GenerativeEvaluator', 'evaluation').uri, 'metrics.json')
        )
    )
    current, baseline = report['metrics'], report['baseline_metrics']
    assert baseline and set(baseline) == set(current)
    within = all(
        current[k] <= baseline[k] + 0.01 * abs(baseline[k])
        for k in ('nll_nats', 'fid_mnist_classifier')
    )
    assert report['blessed'] == within == bool(prop(blessing, 'blessed'))


def test_evaluator_numbers_equal_model_code(runs):
    """NLL and -ELBO recomputed here with model_code alone, on the same binarized eval images."""
    _, (first, *_) = runs
    model = evaluator_executor.load_nvae(artifact(first, 'Trainer', 'model'))
    data = transformed.read_transformed_split(
        artifact(first, 'Transform', 'transformed_examples').uri,
        artifact(first, 'Transform', 'transform_graph').uri,
        'eval',
        limit=EVAL.eval_examples,
    )
    images = datasets.fixed_binarize(
        np.asarray(transformed.to_model_images(data['image'])), EVAL.eval_seed
    )
    model.reseed(EVAL.eval_seed)  # every model scored draws from the evaluation's seed
    neg_elbo, log_px = [], []
    for start in range(0, len(images), 50):  # the Evaluator's batch and call order
        x = images[start : start + 50]
        neg_elbo.append(keras.ops.convert_to_numpy(model.negative_elbo(x)))
        log_px.append(
            keras.ops.convert_to_numpy(
                model.log_likelihood(x, num_samples=EVAL.iw_samples, chunk_size=EVAL.iw_samples)
            )
        )
    metrics = json.load(
        open(os.path.join(artifact(first, 'GenerativeEvaluator', 'evaluation').uri, 'metrics.json'))
    )['metrics']
    np.testing.assert_allclose(
        metrics['neg_elbo_nats'], np.mean(np.concatenate(neg_elbo)), rtol=1e-5
    )
    np.testing.assert_allclose(metrics['nll_nats'], -np.mean(np.concatenate(log_px)), rtol=1e-5)
    np.testing.assert_allclose(
        metrics['nll_bits_per_dim'], metrics['nll_nats'] / (np.log(2) * 784), rtol=1e-6
    )


def test_saved_model_signatures_in_a_fresh_process(runs):
    """Loads with plain TensorFlow (no project code on the path) and calls every signature."""
    _, (first, *_) = runs
    serving = os.path.join(artifact(first, 'Trainer', 'model').uri, 'Format-Serving')
    examples = artifact(first, 'ImageExampleGen', 'examples').uri
    script = textwrap.dedent(f"""
      import glob, json, tensorflow as tf
      m = tf.saved_model.load({serving!r})
      s = m.signatures['sample'](num=tf.constant(5), temperature=tf.constant(0.7),
                                 seed=tf.constant(0))['images']
      files = glob.glob({examples!r} + '/Split-eval/*.gz')
      raw = list(tf.data.TFRecordDataset(files, compression_type='GZIP').take(3))
      ll = m.signatures['log_likelihood'](examples=tf.stack(raw), num_samples=tf.constant(3))
      r = m.signatures['reconstruct'](images=tf.round(s))['images']
      print(json.dumps({{'shape': s.shape.as_list(), 'min': float(tf.reduce_min(s)),
                        'max': float(tf.reduce_max(s)), 'recon_shape': r.shape.as_list(),
                        'll': ll['log_likelihood'].numpy().tolist()}}))
  """)
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    out = subprocess.run(
        [sys.executable, '-I', '-c', script],
        capture_output=True,
        text=True,
        cwd='/',
        env=env,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result['shape'] == [5, 32, 32, 1] and result['recon_shape'] == [5, 32, 32, 1]
    assert 0.0 <= result['min'] and result['max'] <= 1.0
    assert len(result['ll']) == 3 and all(-2000 < v < 0 for v in result['ll'])


def test_reports_in_a_browser(runs, tmp_path):
    """Run 4's report (its model beside run 3's, the baseline) and run 1's (not blessed) in
    headless Chromium: the metrics it shows are metrics.json's, every image loads, nothing is
    fetched but the page itself; a screenshot of the whole page."""
    _, (first, _, third, fourth, _) = runs
    evaluation = artifact(fourth, 'GenerativeEvaluator', 'evaluation')
    report = json.load(open(os.path.join(evaluation.uri, 'metrics.json')))
    assert report['baseline_metrics']  # compared with run 3's model
    with Chromium() as browser:
        browser.open(artifact(fourth, 'RunReport', 'report').uri)
        shown = {(key, role): text for key, role, text in browser.evaluate(SHOWN_METRICS)}
        shown_images = browser.evaluate(SHOWN_IMAGES)
        requested = browser.requested_urls
        width, height = browser.screenshot(str(tmp_path / 'report.png'))
        browser.open(artifact(first, 'RunReport', 'report').uri)
        first_text = browser.evaluate('document.body.innerText')
    measured = [k for k, v in report['metrics'].items() if page.is_metric(k, v)]
    assert {'nll_nats', 'fid_mnist_classifier', 'recall_mnist_classifier'} <= set(measured)
    assert {k for k, role in shown if role == 'candidate'} == set(measured)
    for key in measured:
        for role, values in (
            ('candidate', report['metrics']),
            ('baseline', report['baseline_metrics']),
        ):
            assert float(shown[key, role]) == pytest.approx(values[key], abs=5e-5), (key, role)
    assert {alt for alt, *_ in shown_images} >= {*page.IMAGE_CAPTIONS.values()}
    assert all(complete and natural_width > 0 for _, complete, natural_width in shown_images)
    assert requested[0].startswith('file://') and all(u.startswith('data:') for u in requested[1:])
    assert width == 1280 and height > 2000
    assert len(Image.open(tmp_path / 'report.png').convert('RGB').getcolors(1 << 20)) > 100
    assert 'Not blessed, nothing pushed' in first_text and 'threshold 1.0' in first_text


def test_every_push_has_a_model_card(runs):
    tmp_path, (_, _, third, *_) = runs
    destination = prop(artifact(third, 'Pusher', 'pushed_model'), 'pushed_destination')
    metrics = json.load(
        open(os.path.join(artifact(third, 'GenerativeEvaluator', 'evaluation').uri, 'metrics.json'))
    )['metrics']
    card = open(os.path.join(destination, model_card.MARKDOWN)).read()
    assert f'| nll_nats | {page.number(metrics["nll_nats"])} |' in card
    assert f'| Model | {artifact(third, "Trainer", "model").id} | Trainer (execution ' in card
    assert 'Input fingerprint' in card and 'Trained for 12 steps of 8 images' in card
    assert os.path.isfile(os.path.join(destination, model_card.SAMPLES))
    assert os.path.isfile(os.path.join(destination, model_card.HTML))
    # Beside the SavedModel, which still loads as Pusher left it (test_saved_model_signatures).
    assert os.path.isfile(os.path.join(destination, 'saved_model.pb'))
