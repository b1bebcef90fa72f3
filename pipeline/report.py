"""Reads a pipeline run back from ML Metadata and summarises it for people."""
from typing import Dict, List

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

_STATE = metadata_store_pb2.Execution.State


def open_store(metadata_path: str) -> mlmd.MetadataStore:
  return mlmd.MetadataStore(
      tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata_path))


def latest_run(store: mlmd.MetadataStore, pipeline_name: str):
  """The newest pipeline_run context holding executions of this pipeline, or None."""
  pipeline = store.get_context_by_type_and_name('pipeline', pipeline_name)
  if pipeline is None:
    return None
  run_ids = {c.id for c in store.get_contexts_by_type('pipeline_run')}
  runs = {}
  for execution in store.get_executions_by_context(pipeline.id):
    for ctx in store.get_contexts_by_execution(execution.id):
      if ctx.id in run_ids:
        runs[ctx.id] = ctx
  return max(runs.values(), key=lambda c: (c.create_time_since_epoch, c.id), default=None)


def node_id(store: mlmd.MetadataStore, execution) -> str:
  for ctx in store.get_contexts_by_execution(execution.id):
    if store.get_context_types_by_id([ctx.type_id])[0].name == 'node':
      return ctx.name.split('.', 1)[1]
  return '?'


def outputs_of(store: mlmd.MetadataStore, execution_id: int) -> Dict[str, List]:
  """{output key: [artifacts]} of one execution."""
  events = [e for e in store.get_events_by_execution_ids([execution_id])
            if e.type == metadata_store_pb2.Event.OUTPUT]
  artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
  result = {}
  for e in events:
    result.setdefault(e.path.steps[0].key, []).append(artifacts[e.artifact_id])
  return result


def custom_properties(artifact) -> Dict:
  out = {}
  for key, value in artifact.custom_properties.items():
    kind = value.WhichOneof('value')
    if kind in ('int_value', 'double_value', 'string_value'):
      out[key] = getattr(value, kind)
  return out


def run_summary(metadata_path: str, pipeline_name: str) -> str:
  store = open_store(metadata_path)
  run = latest_run(store, pipeline_name)
  if run is None:
    return f'No run of {pipeline_name} in {metadata_path}'
  lines = [f'Pipeline {pipeline_name}, run {run.name}:']
  for execution in sorted(store.get_executions_by_context(run.id), key=lambda e: e.id):
    state = _STATE.Name(execution.last_known_state)
    lines.append(f'  {node_id(store, execution):<24} {state}')
    for key, artifacts in sorted(outputs_of(store, execution.id).items()):
      for artifact in artifacts:
        props = {k: v for k, v in custom_properties(artifact).items()
                 if k.startswith('num_') or k in ('blessed', 'pushed')}
        extra = ' ' + ', '.join(f'{k}={v}' for k, v in sorted(props.items())) if props else ''
        lines.append(f'      {key}: {artifact.uri}{extra}')
  return '\n'.join(lines)
