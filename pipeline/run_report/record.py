"""One pipeline run as plain data, what the report and the model card are written from: its
executions (node, state, times, execution properties, error, input and output artifact ids) and
every artifact they read or wrote.

Two sources give the same record: ML Metadata (from_store: run_local, `inspect_mlmd report`,
and the RunReport component where the runner's store is reachable, LocalDagRunner and Airflow),
and the RunReport component's own inputs where it is not (from_artifacts: Kubeflow Pipelines /
Vertex AI, whose metadata service the TFX container cannot query).
"""

import dataclasses
import json

from ml_metadata.proto import metadata_store_pb2

from pipeline import report

_STATE = metadata_store_pb2.Execution.State
_EVENT = metadata_store_pb2.Event
# TFX's portable runners name run contexts 'pipeline_run'; Airflow's launcher, 'run'.
RUN_CONTEXT_TYPES = ('pipeline_run', 'run')
# Where TFX records an execution's result (an ExecutionResult message as JSON): the executor's
# error code and message, which run_local adds for a failed component (record_failure).
EXECUTION_RESULT = '__execution_result__'
REPORT_NODE = 'RunReport'  # the component that writes the report at the end of the pipeline


@dataclasses.dataclass
class Artifact:
    id: int
    type: str
    uri: str
    properties: dict  # properties and custom properties, as Python values
    producer: str = ''  # node id of the execution that wrote it, '' if unknown
    producer_execution: int | None = None


@dataclasses.dataclass
class Execution:
    id: int | None  # None where known only from the compiled pipeline
    node: str
    state: str  # MLMD's state name: COMPLETE, CACHED, FAILED, RUNNING, ...
    started: float | None  # seconds since the epoch
    duration_s: float | None  # None while it has not ended
    properties: dict  # execution properties (the component's parameters)
    error: str = ''  # why it failed, where recorded
    inputs: dict = dataclasses.field(default_factory=dict)  # {key: [artifact id]}
    outputs: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Run:
    pipeline: str
    run_id: str
    started: float | None
    source: str  # where this record was read from, said in the report
    executions: list  # [Execution] in the order they were registered
    artifacts: dict  # {id: Artifact}

    def execution(self, node: str) -> Execution | None:
        """The node's last execution in this run."""
        found = [e for e in self.executions if e.node == node]
        return found[-1] if found else None

    def artifact(self, node: str, key: str, direction: str = 'outputs') -> Artifact | None:
        """The first artifact of a node's output (or input) key, or None."""
        execution = self.execution(node)
        ids = getattr(execution, direction).get(key, []) if execution else []
        return self.artifacts[ids[0]] if ids else None

    @property
    def failed(self) -> list:
        return [e for e in self.executions if e.state == 'FAILED']


# --- ML Metadata ---------------------------------------------------------------------------


def run_of_execution(store, execution_id: int):
    """The run context an execution belongs to."""
    type_ids = {t.id for t in store.get_context_types() if t.name in RUN_CONTEXT_TYPES}
    found = [c for c in store.get_contexts_by_execution(execution_id) if c.type_id in type_ids]
    if not found:
        raise ValueError(f'execution {execution_id} belongs to no pipeline run')
    return found[0]


def _properties(item) -> dict:
    values = {k: report.property_value(v) for k, v in item.properties.items()}
    values.update(report.custom_properties(item))
    return values


def _error(execution) -> str:
    value = execution.custom_properties.get(EXECUTION_RESULT)
    if value is None:
        return ''
    return json.loads(value.string_value).get('resultMessage', '')


def from_store(store, run_context, source: str) -> Run:
    """The run whose context is run_context, read from ML Metadata."""
    executions = sorted(store.get_executions_by_context(run_context.id), key=lambda e: e.id)
    # What each execution read and wrote; TFX's internal events (a resolver's bookkeeping) are
    # not the run's data flow.
    events = [
        e
        for e in store.get_events_by_execution_ids([e.id for e in executions])
        if e.type in (_EVENT.INPUT, _EVENT.OUTPUT, _EVENT.PENDING_OUTPUT)
    ]
    type_names = {t.id: t.name for t in store.get_artifact_types()}
    artifacts = {}
    for a in store.get_artifacts_by_id(sorted({e.artifact_id for e in events})):
        producer = report.producer(store, a.id)
        artifacts[a.id] = Artifact(
            id=a.id,
            type=type_names[a.type_id],
            uri=a.uri,
            properties=_properties(a),
            producer=report.node_id(store, producer) if producer else '',
            producer_execution=producer.id if producer else None,
        )
    records = []
    for e in executions:
        ended = e.last_known_state not in (_STATE.NEW, _STATE.RUNNING)
        record = Execution(
            id=e.id,
            node=report.node_id(store, e),
            state=_STATE.Name(e.last_known_state),
            started=e.create_time_since_epoch / 1000,
            duration_s=(e.last_update_time_since_epoch - e.create_time_since_epoch) / 1000
            if ended
            else None,
            properties={k: v for k, v in _properties(e).items() if k != EXECUTION_RESULT},
            error=_error(e),
        )
        for event in (event for event in events if event.execution_id == e.id):
            direction = record.inputs if event.type == _EVENT.INPUT else record.outputs
            direction.setdefault(event.path.steps[0].key, []).append(event.artifact_id)
        records.append(record)
    pipeline_types = {t.id for t in store.get_context_types() if t.name == 'pipeline'}
    contexts = store.get_contexts_by_execution(executions[0].id) if executions else []
    pipelines = [c.name for c in contexts if c.type_id in pipeline_types]
    return Run(
        pipeline=pipelines[0] if pipelines else '?',
        run_id=run_context.name,
        started=run_context.create_time_since_epoch / 1000,
        source=source,
        executions=records,
        artifacts=artifacts,
    )


def record_failure(store, run_context, message: str) -> list:
    """Records `message` as the error of the run's failed executions that carry none (TFX
    records no message for an executor that raised), in TFX's own execution-result property;
    returns those executions."""
    updated = []
    for execution in store.get_executions_by_context(run_context.id):
        if execution.last_known_state != _STATE.FAILED or EXECUTION_RESULT in (
            execution.custom_properties
        ):
            continue
        execution.custom_properties[EXECUTION_RESULT].string_value = json.dumps(
            {'code': 2, 'resultMessage': message}  # 2: google.rpc.Code UNKNOWN
        )
        updated.append(execution)
    if updated:
        store.put_executions(updated)
    return updated


# --- the RunReport component's inputs --------------------------------------------------------


def from_artifacts(pipeline: str, run_id: str, structure: dict, input_dict: dict) -> Run:
    """The run as far as the RunReport component's inputs tell it, where no metadata store is
    reachable. structure: {node id: {'properties': execution properties, 'inputs': {key:
    [producer node id, output key]}}} of the compiled pipeline, upstream of the component;
    input_dict: the component's inputs, {key: [TFX artifact]}, whose producers the component's
    own entry in structure names. Every upstream node completed (or its cached result was
    used), as the component runs only then; their times are not known here."""
    outputs, artifacts = {}, {}
    for key, (node, output_key) in structure.get(REPORT_NODE, {}).get('inputs', {}).items():
        for a in input_dict.get(key, []):
            artifacts[a.id] = Artifact(
                id=a.id, type=a.type_name, uri=a.uri, properties=_properties(a.mlmd_artifact),
                producer=node,
            )  # fmt: skip
            outputs.setdefault((node, output_key), []).append(a.id)
    executions = []
    for node, spec in structure.items():
        if node == REPORT_NODE:
            continue
        inputs = {
            key: outputs[tuple(source)]
            for key, source in spec.get('inputs', {}).items()
            if tuple(source) in outputs
        }
        own = {k: ids for (n, k), ids in outputs.items() if n == node}
        executions.append(
            Execution(
                None, node, 'COMPLETE', None, None, spec.get('properties', {}), '', inputs, own
            )
        )
    return Run(
        pipeline=pipeline,
        run_id=run_id,
        started=None,
        source="the RunReport component's input artifacts (no ML Metadata store reachable)",
        executions=executions,
        artifacts=artifacts,
    )
