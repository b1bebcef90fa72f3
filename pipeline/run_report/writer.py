"""Where a run's report is: the RunReport component's artifact when the component ran in that
run, else a page written from ML Metadata beside the store (failed runs, runs whose report
was cached from an earlier identical run, runs from before the component existed)."""

import os

import tensorflow as tf
from ml_metadata.proto import metadata_store_pb2

from pipeline import report
from pipeline.run_report import page, record

REPORTS_DIR = 'reports'  # beside the ML Metadata store


def default_path(metadata_path: str, run_id: str) -> str:
    return os.path.join(
        os.path.dirname(os.path.abspath(metadata_path)), REPORTS_DIR, f'{run_id}.html'
    )


def write(store, run_context, metadata_path: str, path: str | None = None) -> str:
    """Writes the run's report from ML Metadata to path (default: default_path); returns it."""
    run = record.from_store(store, run_context, f'ML Metadata {metadata_path}')
    path = path or default_path(metadata_path, run.run_id)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, 'w') as f:
        f.write(page.build(run))
    return path


def of_run(store, run_context, metadata_path: str) -> str:
    """The run's report: the component's own when it ran in this run, else written here."""
    for execution in store.get_executions_by_context(run_context.id):
        if (
            execution.last_known_state == metadata_store_pb2.Execution.COMPLETE
            and report.node_id(store, execution) == record.REPORT_NODE
        ):
            [artifact] = report.outputs_of(store, execution.id)['report']
            return artifact.uri
    return write(store, run_context, metadata_path)
