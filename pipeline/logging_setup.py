"""Quiet logs by default: warnings, errors, pipeline progress and this project's own messages.

TensorFlow, Beam and TFX log a great deal at INFO; --verbose restores all of it.
"""

import logging as py_logging
import os
import warnings

from pipeline import configs

# LocalDagRunner/launcher messages that tell a user where the pipeline is.
_PROGRESS = (
    'Component %s is running.',
    'Component %s is finished.',
    'A cached execution %d is used.',
    'Skipping execution for %s',
)
# Warnings TFX 1.16 emits on every run that need no action.
_HARMLESS = ('ArtifactQuery.property_predicate is not supported.',)


class _QuietFilter(py_logging.Filter):
    def filter(self, record: py_logging.LogRecord) -> bool:
        if record.msg in _HARMLESS:
            return False
        return (
            record.levelno >= py_logging.WARNING
            or record.msg in _PROGRESS
            or record.pathname.startswith(configs.PROJECT_ROOT + os.sep)
            and os.sep + '.venv' + os.sep not in record.pathname
        )


def configure(verbose: bool = False) -> None:
    """Call before importing TensorFlow so the C++ log level takes effect."""
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '0' if verbose else '3')
    if not verbose:
        os.environ.setdefault(
            'PYTHONWARNINGS', 'ignore'
        )  # also quiets TFX's wheel-build subprocess
        os.environ.setdefault('PIP_QUIET', '1')  # TFX pip-installs user-module wheels per component
    from absl import logging

    logging.set_verbosity(logging.INFO)
    if verbose:
        return
    warnings.filterwarnings('ignore')
    # TFX and this project log through absl; Beam, TF and others through their own loggers,
    # which inherit the root level.
    py_logging.getLogger().setLevel(py_logging.WARNING)
    absl_logger = py_logging.getLogger('absl')
    absl_logger.setLevel(py_logging.INFO)
    absl_logger.addFilter(_QuietFilter())
    # Beam warns about every wheel it stages; TFX's user-code wheels are pure Python.
    py_logging.getLogger('apache_beam.runners.portability.stager').addFilter(
        lambda record: not record.getMessage().startswith('The .whl package')
    )
