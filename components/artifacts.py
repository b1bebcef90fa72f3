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


class HtmlReport(artifact.Artifact):
    """A self-contained HTML page: the artifact's URI is the file itself, as Kubeflow Pipelines'
    HTML artifacts are, so that the pipeline UI can show it.

    The type is KFP's own system.HTML, the type its UI renders. Kubeflow V2 imports a custom
    artifact class from its type name, so the top-level package `system` (system/__init__.py)
    exports this class as HTML."""

    TYPE_NAME = 'system.HTML'
