"""Shows what the pipeline recorded in ML Metadata: runs, executions, artifacts and lineage.

  python -m pipeline.inspect_mlmd runs
  python -m pipeline.inspect_mlmd executions [--run RUN_ID]        # default: the newest run
  python -m pipeline.inspect_mlmd artifacts [--type Examples] [--run RUN_ID]
  python -m pipeline.inspect_mlmd lineage ARTIFACT_ID              # upstream, back to the data
  python -m pipeline.inspect_mlmd report [RUN_ID] [--output FILE]  # the run's HTML report

Each takes --dataset mnist|celeba (the store run_local.py writes) or --metadata_path FILE, and
--json for machine-readable output with the same content.
"""

import argparse
import collections
import datetime
import json
import math
import os
import sys

from ml_metadata.proto import metadata_store_pb2

from nvae_tfx import datasets
from nvae_tfx.options import SourceOptions
from pipeline import configs, logging_setup

if __name__ == '__main__':
    logging_setup.configure()  # Before report imports TensorFlow, so its C++ logs stay quiet.

from pipeline import report  # noqa: E402


class InspectError(Exception):
    pass


def _time(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).isoformat(
        timespec='seconds'
    )


def _plain(value):
    """JSON-safe values: non-finite floats become 'nan', 'inf', '-inf', the strings our
    components store in MLMD for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _state(execution) -> str:
    return metadata_store_pb2.Execution.State.Name(execution.last_known_state)


def _duration_s(execution):
    """Seconds from creation to the last update; None while it has not finished."""
    if execution.last_known_state in (
        metadata_store_pb2.Execution.NEW,
        metadata_store_pb2.Execution.RUNNING,
    ):
        return None
    return (execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1000


def _artifact_type_names(store):
    return {t.id: t.name for t in store.get_artifact_types()}


def _find_run(store, run_id):
    """The pipeline_run context named run_id, or the newest run when run_id is None."""
    runs = report.pipeline_runs(store)
    if not runs:
        raise InspectError('no pipeline runs recorded')
    if run_id is None:
        return runs[-1]
    for run, pipeline in runs:
        if run.name == run_id:
            return run, pipeline
    raise InspectError(f'no run {run_id!r}; runs: {", ".join(r.name for r, _ in runs)}')


# --- Records: plain data shared by the text and the JSON output --------------------------------


def runs_record(store):
    records = []
    for run, pipeline in report.pipeline_runs(store):
        executions = store.get_executions_by_context(run.id)
        records.append(
            {
                'run': run.name,
                'pipeline': pipeline,
                'started': _time(run.create_time_since_epoch),
                'executions': len(executions),
                'states': dict(collections.Counter(_state(e) for e in executions)),
            }
        )
    return records


def executions_record(store, run_id=None):
    run, pipeline = _find_run(store, run_id)
    executions = sorted(store.get_executions_by_context(run.id), key=lambda e: e.id)
    return {
        'run': run.name,
        'pipeline': pipeline,
        'executions': [
            {
                'id': e.id,
                'node': report.node_id(store, e),
                'state': _state(e),
                'started': _time(e.create_time_since_epoch),
                'duration_s': _duration_s(e),
            }
            for e in executions
        ],
    }


def _artifact_brief(artifact, type_names):
    return {'id': artifact.id, 'type': type_names[artifact.type_id], 'uri': artifact.uri}


def _artifact_record(store, artifact, type_names):
    producer = report.producer(store, artifact.id)
    return {
        **_artifact_brief(artifact, type_names),
        'state': metadata_store_pb2.Artifact.State.Name(artifact.state),
        'producer': producer
        and {'node': report.node_id(store, producer), 'execution_id': producer.id},
        'properties': _plain(
            {k: report.property_value(v) for k, v in sorted(artifact.properties.items())}
        ),
        'custom_properties': _plain(dict(sorted(report.custom_properties(artifact).items()))),
    }


def artifacts_record(store, type_name=None, run_id=None):
    """Artifacts of a type (default: all), of the whole store or of what one run's executions
    output (cached executions re-publish earlier artifacts)."""
    type_names = _artifact_type_names(store)
    if type_name is not None and type_name not in type_names.values():
        raise InspectError(
            f'no artifact type {type_name!r}; types: {", ".join(sorted(type_names.values()))}'
        )
    if run_id is None:
        artifacts = store.get_artifacts()
    else:
        run, _ = _find_run(store, run_id)
        artifacts = {
            a.id: a
            for e in store.get_executions_by_context(run.id)
            for outputs in report.outputs_of(store, e.id).values()
            for a in outputs
        }.values()
    return [
        _artifact_record(store, a, type_names)
        for a in sorted(artifacts, key=lambda a: a.id)
        if type_name is None or type_names[a.type_id] == type_name
    ]


def lineage_record(store, artifact_id: int):
    """{'artifact', 'produced_by': {execution, 'inputs': [{'key', 'artifact', 'produced_by'}]}}
    back to artifacts nothing produced. An artifact reached twice is expanded once; later
    occurrences carry 'repeated': True."""
    type_names = _artifact_type_names(store)
    found = store.get_artifacts_by_id([artifact_id])
    if not found:
        raise InspectError(f'no artifact with id {artifact_id}')
    expanded = set()

    def node(artifact):
        if artifact.id in expanded:
            return {'artifact': _artifact_brief(artifact, type_names), 'repeated': True}
        expanded.add(artifact.id)
        execution = report.producer(store, artifact.id)
        produced_by = execution and {
            'node': report.node_id(store, execution),
            'execution_id': execution.id,
            'state': _state(execution),
            'inputs': [
                {'key': key, **node(a)}
                for key, inputs in sorted(report.inputs_of(store, execution.id).items())
                for a in inputs
            ],
        }
        return {'artifact': _artifact_brief(artifact, type_names), 'produced_by': produced_by}

    return node(found[0])


# --- Text --------------------------------------------------------------------------------------


def _value_text(value, indent: str) -> str:
    text = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    return text.replace('\n', '\n' + indent)  # Multi-line strings (fingerprints) stay indented.


def runs_text(records) -> str:
    if not records:
        return 'No pipeline runs.'
    lines = [f'{"RUN":<28} {"PIPELINE":<16} {"STARTED":<26} {"EXECUTIONS":>10}  STATES']
    for r in records:
        states = ', '.join(f'{s} {n}' for s, n in sorted(r['states'].items()))
        lines.append(
            f'{r["run"]:<28} {r["pipeline"]:<16} {r["started"]:<26} {r["executions"]:>10}  {states}'
        )
    return '\n'.join(lines)


def executions_text(record) -> str:
    lines = [
        f'Run {record["run"]} of {record["pipeline"]}:',
        f'{"ID":>5}  {"NODE":<24} {"STATE":<10} {"DURATION":>10}  STARTED',
    ]
    for e in record['executions']:
        duration = '-' if e['duration_s'] is None else f'{e["duration_s"]:.1f}s'
        lines.append(
            f'{e["id"]:>5}  {e["node"]:<24} {e["state"]:<10} {duration:>10}  {e["started"]}'
        )
    return '\n'.join(lines)


def artifacts_text(records) -> str:
    if not records:
        return 'No artifacts.'
    lines = []
    for a in records:
        producer = (
            '-'
            if a['producer'] is None
            else (f'{a["producer"]["node"]} (execution {a["producer"]["execution_id"]})')
        )
        lines.append(f'{a["id"]:>5}  {a["type"]:<20} {a["state"]:<8} {producer}')
        lines.append(f'       {a["uri"]}')
        for key, value in {**a['properties'], **a['custom_properties']}.items():
            lines.append(f'       {key} = {_value_text(value, " " * (10 + len(key)))}')
    return '\n'.join(lines)


def lineage_text(record) -> str:
    lines = []

    def add(node, indent, key=None):
        a = node['artifact']
        label = f'{key}: ' if key else ''
        lines.append(
            f'{indent}{label}{a["type"]} {a["id"]}  {a["uri"]}'
            + ('  (lineage above)' if node.get('repeated') else '')
        )
        execution = node.get('produced_by')
        if execution:
            lines.append(
                f'{indent}  <- {execution["node"]} (execution {execution["execution_id"]}, '
                f'{execution["state"]})'
            )
            for item in execution['inputs']:
                add(item, indent + '       ', item['key'])

    add(record, '')
    return '\n'.join(lines)


# --- Command line ------------------------------------------------------------------------------


def parse_args(argv):
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        '--dataset',
        choices=datasets.DATASETS,
        default=SourceOptions.dataset,
        help='read the store run_local.py writes for this dataset',
    )
    common.add_argument('--metadata_path', help='SQLite ML Metadata file (overrides --dataset)')
    common.add_argument('--json', action='store_true', help='machine-readable output')
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    commands = p.add_subparsers(dest='command', required=True)
    commands.add_parser('runs', parents=[common], help='pipeline runs and their execution states')
    executions = commands.add_parser(
        'executions', parents=[common], help='executions of one run (default: the newest)'
    )
    executions.add_argument('--run', help='run id, as `runs` lists it')
    artifacts = commands.add_parser(
        'artifacts', parents=[common], help='artifacts with their properties and metrics'
    )
    artifacts.add_argument('--type', help='artifact type, e.g. Examples, Model, ModelBlessing')
    artifacts.add_argument('--run', help='only what this run output')
    lineage = commands.add_parser(
        'lineage', parents=[common], help='upstream lineage of an artifact'
    )
    lineage.add_argument('artifact_id', type=int)
    report_command = commands.add_parser(
        'report',
        parents=[common],
        help='write the HTML report of a run (default: the newest), failed runs included',
    )
    report_command.add_argument('run', nargs='?', help='run id, as `runs` lists it')
    report_command.add_argument(
        '--output', help='HTML file to write; default: reports/<run id>.html beside the store'
    )
    return p.parse_args(argv)


def report_record(store, metadata_path: str, run_id=None, output=None):
    """Writes the run's report from ML Metadata; {'run', 'pipeline', 'report': its path}."""
    from pipeline.run_report import writer

    run, pipeline = _find_run(store, run_id)
    return {
        'run': run.name,
        'pipeline': pipeline,
        'report': writer.write(store, run, metadata_path, output),
    }


def report_text(record) -> str:
    return f'Report of run {record["run"]} of {record["pipeline"]}: {record["report"]}'


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    metadata_path = args.metadata_path or configs.metadata_path(args.dataset)
    if not os.path.isfile(metadata_path):
        sys.exit(
            f'error: {metadata_path}: no ML Metadata store (run the pipeline first, or pass '
            '--metadata_path)'
        )
    store = report.open_store(metadata_path, read_only=True)
    try:
        if args.command == 'runs':
            record, text = runs_record(store), runs_text
        elif args.command == 'executions':
            record, text = executions_record(store, args.run), executions_text
        elif args.command == 'artifacts':
            record, text = artifacts_record(store, args.type, args.run), artifacts_text
        elif args.command == 'report':
            output = args.output and os.path.abspath(os.path.expanduser(args.output))
            record = report_record(store, metadata_path, args.run, output)
            text = report_text
        else:
            record, text = lineage_record(store, args.artifact_id), lineage_text
    except InspectError as e:
        sys.exit(f'error: {metadata_path}: {e}')
    print(json.dumps(record, indent=2) if args.json else text(record))


if __name__ == '__main__':
    main()
