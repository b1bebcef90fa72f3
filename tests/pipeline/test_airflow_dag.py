"""pipeline/airflow_dag.py in Airflow 2.10: the scheduler's DagBag loads it, and two runs of the
DAG (dag.test(), one process, Airflow's SQLite database) train, evaluate and push.

Runs in the Airflow environment (.venv-airflow, `make test` builds it); in .venv, without
Airflow, the module is skipped.
"""

import datetime
import os

import pytest

pytest.importorskip('airflow', reason='needs the Airflow environment: make test-airflow')

from nvae_tfx.data import synthetic  # noqa: E402
from pipeline import configs  # noqa: E402

PIPELINE_DIR = os.path.join(configs.PROJECT_ROOT, 'pipeline')
COMPONENTS = {
    'ImageExampleGen',
    'StatisticsGen',
    'ImportSchemaGen',
    'ExampleValidator',
    'ValidationGate',
    'Transform',
    'Trainer',
    'DigitClassifierTrainer',
    'latest_blessed_model_resolver',
    'GenerativeEvaluator',
    'Pusher',
    'RunReport',
}
TINY = (
    '--preset=tiny --train_steps=8 --batch_size=8 --steps_per_epoch=4 --eval_examples=20 '
    '--iw_samples=2 --fid_samples=40 --readjust_bn_passes=1 --digit_classifier_epochs=1'
)


@pytest.fixture(scope='module')
def deployment(tmp_path_factory):
    """An Airflow home and the DAG's configuration, as a deployment would set them."""
    tmp = tmp_path_factory.mktemp('airflow')
    synthetic.write_mnist_idx(str(tmp / 'mnist'), n_train=40, n_test=20)
    env = {
        'AIRFLOW_HOME': str(tmp / 'home'),
        'AIRFLOW__CORE__DAGS_FOLDER': PIPELINE_DIR,
        'AIRFLOW__CORE__LOAD_EXAMPLES': 'False',
        'AIRFLOW__CORE__UNIT_TEST_MODE': 'False',
        # Parsing imports TensorFlow and TFX: over Airflow's 30 s default on a cold 2-core machine.
        'AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT': '300',
        'NVAE_AIRFLOW_SCHEDULE': '@daily',
        'NVAE_AIRFLOW_START_DATE': '2026-03-01',
        'NVAE_AIRFLOW_RETRIES': '2',
        'NVAE_PIPELINE_ARGS': f'--source=idx --data_dir={tmp}/mnist {TINY} '
        f'--pipeline_root={tmp}/root --serving_dir={tmp}/serving '
        f'--metadata_path={tmp}/metadata.sqlite',
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    from airflow.utils import db

    db.initdb()
    yield tmp
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope='module')
def dag(deployment):
    from airflow.models import DagBag

    bag = DagBag(dag_folder=PIPELINE_DIR, include_examples=False)
    assert bag.import_errors == {}
    assert list(bag.dag_ids) == ['nvae-mnist']
    return bag.get_dag('nvae-mnist')


def test_the_scheduler_parses_only_the_dag_file(deployment):
    from airflow.utils.file import list_py_file_paths

    assert list_py_file_paths(PIPELINE_DIR, safe_mode=False, include_examples=False) == [
        os.path.join(PIPELINE_DIR, 'airflow_dag.py')
    ]


def test_dag_shape_and_schedule(dag):
    assert set(dag.task_ids) == COMPONENTS
    assert dag.schedule_interval == '@daily'
    assert dag.start_date == datetime.datetime(2026, 3, 1, tzinfo=datetime.timezone.utc)
    assert not dag.catchup
    assert all(task.retries == 2 for task in dag.tasks)
    assert dag.get_task('Pusher').upstream_task_ids == {'Trainer', 'GenerativeEvaluator'}
    assert {'Trainer', 'latest_blessed_model_resolver', 'DigitClassifierTrainer'} <= (
        dag.get_task('GenerativeEvaluator').upstream_task_ids
    )


def test_parsing_reads_no_data_and_packages_nothing(deployment, dag):
    assert not (deployment / 'root').exists()
    assert not (deployment / 'metadata.sqlite').exists()


def _run(dag, deployment, date, extra_args=''):
    from airflow.utils.state import DagRunState

    from pipeline import airflow_dag

    if extra_args:
        env = {**os.environ, 'NVAE_PIPELINE_ARGS': os.environ['NVAE_PIPELINE_ARGS'] + extra_args}
        dag = airflow_dag.build_dag(env)
    run = dag.test(execution_date=date)
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert run.state == DagRunState.SUCCESS, states
    assert set(states) == COMPONENTS
    return _blessings(deployment)


def _blessings(deployment):
    """[(blessed, current_model_id, baseline_model_id)] of every ModelBlessing, oldest first, and
    [(pushed, model id)] of every PushedModel."""
    import ml_metadata as mlmd
    from ml_metadata.proto import metadata_store_pb2

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(deployment / 'metadata.sqlite')
    store = mlmd.MetadataStore(config)

    def prop(a, key):
        return a.custom_properties[key].int_value if key in a.custom_properties else None

    blessings = [
        (prop(a, 'blessed'), prop(a, 'current_model_id'), prop(a, 'baseline_model_id'))
        for a in store.get_artifacts_by_type('ModelBlessing')
    ]
    pushes = [prop(a, 'pushed') for a in store.get_artifacts_by_type('PushedModel')]
    return blessings, pushes


def _reports(deployment) -> list:
    """The text of every run's report (system.HTML artifacts, whose URI is the file), oldest
    first."""
    import ml_metadata as mlmd
    from ml_metadata.proto import metadata_store_pb2

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(deployment / 'metadata.sqlite')
    return [
        open(a.uri).read() for a in mlmd.MetadataStore(config).get_artifacts_by_type('system.HTML')
    ]


def test_two_scheduled_runs(deployment, dag):
    """Run 1 blesses and pushes its model. Run 2 (Trainer not cached, so the baseline is a
    different model) is held to an impossible NLL threshold: compared with run 1's model, not
    blessed, and nothing more reaches the serving directory although Airflow ignores Cond."""
    blessings, pushes = _run(
        dag, deployment, datetime.datetime(2026, 3, 2, tzinfo=datetime.timezone.utc)
    )
    [(blessed, first_model, baseline)] = blessings
    assert (blessed, baseline) == (1, None)
    assert pushes == [1]
    [version] = os.listdir(deployment / 'serving')
    assert os.path.isfile(deployment / 'serving' / version / 'saved_model.pb')
    # RunReport read the run from Airflow's store: its report, the card of its push.
    [report] = _reports(deployment)
    assert 'Blessed</b> and pushed to' in report and 'state-COMPLETE">COMPLETE' in report
    assert os.path.isfile(deployment / 'serving' / version / 'model_card.md')

    blessings, pushes = _run(
        dag,
        deployment,
        datetime.datetime(2026, 3, 3, tzinfo=datetime.timezone.utc),
        ' --max_nll=0.001',
    )
    (blessed, second_model, baseline) = blessings[1]
    assert blessed == 0 and baseline == first_model and second_model != first_model
    assert pushes == [1, 0]
    assert os.listdir(deployment / 'serving') == [version]
    assert 'Not blessed</b>, nothing pushed' in _reports(deployment)[1]
