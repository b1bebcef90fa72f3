"""ValidationGate: stops the pipeline when ExampleValidator found anomalies.

ExampleValidator only records anomalies; nothing downstream reads them. The gate turns them
into a failed execution whose message lists every anomaly, and otherwise passes the schema
on, so Transform (which consumes the gate's schema) never sees unvalidated data.
"""

import os

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx import v1 as tfx
from tfx.types import artifact_utils
from tfx.utils import io_utils

SCHEMA_DIFF_FILE = 'SchemaDiff.pb'  # ExampleValidator's per-split output file


class DataValidationError(RuntimeError):
    pass


def describe_anomalies(anomalies_artifact) -> list:
    """One line per anomaly: '<split>: <feature>: <short description>: <description>'."""
    lines = []
    for split in artifact_utils.decode_split_names(anomalies_artifact.split_names):
        path = os.path.join(
            artifact_utils.get_split_uri([anomalies_artifact], split), SCHEMA_DIFF_FILE
        )
        anomalies = anomalies_pb2.Anomalies.FromString(io_utils.read_bytes_file(path))
        for feature, info in sorted(anomalies.anomaly_info.items()):
            lines.append(
                f'{split}: feature {feature!r}: {info.short_description}: {info.description}'
            )
        if anomalies.HasField('dataset_anomaly_info'):
            info = anomalies.dataset_anomaly_info
            lines.append(f'{split}: dataset: {info.short_description}: {info.description}')
    return lines


@tfx.dsl.components.component
def ValidationGate(
    anomalies: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ExampleAnomalies],
    schema: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Schema],
    validated_schema: tfx.dsl.components.OutputArtifact[tfx.types.standard_artifacts.Schema],
    code_fingerprint: tfx.dsl.components.Parameter[str] = '',
) -> None:
    del code_fingerprint  # only in the cache key: the hash of this code
    problems = describe_anomalies(anomalies)
    if problems:
        raise DataValidationError(
            'ExampleValidator found anomalies in the input data; stopping before Transform:\n  '
            + '\n  '.join(problems)
        )
    schema_file = io_utils.get_only_uri_in_dir(schema.uri)
    io_utils.copy_file(
        schema_file, os.path.join(validated_schema.uri, os.path.basename(schema_file))
    )
