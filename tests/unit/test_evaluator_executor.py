"""GenerativeEvaluator's executor on hand-made Transform output (no pipeline): FID's real side
is the whole reference split whatever the number of images scored, the protocol is recorded in
the artifacts' properties and in metrics.json, a baseline of other data is skipped with the
reason on the blessing, one that cannot be read refuses the blessing, candidate and baseline
share their draws, non-finite samples give a reason rather than a crash, and the best blessed
metrics pass from blessing to blessing."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io
from tfx.types import standard_artifacts

from components.evaluator import executor
from model_code.config import get_config
from model_code.nvae import NVAE
from nvae_tfx.data import records
from nvae_tfx.options import EvaluationOptions
from nvae_tfx.training import export
from tests.support.fake_network import FakeNetwork

SIZE = 32  # MNIST's canvas
SPLIT_SIZES = {'train': 23, 'eval': 30}


def write_transformed(root) -> tuple[str, str]:
    """(examples uri, transform graph uri) of Transform-like output: grey images per split."""
    spec = {records.IMAGE: tf.io.FixedLenFeature([SIZE, SIZE, 1], tf.float32)}
    graph = os.path.join(root, 'transform_graph')
    metadata_io.write_metadata(
        dataset_metadata.DatasetMetadata.from_feature_spec(spec),
        os.path.join(graph, 'transformed_metadata'),
    )
    examples = os.path.join(root, 'examples')
    rng = np.random.RandomState(0)
    for split, count in SPLIT_SIZES.items():
        os.makedirs(os.path.join(examples, f'Split-{split}'))
        path = os.path.join(examples, f'Split-{split}', 'data.gz')
        with tf.io.TFRecordWriter(path, options='GZIP') as writer:
            for image in rng.uniform(size=(count, SIZE * SIZE)).astype(np.float32):
                feature = tf.train.Feature(float_list=tf.train.FloatList(value=image))
                example = tf.train.Example(
                    features=tf.train.Features(feature={records.IMAGE: feature})
                )
                writer.write(example.SerializeToString())
    return examples, graph


def artifact(kind, uri, artifact_id=None):
    a = kind()
    a.uri = uri
    if artifact_id is not None:
        a.id = artifact_id
    os.makedirs(uri, exist_ok=True)
    return a


def saved_model(root, name, artifact_id, image_size=SIZE, change=None):
    """A tiny NVAE (the same weights each time) saved as a Model artifact; change(nvae) edits it
    before saving."""
    model = artifact(standard_artifacts.Model, os.path.join(root, name), artifact_id)
    os.makedirs(os.path.dirname(export.keras_model_path(model.uri)))
    keras.utils.set_random_seed(0)
    nvae = NVAE(get_config('tiny', image_size=image_size))
    nvae.readjust_bn(num_passes=1, batch_size=2, temperature=0.5)  # as the Trainer exports it
    if change:
        change(nvae)
    keras.saving.save_model(nvae, export.keras_model_path(model.uri))
    return model


OPTIONS = EvaluationOptions(
    eval_examples=10,  # the scored images do not cap FID's real side
    iw_samples=2,
    fid_samples=8,
    max_fid=1e9,
    eval_seed=3,
).resolved()


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('evaluator'))
    return root, write_transformed(root)


def evaluate(data, name, candidate, baseline=None, baseline_blessing=None, options=OPTIONS):
    """(feature network, evaluation, blessing, metrics.json text) of one executor run."""
    root, (examples, graph) = data
    network = FakeNetwork('mnist_classifier', {'name': 'x', 'eval_accuracy': 0.5})
    patch = pytest.MonkeyPatch()
    patch.setattr(executor.Executor, '_feature_networks', staticmethod(lambda *_: [network]))
    evaluation = artifact(standard_artifacts.ModelEvaluation, os.path.join(root, name, 'eval'))
    blessing = artifact(standard_artifacts.ModelBlessing, os.path.join(root, name, 'blessing'))
    try:
        executor.Executor().Do(
            {
                'model': [candidate],
                'baseline_model': [baseline] if baseline else [],
                'baseline_blessing': [baseline_blessing] if baseline_blessing else [],
                'examples': [artifact(standard_artifacts.Examples, examples)],
                'transform_graph': [artifact(standard_artifacts.TransformGraph, graph)],
            },
            {'evaluation': [evaluation], 'blessing': [blessing]},
            {**options.evaluator_parameters(), 'code_fingerprint': 'abc'},
        )
    finally:
        patch.undo()
    with open(os.path.join(evaluation.uri, executor.METRICS_FILE)) as f:
        text = f.read()
    return network, evaluation, blessing, text


@pytest.fixture(scope='module')
def evaluated(data):
    root = data[0]
    return evaluate(
        data,
        'first',
        saved_model(root, 'candidate', 1),
        saved_model(root, 'baseline', 2, image_size=16),
    )


def test_fid_reference_is_the_whole_split_and_the_protocol_is_recorded(evaluated):
    network, evaluation, _, text = evaluated
    # What the feature network saw: the whole eval split (30 images, though 10 were scored),
    # then the 8 generated ones.
    assert [len(images) for images in network.seen] == [30, 8]
    report = json.loads(text)
    metrics = report['metrics']
    protocol = {
        'eval_protocol': 'quick',
        'eval_split': 'eval',
        'num_eval_examples': 10,
        'num_iw_samples': 2,
        'binarization_seed': 3,
        'fid_num_samples': 8,
        'fid_reference_split': 'eval',
        'fid_reference_examples': SPLIT_SIZES['eval'],
        'precision_recall_samples': 8,
        'sample_temperature': 1.0,
        # The model's own readjustment, not the options'.
        'readjust_bn_passes': 1,
        'readjust_bn_batch': 2,
        'readjust_bn_temperature': 0.5,
        'mnist_classifier_eval_accuracy': 0.5,
    }
    assert {k: metrics[k] for k in protocol} == protocol
    # ML Metadata holds the same record: numbers as doubles, text as strings.
    assert {k: evaluation.get_custom_property(k) for k in protocol} == protocol
    assert np.isfinite(metrics['fid_mnist_classifier'])
    assert evaluation.get_custom_property('fid_mnist_classifier') == metrics['fid_mnist_classifier']


def test_a_baseline_that_cannot_be_scored_is_skipped_with_the_reason(evaluated):
    _, _, blessing, text = evaluated
    report = json.loads(text)
    why = 'not compared: it takes (16, 16, 1) images, the data holds (32, 32, 1)'
    assert report['baseline_metrics'] == {} and report['baseline_skipped'].endswith(why)
    assert blessing.get_custom_property(executor.BASELINE_SKIPPED_PROPERTY).endswith(why)
    # Judged by its thresholds alone: blessed.
    assert report['blessed'] and report['reasons'] == []
    assert blessing.get_custom_property('blessed') == 1
    assert os.path.exists(os.path.join(blessing.uri, 'BLESSED'))


def test_candidate_and_baseline_share_their_draws_and_the_best_record_passes_on(data, evaluated):
    """The same model, whose saved random stream is elsewhere, scores exactly the same beside
    the candidate: its posterior and prior draws are the candidate's. Blessed; the best record
    of the first blessing is read by the second and kept."""
    root = data[0]
    first_blessing = evaluated[2]

    def advance_its_stream(nvae):
        nvae.sample(5)
        nvae.log_likelihood(np.zeros((2, SIZE, SIZE, 1), 'float32'), num_samples=3)

    advanced = saved_model(root, 'advanced', 4, change=advance_its_stream)
    _, _, blessing, text = evaluate(
        data, 'paired', saved_model(root, 'again', 3), advanced, first_blessing
    )
    report = json.loads(text)
    compared = ('nll_nats', 'neg_elbo_nats', 'fid_mnist_classifier', 'precision_mnist_classifier')
    assert {k: report['baseline_metrics'][k] for k in compared} == {
        k: report['metrics'][k] for k in compared
    }
    assert report['blessed'] and report['reasons'] == []
    assert report['best_metrics_note'] == ''
    best = json.loads(blessing.get_string_custom_property(executor.BEST_PROPERTY))
    first = json.loads(first_blessing.get_string_custom_property(executor.BEST_PROPERTY))
    assert best['protocol_key'] == first['protocol_key']
    assert best['values']['nll_nats'] == {'value': report['metrics']['nll_nats'], 'model_id': 1}
    assert blessing.get_string_custom_property(executor.RULE_PROPERTY) == report['rule']
    assert 'of the best blessed value' in report['rule']


def test_a_baseline_that_cannot_be_read_is_not_blessed_end_to_end(data):
    root = data[0]
    broken = saved_model(root, 'broken', 6)
    with open(export.keras_model_path(broken.uri), 'wb') as f:
        f.write(b'PK\x03\x04 truncated')
    _, _, blessing, text = evaluate(data, 'broken', saved_model(root, 'candidate6', 5), broken)
    report = json.loads(text)
    assert not report['blessed']
    assert report['reasons'][0].startswith(f'the last blessed model 6 ({broken.uri}) could not')
    assert blessing.get_custom_property('blessed') == 0
    assert os.path.exists(os.path.join(blessing.uri, 'NOT_BLESSED'))


def test_non_finite_samples_are_a_reason_not_a_crash(data):
    """A decoder that draws NaN: FID and precision/recall are NaN (not an error inside the
    linear algebra), the count is recorded, and the model is not blessed."""
    root = data[0]

    def poison(nvae):
        bn = nvae.postprocess[-1].branch.bn_out
        bn.sampling_mean.assign(np.full(bn.sampling_mean.shape, np.nan, 'float32'))

    _, evaluation, blessing, text = evaluate(
        data, 'nan', saved_model(root, 'nan_samples', 7, change=poison)
    )
    report = json.loads(text)
    metrics = report['metrics']
    assert np.isfinite(metrics['nll_nats'])  # likelihoods use the training statistics
    assert metrics['fid_mnist_classifier'] == 'nan' and metrics['recall_mnist_classifier'] == 'nan'
    assert metrics['non_finite_samples'] == OPTIONS.fid_samples
    assert not report['blessed']
    assert report['reasons'] == [
        'non-finite metrics: fid_mnist_classifier, precision_mnist_classifier, '
        'recall_mnist_classifier'
    ]
    assert evaluation.get_custom_property('fid_mnist_classifier') == 'nan'
    assert blessing.get_custom_property('blessed') == 0
