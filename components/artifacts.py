"""Artifact types this project adds to TFX's standard ones."""

from tfx.types import artifact


class FeatureNetwork(artifact.Artifact):
    """A network whose features FID and precision/recall are computed on (e.g. the digit
    classifier the pipeline trains), kept apart from Model so that no resolver mistakes it for a
    candidate generative model."""

    # Kubeflow V2 compiles a custom type's name into its schema title, which must read
    # 'namespace.Type', and its containers import the class from that title: so the name is the
    # class's import path through the package that exports it (components/__init__.py).
    TYPE_NAME = 'components.FeatureNetwork'
