from components.artifacts import FeatureNetwork  # noqa: F401 - the artifact type's import path
