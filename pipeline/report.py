"""Reads pipeline runs back from ML Metadata: queries shared by the run summary printed here
and by pipeline/inspect_mlmd.py."""

import ml_metadata as mlmd
from google.protobuf import json_format
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

_STATE = metadata_store_pb2.Execution.State
_EVENT = metadata_store_pb2.Event
_JSON_SINGLE_VALUE_KEY = '__value__'  # How TFX stores a JSON custom property that is no dict.


def open_store(metadata_path: str, *, read_only: bool = False) -> mlmd.MetadataStore:
    config = tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata_path)
    if read_only:
        config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return mlmd.MetadataStore(config)


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
    # Airflow's launcher (TFX's pre-IR one) records no node context, the id as a property.
    if 'component_id' in execution.properties:
        return execution.properties['component_id'].string_value
    return '?'


def pipeline_runs(store: mlmd.MetadataStore) -> list[tuple[metadata_store_pb2.Context, str]]:
    """(pipeline_run context, pipeline name) of every run in the store, oldest first."""
    type_ids = {t.name: t.id for t in store.get_context_types()}
    result = []
    for run in store.get_contexts_by_type('pipeline_run'):
        executions = store.get_executions_by_context(run.id)
        pipelines = store.get_contexts_by_execution(executions[0].id) if executions else []
        name = next((c.name for c in pipelines if c.type_id == type_ids.get('pipeline')), '?')
        result.append((run, name))
    return sorted(result, key=lambda r: (r[0].create_time_since_epoch, r[0].id))


def _artifacts_by_key(store, execution_id: int, event_type) -> dict[str, list]:
    events = [e for e in store.get_events_by_execution_ids([execution_id]) if e.type == event_type]
    artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
    result = {}
    for e in events:
        result.setdefault(e.path.steps[0].key, []).append(artifacts[e.artifact_id])
    return result


def outputs_of(store: mlmd.MetadataStore, execution_id: int) -> dict[str, list]:
    """{output key: [artifacts]} of one execution."""
    return _artifacts_by_key(store, execution_id, _EVENT.OUTPUT)


def inputs_of(store: mlmd.MetadataStore, execution_id: int) -> dict[str, list]:
    """{input key: [artifacts]} of one execution."""
    return _artifacts_by_key(store, execution_id, _EVENT.INPUT)


def producer(store: mlmd.MetadataStore, artifact_id: int) -> metadata_store_pb2.Execution | None:
    """The execution that wrote an artifact. Cached executions re-publish their predecessor's
    outputs, so the producer is the oldest execution with an output event for it."""
    ids = [
        e.execution_id
        for e in store.get_events_by_artifact_ids([artifact_id])
        if e.type == _EVENT.OUTPUT
    ]
    return store.get_executions_by_id([min(ids)])[0] if ids else None


def property_value(value: metadata_store_pb2.Value):
    """The Python value of an MLMD property: int, float, str, bool, or JSON for structs."""
    kind = value.WhichOneof('value')
    if kind == 'struct_value':
        decoded = json_format.MessageToDict(value.struct_value)
        return decoded[_JSON_SINGLE_VALUE_KEY] if _JSON_SINGLE_VALUE_KEY in decoded else decoded
    if kind == 'proto_value':
        return value.proto_value.type_url
    return getattr(value, kind) if kind else None


def custom_properties(artifact) -> dict:
    return {key: property_value(value) for key, value in artifact.custom_properties.items()}


# Custom properties worth a line in the summary (counts, metrics, blessing, push).
_SHOWN = (
    'num_examples',
    'num_skipped',
    'nll_',
    'neg_elbo',
    'fid_',
    'precision_',
    'recall_',
    'eval_accuracy',
    'mnist_classifier_eval_accuracy',
    'blessed',
    'reasons',
    'pushed',
)


def _format(value) -> str:
    return f'{value:.4f}' if isinstance(value, float) else str(value)


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
                lines.append(f'      {key}: {artifact.uri}')
                props = {
                    k: v
                    for k, v in custom_properties(artifact).items()
                    if k.startswith(_SHOWN) and isinstance(v, (int, float, str))
                }
                lines += [f'          {k} = {_format(v)}' for k, v in sorted(props.items())]
    lines.append(_cache_line(store, store.get_executions_by_context(run.id)))
    return '\n'.join(lines)


def _cache_line(store: mlmd.MetadataStore, executions) -> str:
    """Whether the run did anything: resolvers (queries, recorded on every run) do not count."""
    types = {t.id: t.name for t in store.get_execution_types()}
    work = [e for e in executions if not types.get(e.type_id, '').endswith('Resolver')]
    cached = sum(e.last_known_state == _STATE.CACHED for e in work)
    if work and cached == len(work):
        return 'Every component was cached: nothing ran, nothing was pushed again.'
    return f'{len(work) - cached} components ran, {cached} were cached.'
