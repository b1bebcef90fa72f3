"""What the report shows of an artifact's files: statistics and anomalies per split, TensorBoard
scalars, the Evaluator's report and images. Read through tf.io.gfile, so artifacts on gs://
read as local ones; a file that is not there reads as None (or empty), never as an error: a
failed run's report shows what exists."""

import json

import tensorflow as tf
from tensorflow_metadata.proto.v0 import statistics_pb2
from tfx.types import artifact_utils, standard_artifacts

from components.evaluator.executor import METRICS_FILE
from components.validation_gate import describe_anomalies
from pipeline.run_report.record import Artifact

STATISTICS_FILE = 'FeatureStats.pb'  # StatisticsGen's file in each Split-<name> directory
TRAINING_SUMMARY = 'training_summary.json'  # the Trainer's, in its ModelRun directory
EVALUATION_REPORT = METRICS_FILE  # GenerativeEvaluator's, in its ModelEvaluation directory
# Keras' TensorBoard callback: per-epoch scalars of training and of the validation data.
# The model card RunReport writes into a pushed version directory, beside the SavedModel.
MODEL_CARD_MARKDOWN, MODEL_CARD_HTML = 'model_card.md', 'model_card.html'
MODEL_CARD_SAMPLES = 'model_card_samples.png'  # the grid the Markdown card shows
SCALAR_DIRS = ('train', 'validation')
EPOCH_TAG = 'epoch_'  # Keras' prefix of per-epoch scalars


def _path(uri: str, *names: str) -> str:
    return '/'.join([uri.rstrip('/'), *names])


def exists(uri: str, name: str) -> bool:
    return tf.io.gfile.exists(_path(uri, name))


def read_json(uri: str, name: str):
    path = _path(uri, name)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def split_names(artifact: Artifact) -> list:
    names = artifact.properties.get('split_names')
    return artifact_utils.decode_split_names(names) if names else []


def statistics(artifact: Artifact) -> dict:
    """{split: [row]} of an ExampleStatistics artifact, a row per feature: name, type, count of
    examples with the feature and without, and for numbers mean, std, min and max, for strings
    and bytes the number of unique values."""
    result = {}
    for split in split_names(artifact):
        path = _path(artifact.uri, f'Split-{split}', STATISTICS_FILE)
        if not tf.io.gfile.exists(path):
            continue
        stats = statistics_pb2.DatasetFeatureStatisticsList.FromString(
            tf.io.gfile.GFile(path, 'rb').read()
        )
        rows = []
        for dataset in stats.datasets:
            for feature in dataset.features:
                rows.append(_feature_row(feature))
        result[split] = rows
    return result


def _feature_row(feature) -> dict:
    name = '.'.join(feature.path.step) or feature.name
    kind = statistics_pb2.FeatureNameStatistics.Type.Name(feature.type)
    row = {'feature': name, 'type': kind}
    which = feature.WhichOneof('stats')
    if which == 'num_stats':
        s = feature.num_stats
        common = s.common_stats
        row.update(mean=s.mean, std=s.std_dev, min=s.min, max=s.max)
    elif which in ('string_stats', 'bytes_stats'):
        s = getattr(feature, which)
        common = s.common_stats
        row['unique'] = s.unique
    else:
        return row
    row.update(present=common.num_non_missing, missing=common.num_missing)
    return row


def anomalies(artifact: Artifact) -> list:
    """ExampleValidator's anomalies, a line per anomaly as ValidationGate reports them."""
    anomalies_artifact = standard_artifacts.ExampleAnomalies()
    anomalies_artifact.uri = artifact.uri
    anomalies_artifact.split_names = artifact.properties.get('split_names', '[]')
    return describe_anomalies(anomalies_artifact)


def scalars(model_run_uri: str) -> dict:
    """{'train'|'validation': {name: [(epoch, value)]}} of the per-epoch scalars TensorBoard
    holds in the Trainer's ModelRun directory, name without Keras' 'epoch_' prefix, epochs
    counted from 1."""
    result = {}
    for kind in SCALAR_DIRS:
        series = {}
        for path in sorted(tf.io.gfile.glob(_path(model_run_uri, kind, 'events.out.tfevents.*'))):
            for data in tf.data.TFRecordDataset(path):
                event = tf.compat.v1.Event.FromString(data.numpy())
                for value in event.summary.value:
                    if value.tag.startswith(EPOCH_TAG):
                        number = float(tf.make_ndarray(value.tensor))
                        series.setdefault(value.tag[len(EPOCH_TAG) :], []).append(
                            (event.step + 1, number)
                        )
        if series:
            result[kind] = {name: sorted(points) for name, points in series.items()}
    return result


def images(uri: str) -> list:
    """[(file name, PNG bytes)] of every PNG in an artifact's directory, sorted by name."""
    if not tf.io.gfile.isdir(uri):
        return []
    names = sorted(n for n in tf.io.gfile.listdir(uri) if n.lower().endswith('.png'))
    return [(n, tf.io.gfile.GFile(_path(uri, n), 'rb').read()) for n in names]
