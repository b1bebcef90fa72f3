"""The suite's three folders: unit/ (seconds each, no pipeline run), pipeline/ (pipeline runs,
minutes) and extended/ (the longest runs, outside `make test`). Each test is marked by its folder,
so `-m pipeline` or `-m "not extended"` select by folder."""

import ctypes
import gc
import os
import pathlib

import pytest

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
os.environ.setdefault('KERAS_BACKEND', 'tensorflow')

FOLDER_MARKERS = ('unit', 'pipeline', 'extended')


def pytest_configure(config):
    import tensorflow as tf

    # A test runs each traced graph a few times, where Grappler's whole-graph optimization of a
    # training step costs more than it saves. Off in the test processes only: the runners keep
    # TensorFlow's defaults.
    tf.config.optimizer.set_experimental_options({'disable_meta_optimizer': True})


@pytest.fixture(autouse=True, scope='module')
def release_memory():
    """After each module: what its models and traced graphs held goes back to the system (a
    process runs many modules, and would otherwise hold every one's graphs)."""
    yield
    import keras

    keras.backend.clear_session()  # and collects the garbage
    ctypes.CDLL('libc.so.6').malloc_trim(0)  # glibc keeps freed heap otherwise


def pytest_collection_finish(session):
    # Every library is imported by now: objects that each of the garbage collector's full
    # passes (automatic ones while a test traces a model, release_memory's) would walk again.
    # Frozen, they are left out (docs/testing.md).
    gc.collect()
    gc.freeze()


def pytest_collection_modifyitems(config, items):
    for item in items:
        folder = pathlib.Path(item.path).parent.name
        if folder in FOLDER_MARKERS:
            item.add_marker(folder)


# Fixtures of tests/pipeline and tests/extended (imported when used: the Airflow environment
# runs tests/pipeline/test_airflow_dag.py without the harness's packages).


@pytest.fixture(scope='module')
def gcs(tmp_path_factory):
    """A local Cloud Storage with the jobs' bucket, that this process and its children use."""
    from tests.support.local_gcs import LocalGcs
    from tests.support.vertex_jobs import BUCKET

    with LocalGcs(str(tmp_path_factory.mktemp('gcs'))) as storage:
        storage.create_bucket(BUCKET)
        storage.activate()
        yield storage


@pytest.fixture(scope='module')
def image(tmp_path_factory):
    """The job image's file system, built from the Docker build context as a directory."""
    from pipeline import configs
    from tests.support.vertex_launcher import Image

    return Image(configs.PROJECT_ROOT, str(tmp_path_factory.mktemp('image') / 'pipeline')).build()
