"""GenerativeEvaluator's executor on hand-made Transform output (no pipeline): FID's real side
is the whole reference split whatever the number of images scored, the protocol is recorded in
the artifacts' properties and in metrics.json, and a baseline it cannot score is skipped with
the reason on the blessing."""

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
from tests.test_evaluation_protocol import FakeNetwork

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


def saved_model(root, name, artifact_id, image_size=SIZE):
    model = artifact(standard_artifacts.Model, os.path.join(root, name), artifact_id)
    os.makedirs(os.path.dirname(export.keras_model_path(model.uri)))
    keras.utils.set_random_seed(0)
    nvae = NVAE(get_config('tiny', image_size=image_size))
    nvae.readjust_bn(num_passes=1, batch_size=2, temperature=0.5)  # as the Trainer exports it
    keras.saving.save_model(nvae, export.keras_model_path(model.uri))
    return model


@pytest.fixture(scope='module')
def evaluated(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('evaluator'))
    examples, graph = write_transformed(root)
    network = FakeNetwork('mnist_classifier', {'name': 'x', 'eval_accuracy': 0.5})
    patch = pytest.MonkeyPatch()
    patch.setattr(executor.Executor, '_feature_networks', staticmethod(lambda *_: [network]))
    options = EvaluationOptions(
        num_eval_examples=10,  # the scored images do not cap FID's real side
        num_iw_samples=2,
        fid_num_samples=8,
        max_fid=1e9,
        seed=3,
    )
    evaluation = artifact(standard_artifacts.ModelEvaluation, os.path.join(root, 'evaluation'))
    blessing = artifact(standard_artifacts.ModelBlessing, os.path.join(root, 'blessing'))
    candidate = saved_model(root, 'candidate', 1)
    executor.Executor().Do(
        {
            'model': [candidate],
            'baseline_model': [saved_model(root, 'baseline', 2, image_size=16)],
            'examples': [artifact(standard_artifacts.Examples, examples)],
            'transform_graph': [artifact(standard_artifacts.TransformGraph, graph)],
        },
        {'evaluation': [evaluation], 'blessing': [blessing]},
        options.evaluator_parameters(),
    )
    patch.undo()
    with open(os.path.join(evaluation.uri, executor.METRICS_FILE)) as f:
        text = f.read()
    return network, evaluation, blessing, text


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
