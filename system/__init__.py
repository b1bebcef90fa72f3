"""Kubeflow Pipelines' `system` artifact namespace, as far as this project writes into it: the
Kubeflow V2 container imports a custom artifact class by its type name, here system.HTML."""

from components.artifacts import HtmlReport as HTML  # noqa: F401
