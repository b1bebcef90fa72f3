"""DigitClassifierTrainer: trains the MNIST feature network for FID and precision/recall on the
transformed train split and records its eval accuracy. With caching on it is trained once and
reused by every later run on the same data."""

from absl import logging
from tfx import v1 as tfx

from components.artifacts import FeatureNetwork
from nvae_tfx.data import records
from nvae_tfx.data.transformed import read_transformed_split
from nvae_tfx.evaluation import feature_networks


@tfx.dsl.components.component
def DigitClassifierTrainer(
    examples: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Examples],
    transform_graph: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.TransformGraph],
    feature_network: tfx.dsl.components.OutputArtifact[FeatureNetwork],
    epochs: tfx.dsl.components.Parameter[int],
    code_fingerprint: tfx.dsl.components.Parameter[str] = '',
) -> None:
    del code_fingerprint  # only in the cache key: the hash of this code
    data = {
        split: read_transformed_split(examples.uri, transform_graph.uri, split)
        for split in ('train', 'eval')
    }
    model, accuracy = feature_networks.train_digit_classifier(
        data['train'][records.IMAGE],
        data['train'][records.LABEL],
        data['eval'][records.IMAGE],
        data['eval'][records.LABEL],
        epochs=epochs,
    )
    feature_networks.save_digit_classifier(model, feature_network.uri, accuracy)
    feature_network.set_string_custom_property('name', feature_networks.DIGIT_CLASSIFIER_NAME)
    feature_network.set_float_custom_property('eval_accuracy', accuracy)
    logging.info('Digit classifier for FID: eval accuracy %.4f after %d epochs.', accuracy, epochs)
