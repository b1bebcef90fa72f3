"""DigitClassifierTrainer: trains the MNIST feature network for FID and precision/recall on the
transformed train split and records its eval accuracy. With caching on it is trained once and
reused by every later run on the same data."""

from absl import logging
from tfx import v1 as tfx

from components.artifacts import FeatureNetwork
from components.evaluation import feature_networks
from components.training.input_data import read_transformed_split
from components.transform import preprocessing


@tfx.dsl.components.component
def DigitClassifierTrainer(
    examples: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Examples],
    transform_graph: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.TransformGraph],
    feature_network: tfx.dsl.components.OutputArtifact[FeatureNetwork],
    epochs: tfx.dsl.components.Parameter[int] = 10,
) -> None:
    data = {
        split: read_transformed_split(examples.uri, transform_graph.uri, split)
        for split in ('train', 'eval')
    }
    model, accuracy = feature_networks.train_digit_classifier(
        data['train'][preprocessing.IMAGE],
        data['train'][preprocessing.LABEL],
        data['eval'][preprocessing.IMAGE],
        data['eval'][preprocessing.LABEL],
        epochs=epochs,
    )
    feature_networks.save_digit_classifier(model, feature_network.uri, accuracy)
    feature_network.set_string_custom_property('name', feature_networks.DIGIT_CLASSIFIER_NAME)
    feature_network.set_float_custom_property('eval_accuracy', accuracy)
    logging.info('Digit classifier for FID: eval accuracy %.4f after %d epochs.', accuracy, epochs)
