"""Quiet output by default: one line when a component starts and one when it ends (with its time,
or that it was cached), this project's warnings, and every error. --verbose shows every log of
TFX, Beam and TensorFlow as they write it.

Quiet never hides a failure: records at ERROR and above always pass, TensorFlow's C++ errors
(CUDA, cuDNN, out of memory) too, and a warning passes unless it is known to need no action.
"""

import contextlib
import logging as py_logging
import os
import re
import sys
import tempfile
import time
import warnings

from nvae_tfx.durations import format_duration
from pipeline import configs

# LocalDagRunner's and the launcher's messages that say where the pipeline is.
_STARTED = 'Component %s is running.'
_FINISHED = 'Component %s is finished.'
_CACHED = 'A cached execution %d is used.'
_FAILED = 'Execution %d failed.'
# Warnings TFX, TFX-BSL and TensorFlow emit on every run that need no action: the resolver's
# unsupported query hint, Transform's output lacking a payload_format property (it is
# tf.Example, the fallback), a changed output URI, TensorFlow's API deprecation notices, and
# loading the served model, saved without gradient functions on purpose
# (nvae_tfx/training/export.py).
_HARMLESS_MESSAGES = (
    'ArtifactQuery.property_predicate is not supported.',
    'Examples artifact does not have %s custom property. Falling back to %s',
    # RunReport points its artifact at the HTML file it wrote, as Kubeflow's UI needs.
    'When there is one artifact to publish, the URI of it should be identical to the URI of '
    'system generated artifact.',
    'Importing a function (%s) with ops with unsaved custom gradients. Will likely fail if a '
    'gradient is requested.',
)
_HARMLESS_SOURCES = (os.path.join('tensorflow', 'python', 'util', 'deprecation.py'),)
# TensorFlow 2.16's wheel logs these three C++ errors on every import, GPU or not: XLA's CUDA
# plugins registered twice, with no effect on anything.
_DUPLICATE_REGISTRATION = re.compile(
    r'Unable to register cu(FFT|DNN|BLAS) factory: Attempting to register factory for plugin '
    r'cu(FFT|DNN|BLAS) when one has already been registered'
)


class ComponentLines:
    """Turns the orchestrator's progress records into one line per component start and end."""

    WIDTH = 30  # the longest node id, latest_blessed_model_resolver, and a space

    def __init__(self, stream=None):
        self._stream = stream  # None: sys.stdout as it is when a line is written
        self._current = None
        self._started = 0.0
        self._cached = False

    def handles(self, record: py_logging.LogRecord) -> bool:
        """Prints the record's line if it is a progress record; says whether it was one."""
        if record.msg == _STARTED:
            self._current, self._started, self._cached = record.args[0], time.time(), False
            self._print('started')
        elif record.msg == _CACHED:
            self._cached = True
        elif record.msg == _FINISHED:
            took = format_duration(time.time() - self._started)
            self._print(f'cached ({took})' if self._cached else f'finished in {took}')
            self._current = None
        elif record.msg == _FAILED and self._current:
            self._print(f'failed after {format_duration(time.time() - self._started)}')
        else:
            return False
        return True

    def _print(self, text: str) -> None:
        print(f'{self._current:<{self.WIDTH}}{text}', file=self.stream, flush=True)

    @property
    def stream(self):
        return self._stream or sys.stdout


def _harmless(record: py_logging.LogRecord) -> bool:
    return record.msg in _HARMLESS_MESSAGES or record.pathname.endswith(_HARMLESS_SOURCES)


def _own(record: py_logging.LogRecord) -> bool:
    """A record logged by this project's code (not by a package installed in .venv)."""
    return (
        record.pathname.startswith(configs.PROJECT_ROOT + os.sep)
        and os.sep + '.venv' + os.sep not in record.pathname
    )


class _QuietHandler(py_logging.Handler):
    """Component lines and this project's INFO messages on stdout; warnings and errors as
    `warning: ...` / `error: ...` lines on stderr."""

    def __init__(self):
        super().__init__(py_logging.DEBUG)
        # The standard streams as they are at each record (they may have been replaced since).
        self.components = ComponentLines()

    def emit(self, record: py_logging.LogRecord) -> None:
        if self.components.handles(record):
            return
        if record.levelno < py_logging.WARNING:
            # This project's few INFO lines: what ingestion read, the Evaluator's metrics.
            if _own(record):
                print(f'  {record.getMessage()}', file=self.components.stream, flush=True)
            return
        if record.levelno < py_logging.ERROR and _harmless(record) and not _own(record):
            return
        # The message's first line only: a traceback, or one carried in the message as text (Beam
        # re-raising a worker's error), is --verbose's; the runner ends with the error itself.
        try:
            lines = record.getMessage().strip().splitlines() or ['']
            more = ' (more with --verbose)' if len(lines) > 1 else ''
            print(f'{record.levelname.lower()}: {lines[0]}{more}', file=sys.stderr)
        except Exception:  # logging must not raise
            self.handleError(record)


def configure(verbose: bool = False) -> None:
    """Call before importing TensorFlow so that the C++ log level takes effect."""
    # Quiet: TensorFlow's C++ errors still show (CUDA/cuDNN problems, allocation failures).
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '0' if verbose else '2')
    if not verbose:
        os.environ.setdefault('PYTHONWARNINGS', 'ignore')  # inherited by subprocesses
        os.environ.setdefault('PIP_QUIET', '1')  # TFX pip-installs user-module wheels per component
    from absl import logging

    logging.set_verbosity(logging.INFO)
    if verbose:
        return
    warnings.filterwarnings('ignore')
    root = py_logging.getLogger()
    # One handler for every logger (absl's records propagate to it): nobody's basicConfig adds
    # another once the root has one.
    root.handlers = [_QuietHandler()]
    root.setLevel(py_logging.WARNING)
    absl_logger = py_logging.getLogger('absl')
    absl_logger.setLevel(py_logging.INFO)  # the progress records are INFO
    absl_logger.propagate = True
    absl_logger.handlers = []
    # Beam warns about every wheel it stages; TFX's user-code wheels are pure Python.
    py_logging.getLogger('apache_beam.runners.portability.stager').addFilter(
        lambda record: not record.getMessage().startswith('The .whl package')
    )
    _import_tensorflow_without_duplicate_registration_errors()


def _import_tensorflow_without_duplicate_registration_errors() -> None:
    """Imports TensorFlow with its C++ log captured, then shows every line of it except the
    three known duplicate-registration errors."""
    with captured_output(show=False, keep=lambda line: not _DUPLICATE_REGISTRATION.search(line)):
        import tensorflow  # noqa: F401


@contextlib.contextmanager
def captured_output(show: bool, keep=None):
    """Runs a block with this process's stdout and stderr (file descriptors, so subprocesses'
    output too) in a temporary file, shown only if the block fails, or if `show`. For TFX's
    packaging of module files, which runs setuptools in a subprocess that prints each step.
    keep: if given, the captured lines it accepts are shown (on stderr) after a block that
    succeeds too."""
    if show:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile(mode='w+b') as capture:
        os.dup2(capture.fileno(), 1)
        os.dup2(capture.fileno(), 2)
        try:
            yield
        except BaseException:
            _restore(saved)
            capture.seek(0)
            sys.stderr.write(capture.read().decode(errors='replace'))
            raise
        else:
            _restore(saved)
            if keep is not None:
                capture.seek(0)
                lines = capture.read().decode(errors='replace').splitlines(keepends=True)
                sys.stderr.write(''.join(line for line in lines if keep(line)))
                sys.stderr.flush()


def _restore(saved) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    for fd, copy in zip((1, 2), saved, strict=True):
        os.dup2(copy, fd)
        os.close(copy)


# How bad input reads in a traceback's text: Beam re-raises an error from a worker (another
# process, or a DoFn it wraps) as text, tagging it with the step it ran in.
_DATA_ERROR_TEXT = re.compile(r"DataError: (.+?)(?: \[while running '[^']*'\])*$", re.MULTILINE)


def failure_line(error: BaseException) -> str:
    """What a failed run ends with: `<path>: <problem>` for bad input, however deeply TFX and
    Beam wrapped it; otherwise the exception's type and message."""
    from nvae_tfx.data.errors import DataError

    chain, seen = [], set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        chain.append(error)
        error = error.__cause__ or error.__context__
    for e in chain:
        if isinstance(e, DataError):
            return str(e)
    for e in chain:
        found = _DATA_ERROR_TEXT.findall(str(e))
        if found:
            return found[-1]
    message = str(chain[0]).strip()
    return f'{type(chain[0]).__name__}: {message}' if message else type(chain[0]).__name__
