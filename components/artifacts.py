"""Artifact types this project adds to TFX's standard ones."""

from tfx.types import artifact


class FeatureNetwork(artifact.Artifact):
    """A network whose features FID and precision/recall are computed on (e.g. the digit
    classifier the pipeline trains), kept apart from Model so that no resolver mistakes it for a
    candidate generative model."""

    TYPE_NAME = 'nvae.FeatureNetwork'  # namespaced: Kubeflow V2 requires it of custom types
