"""DigitClassifierTrainer: trains the MNIST feature network for FID and precision/recall on the
transformed train split and records its eval accuracy. With caching on it is trained once and
reused by every later run on the same data."""
import glob
import os

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from absl import logging
from tfx import v1 as tfx

from components.artifacts import FeatureNetwork
from components.evaluation import feature_networks
from components.transform import preprocessing


def read_transformed_split(examples_uri: str, transform_graph_uri: str, split: str, limit: int = 0):
  """{feature: np.ndarray} of one split of Transform's materialised output."""
  spec = tft.TFTransformOutput(transform_graph_uri).transformed_feature_spec()
  files = sorted(glob.glob(os.path.join(examples_uri, f'Split-{split}', '*')))
  if not files:
    raise FileNotFoundError(f'{examples_uri}/Split-{split}: no transformed examples')
  ds = tf.data.TFRecordDataset(files, compression_type='GZIP')
  if limit:
    ds = ds.take(limit)
  ds = ds.batch(1024).map(lambda r: tf.io.parse_example(r, spec))
  batches = list(ds.as_numpy_iterator())
  return {k: np.concatenate([b[k] for b in batches]) for k in spec}


@tfx.dsl.components.component
def DigitClassifierTrainer(
    examples: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Examples],
    transform_graph: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.TransformGraph],
    feature_network: tfx.dsl.components.OutputArtifact[FeatureNetwork],
    epochs: tfx.dsl.components.Parameter[int] = 10,
) -> None:
  data = {split: read_transformed_split(examples.uri, transform_graph.uri, split)
          for split in ('train', 'eval')}
  model, accuracy = feature_networks.train_digit_classifier(
      data['train'][preprocessing.IMAGE], data['train'][preprocessing.LABEL],
      data['eval'][preprocessing.IMAGE], data['eval'][preprocessing.LABEL], epochs=epochs)
  feature_networks.save_digit_classifier(model, feature_network.uri, accuracy)
  feature_network.set_string_custom_property('name', feature_networks.DIGIT_CLASSIFIER_NAME)
  feature_network.set_float_custom_property('eval_accuracy', accuracy)
  logging.info('Digit classifier for FID: eval accuracy %.4f after %d epochs.', accuracy, epochs)
