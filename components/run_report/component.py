"""RunReport: the last component of the pipeline. Writes the run's report (one self-contained
HTML page, a system.HTML artifact the Kubeflow Pipelines UI shows) and, when Pusher pushed the
model, the model card into the pushed version directory (pipeline/run_report/).

Its inputs order it after every other component and carry what it reports where no metadata
store is reachable (Kubeflow Pipelines / Vertex AI); where one is (LocalDagRunner, Airflow:
metadata_connection_config), it reads the whole run from ML Metadata instead. A failed run
never reaches it: run_local and `inspect_mlmd report` write that run's report from ML Metadata.
"""

import json

from google.protobuf import json_format, message
from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.orchestration import data_types
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.artifacts import HtmlReport
from components.run_report import executor

# {input key: (artifact type, producing node, its output key)}: the data half's outputs, then
# the model half's (optional: a run without training has none).
DATA_INPUTS = {
    'examples': (standard_artifacts.Examples, 'ImageExampleGen', 'examples'),
    'statistics': (standard_artifacts.ExampleStatistics, 'StatisticsGen', 'statistics'),
    'anomalies': (standard_artifacts.ExampleAnomalies, 'ExampleValidator', 'anomalies'),
    'transform_graph': (standard_artifacts.TransformGraph, 'Transform', 'transform_graph'),
}
MODEL_INPUTS = {
    'model': (standard_artifacts.Model, 'Trainer', 'model'),
    'model_run': (standard_artifacts.ModelRun, 'Trainer', 'model_run'),
    'evaluation': (standard_artifacts.ModelEvaluation, 'GenerativeEvaluator', 'evaluation'),
    'blessing': (standard_artifacts.ModelBlessing, 'GenerativeEvaluator', 'blessing'),
    'pushed_model': (standard_artifacts.PushedModel, 'Pusher', 'pushed_model'),
    'baseline_model': (standard_artifacts.Model, 'latest_blessed_model_resolver', 'model'),
}


class RunReportSpec(types.ComponentSpec):
    PARAMETERS = {
        # The runner's ML Metadata connection (a ConnectionConfig as JSON), where the
        # component can reach it.
        'metadata_connection_config': ExecutionParameter(type=str, optional=True),
        # Where it cannot: the compiled pipeline's nodes, their execution properties and
        # where each input comes from (pipeline_structure), as JSON.
        'pipeline_structure': ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {
        **{key: ChannelParameter(type=spec[0]) for key, spec in DATA_INPUTS.items()},
        **{
            key: ChannelParameter(type=spec[0], optional=True) for key, spec in MODEL_INPUTS.items()
        },
    }
    OUTPUTS = {'report': ChannelParameter(type=HtmlReport)}


class RunReport(base_component.BaseComponent):
    SPEC_CLASS = RunReportSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, metadata_connection_config=None, pipeline_structure=None, **inputs):
        """inputs: channels for DATA_INPUTS and any of MODEL_INPUTS; metadata_connection_config:
        the runner's ConnectionConfig message; pipeline_structure: pipeline_structure(...)."""
        super().__init__(
            spec=RunReportSpec(
                metadata_connection_config=metadata_connection_config
                and json_format.MessageToJson(metadata_connection_config),
                pipeline_structure=pipeline_structure,
                report=types.Channel(type=HtmlReport),
                **inputs,
            )
        )


def run_report(pipeline_name: str, nodes, metadata_connection_config=None) -> RunReport:
    """The RunReport node after `nodes` (the pipeline's other nodes), reading their outputs;
    metadata_connection_config: the runner's store where the component can reach it (None:
    Kubeflow, where it gets the pipeline's structure instead)."""
    by_id = {node.id: node for node in nodes}
    inputs = {
        key: by_id[node].outputs[output]
        for key, (_, node, output) in {**DATA_INPUTS, **MODEL_INPUTS}.items()
        if node in by_id
    }
    structure = None
    if metadata_connection_config is None:
        structure = pipeline_structure(pipeline_name, nodes, inputs)
    return RunReport(metadata_connection_config, structure, **inputs)


def _plain(value):
    """An execution property as JSON data: messages as their JSON form, a runtime parameter as
    its name and default (its value is chosen per run)."""
    if isinstance(value, data_types.RuntimeParameter):
        return f'runtime parameter {value.name} (default {value.default})'
    if isinstance(value, message.Message):
        return json_format.MessageToDict(value, preserving_proto_field_name=True)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def pipeline_structure(pipeline_name: str, nodes, report_inputs: dict) -> str:
    """The JSON RunReport reads where no metadata store is reachable: {'pipeline': name,
    'nodes': {node id: {'properties': execution properties, 'inputs': {key: [producer node id,
    output key]}}}}, the report's own node included with report_inputs."""
    entries = [(n.id, n.exec_properties, n.inputs) for n in nodes]
    entries.append((executor.REPORT_NODE, {}, report_inputs))
    structure = {
        node_id: {
            'properties': {k: _plain(v) for k, v in properties.items() if v is not None},
            'inputs': {
                key: [channel.producer_component_id, channel.output_key]
                for key, channel in inputs.items()
                if getattr(channel, 'producer_component_id', None)
            },
        }
        for node_id, properties, inputs in entries
    }
    return json.dumps({'pipeline': pipeline_name, 'nodes': structure}, sort_keys=True)
