"""pipeline/inspect_mlmd.py on a real pipeline run's ML Metadata and on hand-made records."""

import json
import os

import ml_metadata as mlmd
import pytest
from ml_metadata.proto import metadata_store_pb2

from nvae_tfx.data import synthetic
from nvae_tfx.options import SourceOptions
from pipeline import inspect_mlmd
from tests.support.pipeline_helpers import run_pipeline

NODES = [
    'ImageExampleGen',
    'ImportSchemaGen',
    'StatisticsGen',
    'ExampleValidator',
    'ValidationGate',
    'Transform',
    'RunReport',
]


def cli(capsys, metadata_path, *argv):
    inspect_mlmd.main([*argv, '--metadata_path', metadata_path])
    return capsys.readouterr().out


def cli_json(capsys, metadata_path, *argv):
    return json.loads(cli(capsys, metadata_path, *argv, '--json'))


# --- a real run --------------------------------------------------------------------------------


@pytest.fixture(scope='module')
def metadata_path(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp('inspect')
    synthetic.write_mnist_idx(str(tmp_path / 'mnist'), n_train=20, n_test=10)
    return run_pipeline(tmp_path, SourceOptions(source='idx', data_dir=str(tmp_path / 'mnist')))


def _artifact_id(record, node, key):
    """Id of an artifact found in `artifacts --json` output by its producer and output path."""
    [artifact] = [
        a for a in record if a['producer']['node'] == node and f'/{node}/{key}/' in a['uri']
    ]
    return artifact['id']


def test_runs(capsys, metadata_path):
    [run] = cli_json(capsys, metadata_path, 'runs')
    assert run['pipeline'] == 'nvae-test'
    assert run['executions'] == 7
    assert run['states'] == {'COMPLETE': 7}
    text = cli(capsys, metadata_path, 'runs')
    [line] = [line for line in text.splitlines() if line.startswith(run['run'])]
    assert 'nvae-test' in line and 'COMPLETE 7' in line


def test_executions(capsys, metadata_path):
    record = cli_json(capsys, metadata_path, 'executions')
    assert sorted(e['node'] for e in record['executions']) == sorted(NODES)
    assert all(e['state'] == 'COMPLETE' and e['duration_s'] >= 0 for e in record['executions'])
    # Durations come from MLMD's create/update times: the Beam components take real time.
    transform = next(e for e in record['executions'] if e['node'] == 'Transform')
    assert transform['duration_s'] > 0.5
    assert record == cli_json(capsys, metadata_path, 'executions', '--run', record['run'])
    text = cli(capsys, metadata_path, 'executions')
    for e in record['executions']:
        assert any(
            line.split()[:3] == [str(e['id']), e['node'], 'COMPLETE'] for line in text.splitlines()
        )


def test_artifacts_of_a_type(capsys, metadata_path):
    record = cli_json(capsys, metadata_path, 'artifacts', '--type', 'Examples')
    assert {a['type'] for a in record} == {'Examples'}
    assert len(record) == 2  # ExampleGen's and Transform's
    [ingested] = [a for a in record if a['producer']['node'] == 'ImageExampleGen']
    assert ingested['state'] == 'LIVE'
    assert ingested['custom_properties']['num_examples_train'] == 20
    assert ingested['custom_properties']['num_examples_eval'] == 10
    assert ingested['properties']['split_names'] == '["train", "eval"]'
    text = cli(capsys, metadata_path, 'artifacts', '--type', 'Examples')
    assert 'num_examples_train = 20' in text and ingested['uri'] in text
    everything = cli_json(capsys, metadata_path, 'artifacts')
    assert {a['type'] for a in everything} >= {
        'Examples',
        'Schema',
        'ExampleStatistics',
        'ExampleAnomalies',
        'TransformGraph',
    }
    run = cli_json(capsys, metadata_path, 'runs')[0]['run']
    assert cli_json(capsys, metadata_path, 'artifacts', '--run', run) == everything


def test_lineage_reaches_the_ingested_examples(capsys, metadata_path):
    artifacts = cli_json(capsys, metadata_path, 'artifacts')
    transformed = _artifact_id(artifacts, 'Transform', 'transformed_examples')
    ingested = _artifact_id(artifacts, 'ImageExampleGen', 'examples')
    tree = cli_json(capsys, metadata_path, 'lineage', str(transformed))
    assert tree['artifact']['id'] == transformed
    assert tree['produced_by']['node'] == 'Transform'
    inputs = {i['key']: i for i in tree['produced_by']['inputs']}
    assert set(inputs) == {'examples', 'schema'}
    assert inputs['examples']['artifact'] == {
        'id': ingested,
        'type': 'Examples',
        'uri': inputs['examples']['artifact']['uri'],
    }
    assert inputs['examples']['produced_by']['node'] == 'ImageExampleGen'
    assert inputs['examples']['produced_by']['inputs'] == []
    # schema <- ValidationGate <- anomalies <- ExampleValidator <- statistics <- StatisticsGen
    # <- the same Examples, shown once.
    gate = inputs['schema']['produced_by']
    assert gate['node'] == 'ValidationGate'
    validator = next(i for i in gate['inputs'] if i['key'] == 'anomalies')['produced_by']
    statistics = next(i for i in validator['inputs'] if i['key'] == 'statistics')['produced_by']
    [examples] = statistics['inputs']
    assert examples['artifact']['id'] == ingested and examples['repeated']

    lines = cli(capsys, metadata_path, 'lineage', str(transformed)).splitlines()
    assert lines[0].startswith(f'Examples {transformed} ')
    assert (
        lines[1].strip() == f'<- Transform (execution {tree["produced_by"]["execution_id"]}, '
        'COMPLETE)'
    )
    assert any(line.strip().startswith(f'examples: Examples {ingested} ') for line in lines)
    assert any(line.strip().startswith('<- ImageExampleGen (execution') for line in lines)


def test_report_of_a_run_without_training(capsys, metadata_path, tmp_path):
    """The run's own report (RunReport's system.HTML artifact) and one rebuilt from ML Metadata
    afterwards, where the report component shows as complete."""
    [own] = cli_json(capsys, metadata_path, 'artifacts', '--type', 'system.HTML')
    assert own['producer']['node'] == 'RunReport' and own['uri'].endswith('/report.html')
    assert own['custom_properties']['display_name'] == 'run report'
    run = cli_json(capsys, metadata_path, 'runs')[0]['run']
    rebuilt = cli_json(capsys, metadata_path, 'report', run, '--output', str(tmp_path / 'r.html'))
    assert rebuilt == {'run': run, 'pipeline': 'nvae-test', 'report': str(tmp_path / 'r.html')}
    for path, shown in (
        (own['uri'], 'RUNNING">writing this report'),
        (rebuilt['report'], 'COMPLETE">COMPLETE'),
    ):
        text = open(path).read()
        assert 'no model was trained in this run' in text
        assert '<h3>Statistics: train</h3>' in text and 'None in any split.' in text
        assert f'<td>RunReport</td><td><span class="state-{shown}</span>' in text
    assert cli(capsys, metadata_path, 'report').strip() == (
        f'Report of run {run} of nvae-test: {os.path.dirname(metadata_path)}/reports/{run}.html'
    )


def test_errors_name_the_store_and_the_problem(capsys, metadata_path):
    with pytest.raises(SystemExit, match=f'{metadata_path}: no artifact with id 9999'):
        cli(capsys, metadata_path, 'lineage', '9999')
    with pytest.raises(SystemExit, match="no artifact type 'Model'; types: .*Examples"):
        cli(capsys, metadata_path, 'artifacts', '--type', 'Model')
    with pytest.raises(SystemExit, match="no run 'nope'; runs: "):
        cli(capsys, metadata_path, 'executions', '--run', 'nope')


# --- hand-made records (fast) ------------------------------------------------------------------


def test_missing_store_is_reported_not_created(tmp_path, capsys):
    path = str(tmp_path / 'none.sqlite')
    with pytest.raises(SystemExit, match=f'{path}: no ML Metadata store'):
        cli(capsys, path, 'runs')
    assert not (tmp_path / 'none.sqlite').exists()


def test_every_property_value_kind_is_shown(tmp_path, capsys):
    """Metrics are ints, doubles, strings ('nan' where non-finite) or TFX JSON structs."""
    path = str(tmp_path / 'metadata.sqlite')
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = path
    store = mlmd.MetadataStore(config)
    type_id = store.put_artifact_type(metadata_store_pb2.ArtifactType(name='ModelEvaluation'))
    artifact = metadata_store_pb2.Artifact(
        type_id=type_id, uri='/eval/1', state=metadata_store_pb2.Artifact.LIVE
    )
    props = artifact.custom_properties
    props['fid_mnist_classifier'].double_value = 12.5
    props['num_samples'].int_value = 10000
    props['nll_nats'].string_value = 'nan'
    props['blessed'].bool_value = True
    props['per_split'].struct_value.update({'eval': {'fid': 3.0}})
    props['reasons'].struct_value.update({'__value__': ['fid above 50']})
    [artifact_id] = store.put_artifacts([artifact])

    [record] = cli_json(capsys, path, 'artifacts')
    assert record['id'] == artifact_id and record['producer'] is None
    assert record['custom_properties'] == {
        'blessed': True,
        'fid_mnist_classifier': 12.5,
        'nll_nats': 'nan',
        'num_samples': 10000,
        'per_split': {'eval': {'fid': 3.0}},
        'reasons': ['fid above 50'],
    }
    text = cli(capsys, path, 'artifacts')
    for line in (
        'fid_mnist_classifier = 12.5',
        'nll_nats = nan',
        'num_samples = 10000',
        'per_split = {"eval": {"fid": 3.0}}',
        'reasons = ["fid above 50"]',
    ):
        assert line in text
    assert cli(capsys, path, 'runs').strip() == 'No pipeline runs.'


def test_non_finite_floats_stay_valid_json():
    assert inspect_mlmd._plain({'a': [float('nan'), 1.5], 'b': float('-inf')}) == {
        'a': ['nan', 1.5],
        'b': '-inf',
    }
