"""RunReport's executor: reads the run (from ML Metadata where the runner's store is reachable,
else from its inputs), writes the model card into the pushed version directory when Pusher
pushed, and the report as its output artifact, whose URI becomes the HTML file itself."""

import json
from typing import Any

import ml_metadata as mlmd
import tensorflow as tf
from absl import logging
from google.protobuf import json_format
from ml_metadata.proto import metadata_store_pb2
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from pipeline.run_report import model_card, page, record

REPORT_NODE = record.REPORT_NODE
REPORT_FILE = 'report.html'
# Kubeflow Pipelines' UI shows an HTML artifact only when it has a display name.
DISPLAY_NAME = 'display_name'


def open_store(connection_json: str) -> mlmd.MetadataStore:
    config = json_format.Parse(connection_json, metadata_store_pb2.ConnectionConfig())
    if config.HasField('sqlite'):
        config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return mlmd.MetadataStore(config)


class Executor(base_executor.BaseExecutor):
    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        report = artifact_utils.get_single_instance(output_dict['report'])
        connection = exec_properties.get('metadata_connection_config')
        writing = None
        if connection:
            writing = int(self._unique_id())
            store = open_store(connection)
            run = record.from_store(
                store, record.run_of_execution(store, writing), "ML Metadata (the runner's store)"
            )
        else:
            structure = json.loads(exec_properties['pipeline_structure'])
            run = record.from_artifacts(
                structure['pipeline'],
                f'task {self._unique_id()}',
                structure['nodes'],
                input_dict,
            )
        pusher = run.execution(page.PUSHER)
        pushed = run.artifact(page.PUSHER, 'pushed_model')
        # Pushed by this run (a cached Pusher's push, and its card, are an earlier run's).
        if pusher and pusher.state == 'COMPLETE' and pushed.properties.get('pushed') == 1:
            logging.info(
                'Model card: %s', model_card.write(run, pushed.properties['pushed_destination'])
            )
        tf.io.gfile.makedirs(report.uri)  # the runner made it, but not on Kubeflow
        path = report.uri.rstrip('/') + '/' + REPORT_FILE
        with tf.io.gfile.GFile(path, 'w') as f:
            f.write(page.build(run, writing=writing))
        report.uri = path
        report.set_string_custom_property(DISPLAY_NAME, 'run report')
        logging.info('Run report: %s', path)

    def _unique_id(self) -> str:
        """What the launcher named this execution: its ML Metadata id under LocalDagRunner and
        Airflow, the task's id under Kubeflow V2 (kept in a field of the executor's context
        that has no accessor)."""
        return self._context._unique_id
