"""Compiled Kubeflow V2 jobs run as Vertex AI runs them (tests/vertex_launcher.py), on a Cloud
Storage that every process shares (tests/local_gcs.py)."""

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request

import numpy as np
import pytest
import tensorflow as tf
from ml_metadata.proto import metadata_store_pb2

from nvae_tfx.evaluation import feature_networks
from pipeline import configs, run_kubeflow
from tests import cel
from tests.local_gcs import LocalGcs
from tests.vertex_launcher import (
    Image,
    MetadataStore,
    TaskFailed,
    VertexLauncher,
    build_context,
)

BUCKET = 'nvae-vertex'
IMAGE = 'local/nvae-tfx:test'


@pytest.fixture(scope='module')
def gcs(tmp_path_factory):
    with LocalGcs(str(tmp_path_factory.mktemp('gcs'))) as storage:
        storage.create_bucket(BUCKET)
        storage.activate()
        yield storage


@pytest.fixture(scope='module')
def image(tmp_path_factory):
    return Image(configs.PROJECT_ROOT, str(tmp_path_factory.mktemp('image') / 'pipeline')).build()


# --- Conditions ---------------------------------------------------------------------------------


def _condition_inputs(blessed, uri='gs://b/m'):
    artifact = {'uri': uri, 'metadata': {'blessed': blessed}}
    return {'inputs': {'artifacts': {'_Evaluator.blessing': {'artifacts': [artifact]}}}}


def test_conditions_as_tfx_compiles_them():
    blessed = "inputs.artifacts['_Evaluator.blessing'].artifacts[0].metadata['blessed']"
    uri = "inputs.artifacts['_Evaluator.blessing'].artifacts[0].uri"
    assert cel.evaluate(f'({blessed} == 1.0)', _condition_inputs(1.0))
    assert not cel.evaluate(f'({blessed} == 1.0)', _condition_inputs(0.0))
    assert cel.evaluate(f"!(({blessed} > 0.5)) || ({uri} == 'gs://b/m')", _condition_inputs(1.0))
    assert not cel.evaluate(
        f"({blessed} == 1.0) && ({uri} + '/x' == 'gs://b/y/x')", _condition_inputs(1.0)
    )
    with pytest.raises(ValueError, match='unknown variable'):
        cel.evaluate('outputs.x == 1', _condition_inputs(1.0))
    with pytest.raises(ValueError, match='cannot read'):
        cel.evaluate(f'{blessed} in [1, 2]', _condition_inputs(1.0))


# --- The resolver's metadata queries ------------------------------------------------------------


def test_resolver_queries_answer_within_the_pipeline(tmp_path):
    store = MetadataStore(str(tmp_path / 'metadata.sqlite'))
    live = metadata_store_pb2.Artifact.LIVE

    def blessing(pipeline, model, blessed):
        name = store.create_artifact(
            'tfx.ModelBlessing', f'gs://b/{pipeline}/{model}', {'blessed': blessed}, live
        )
        model_name = store.create_artifact('tfx.Model', f'gs://b/{pipeline}/{model}', {}, live)
        store.update_artifact(
            name,
            f'gs://b/{pipeline}/{model}',
            {'blessed': blessed, 'current_model_id': model_name},
            live,
        )
        store.record_execution(
            'system.ContainerExecution',
            'Evaluator',
            [store.context('system.Pipeline', pipeline)],
            {'model': [model_name]},
            {'blessing': [name]},
            metadata_store_pb2.Execution.COMPLETE,
        )
        return name, model_name

    first = blessing('p', 'm1', 1)
    blessing('p', 'm2', 0)
    blessing('other', 'm3', 1)
    query = 'schema_title="tfx.ModelBlessing" AND state=LIVE AND metadata.blessed.number_value=1'
    name, title, uri, metadata = store.query(query, 'p')
    assert (name, title, uri) == (first[0], 'tfx.ModelBlessing', 'gs://b/p/m1')
    assert metadata == {'blessed': 1.0, 'current_model_id': first[1]}
    model = store.query(f'schema_title="tfx.Model" AND state=LIVE AND name="{first[1]}"', 'p')
    assert model[:3] == (first[1], 'tfx.Model', 'gs://b/p/m1')
    latest = blessing('p', 'm4', 1)
    assert store.query(query, 'p')[0] == latest[0]
    assert store.query(query, 'nothing-here') is None
    with pytest.raises(NotImplementedError, match='not supported'):
        store.query('schema_title="tfx.Model" OR state=LIVE', 'p')


# --- The image ----------------------------------------------------------------------------------


def dockerfile_copies() -> list[str]:
    with open(os.path.join(configs.PROJECT_ROOT, 'Dockerfile')) as f:
        return [line.split()[1] for line in f if line.startswith('COPY ')]


def test_the_build_context_holds_every_copy_source_and_nothing_local():
    """What `docker build .` sends, by .dockerignore's rules: every COPY source, and none of
    the checkout's environments, outputs, tests or caches."""
    context = build_context(configs.PROJECT_ROOT)
    for source in dockerfile_copies():
        assert source in context, f'.dockerignore leaves out COPY source {source}'
        if os.path.isdir(os.path.join(configs.PROJECT_ROOT, source)):
            assert any(p.startswith(source + '/') and p.endswith('.py') for p in context) or (
                source == 'schemas'
            ), f'{source} is in the context without its files'
    top = {p.split('/')[0] for p in context}
    assert top.isdisjoint({'.venv', '.venv-airflow', 'outputs', 'tests', 'bench', '.git'}), top
    assert not [p for p in context if '__pycache__' in p]


def test_the_image_holds_what_the_dockerfile_copies(image):
    assert image.copied == dockerfile_copies()
    assert image.root == configs.IMAGE_PROJECT_ROOT
    embedded = os.path.join(image.directory, configs.IMAGE_EMBEDDED_DATA, 'mnist_5k.csv.gz')
    assert os.path.isfile(embedded)
    assert image.map_paths('/pipeline/schemas x=/pipeline gs://b/pipeline /pipelines') == (
        f'{image.directory}/schemas x={image.directory} gs://b/pipeline /pipelines'
    )
    probe = subprocess.run(
        [
            sys.executable,
            '-c',
            'import components, model_code, nvae_tfx, pipeline\n'
            'import components.evaluator.executor, components.trainer.trainer_module\n'
            'for m in (components, model_code, nvae_tfx, pipeline):\n    print(m.__file__)\n'
            'try:\n    import bench\nexcept ModuleNotFoundError:\n    print("no-bench")',
        ],
        cwd=image.directory,
        env=image.environment(),
        capture_output=True,
        text=True,
    )
    assert probe.returncode == 0, probe.stderr
    *files, bench = probe.stdout.split()[-5:]
    assert all(f.startswith(image.directory + '/') for f in files), files
    assert bench == 'no-bench'  # the checkout's editable install is not in the image


def docker_daemon() -> bool:
    try:
        return subprocess.run(['docker', 'info'], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.extended
@pytest.mark.skipif(not docker_daemon(), reason='no Docker daemon on this machine')
def test_docker_builds_the_image_and_it_imports_the_project():
    """Where a Docker daemon runs: the real build (its base image is pulled), then the project's
    packages imported inside the image."""
    tag = 'nvae-tfx:build-test'
    built = subprocess.run(
        ['docker', 'build', '-t', tag, configs.PROJECT_ROOT], capture_output=True, text=True
    )
    assert built.returncode == 0, built.stderr[-3000:]
    probe = subprocess.run(
        [
            'docker',
            'run',
            '--rm',
            tag,
            'python',
            '-c',
            'import components.evaluator.executor, components.trainer.trainer_module, pipeline',
        ],
        capture_output=True,
        text=True,
    )
    assert probe.returncode == 0, probe.stderr[-3000:]


# --- System tasks: importer, resolver, condition ------------------------------------------------


def _tiny_job(tmp_path):
    """Importers, a LatestArtifact resolver and a condition on an imported artifact."""
    from tfx import v1 as tfx
    from tfx.types import standard_artifacts

    schema = tfx.dsl.Importer(
        source_uri=f'gs://{BUCKET}/tiny/schema', artifact_type=standard_artifacts.Schema
    ).with_id('schema_importer')
    stats = tfx.dsl.Importer(
        source_uri=tfx.dsl.experimental.RuntimeParameter(name='statistics', ptype=str),
        artifact_type=standard_artifacts.ExampleStatistics,
        reimport=True,
    ).with_id('stats_importer')
    blessing = tfx.dsl.Importer(
        source_uri=f'gs://{BUCKET}/tiny/blessing',
        artifact_type=standard_artifacts.ModelBlessing,
        custom_properties={'blessed': 0},
    ).with_id('blessing_importer')
    latest = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestArtifactStrategy,
        schema=tfx.dsl.Channel(type=standard_artifacts.Schema),
    ).with_id('latest_schema')
    with tfx.dsl.Cond(blessing.outputs['result'].future()[0].custom_property('blessed') == 1):
        validator = tfx.components.ExampleValidator(
            statistics=stats.outputs['result'], schema=schema.outputs['result']
        )
    pipeline = tfx.dsl.Pipeline(
        pipeline_name='tiny',
        pipeline_root=f'gs://{BUCKET}/tiny/root',
        components=[schema, stats, blessing, latest, validator],
    )
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=IMAGE),
        output_dir=str(tmp_path),
        output_filename='tiny.json',
    )
    runner.run(pipeline, parameter_values={'statistics': f'gs://{BUCKET}/tiny/stats'})
    return str(tmp_path / 'tiny.json')


def test_system_tasks_as_vertex_runs_them(tmp_path, image):
    job = _tiny_job(tmp_path)
    launcher = VertexLauncher(image, str(tmp_path / 'launcher'))
    first = launcher.run(job, log=lambda _: None)
    # The resolver ran before any schema existed (it has no upstream task).
    assert first.tasks['latest_schema'].outputs == {'schema': []}
    schema = first.output('schema_importer', 'result')
    assert (schema.schema_title, schema.uri) == ('tfx.Schema', f'gs://{BUCKET}/tiny/schema')
    assert first.output('blessing_importer', 'result').metadata == {'blessed': 0.0}
    # blessed == 1 is false: the container task is skipped (nothing ran, nothing to run).
    assert first.tasks['ExampleValidator'].state == 'SKIPPED'

    second = launcher.run(job, {'statistics': f'gs://{BUCKET}/tiny/other'}, log=lambda _: None)
    assert second.output('latest_schema', 'schema').name == schema.name
    assert second.output('schema_importer', 'result').name == schema.name  # reimport=False
    stats = [r.output('stats_importer', 'result') for r in (first, second)]
    assert stats[0].name != stats[1].name  # reimport=True
    assert stats[1].uri == f'gs://{BUCKET}/tiny/other'  # the runtime parameter
    with pytest.raises(ValueError, match='no runtime parameter'):
        launcher.run(job, {'statistic': 'x'}, log=lambda _: None)


# --- A shared Cloud Storage ---------------------------------------------------------------------


@pytest.mark.slow
def test_cloud_storage_is_shared_by_tensorflow_beam_and_the_storage_client(gcs):
    root = f'gs://{BUCKET}/shared'
    data = os.urandom(3_000_000)  # several upload chunks
    tf.io.gfile.makedirs(f'{root}/dir')
    with tf.io.gfile.GFile(f'{root}/dir/tf.bin', 'wb') as f:
        f.write(data)
    beam = subprocess.run(
        [
            sys.executable,
            '-c',
            'import sys\n'
            'from apache_beam.io.filesystems import FileSystems\n'
            f'data = FileSystems.open("{root}/dir/tf.bin").read()\n'
            f'with FileSystems.create("{root}/beam.txt") as f:\n'
            '    f.write(b"%d" % len(data))\n'
            f'print(sorted(m.path for m in FileSystems.match(["{root}/**"])[0].metadata_list))',
        ],
        env={**os.environ, **gcs.environment()},
        capture_output=True,
        text=True,
    )
    assert beam.returncode == 0, beam.stderr[-3000:]
    assert f'{root}/dir/tf.bin' in beam.stdout
    with tf.io.gfile.GFile(f'{root}/beam.txt', 'rb') as f:
        assert f.read() == str(len(data)).encode()
    assert tf.io.gfile.GFile(f'{root}/dir/tf.bin', 'rb').read() == data
    assert sorted(tf.io.gfile.listdir(root)) == ['beam.txt', 'dir/']

    from google.cloud import storage

    client = storage.Client()
    names = sorted(b.name for b in client.list_blobs(BUCKET, prefix='shared/'))
    # TensorFlow marks directories with empty objects, as on Cloud Storage.
    assert names == ['shared/', 'shared/beam.txt', 'shared/dir/', 'shared/dir/tf.bin']
    # Nothing reaches the internet: the proxy refuses every other host.
    proxy = urllib.request.ProxyHandler({'https': gcs.environment()['https_proxy']})
    with pytest.raises(OSError, match='403'):
        urllib.request.build_opener(proxy).open('https://example.com/', timeout=10)


# --- The compiled job ---------------------------------------------------------------------------


# --- The whole job, twice, and a CelebA job: everything on Cloud Storage -----------------------

# The fewest steps and samples that still train, score (NLL, FID, precision/recall), bless and push;
# checkpoints at epoch ends only.
TINY = (
    '--preset=tiny --train_steps=4 --batch_size=8 --steps_per_epoch=2 --checkpoint_every_steps=0 '
    '--jit_compile=false --eval_examples=16 --iw_samples=2 --fid_samples=24 '
    '--readjust_bn_passes=1 --gpus=0'
).split()


# The resolver of the last blessed model compiles into two tasks: blessings, then their models.
MODEL_RESOLVER = 'latest_blessed_model_resolver-model-resolver'


# The jobs the extended tests below run: the default MNIST job, and CelebA with its data and
# Inception weights on Cloud Storage.
MNIST_FLAGS = ('--digit_classifier_epochs=1',)
CELEBA_WEIGHTS = f'gs://{BUCKET}/weights/{feature_networks.INCEPTION_WEIGHTS_FILE}'
CELEBA_FLAGS = (
    '--dataset=celeba',
    '--source=dir',
    f'--data_dir=gs://{BUCKET}/data/celeba',
    '--image_size=32',
    '--batch_size=4',
    '--eval_split=test',
    '--fid_samples=8',
    f'--inception_weights={CELEBA_WEIGHTS}',
)


def compile_job(directory, name, *flags) -> str:
    """Compiles the job with run_kubeflow; returns the job file."""
    job_file = os.path.join(directory, f'{name}.json')
    run_kubeflow.main(
        [f'--pipeline_root=gs://{BUCKET}/{name}', f'--image={IMAGE}', f'--output={job_file}']
        + TINY
        + list(flags)
        # Beam in the test's processes as in local runs: a worker process per CPU costs more
        # in start-up than it gains on tiny data.
        + ['--', *configs.DEFAULT_BEAM_ARGS]
    )
    return job_file


def compile_and_run(launcher, directory, name, *flags):
    """Compiles the job and runs it; every task must succeed."""
    run = launcher.run(compile_job(directory, name, *flags), log=print)
    assert {n: t.state for n, t in run.tasks.items() if t.state != 'SUCCEEDED'} == {}
    return run


@pytest.mark.parametrize(
    ('name', 'flags', 'classifier'),
    [('mnist', MNIST_FLAGS, True), ('celeba', CELEBA_FLAGS, False)],
)
def test_the_extended_jobs_compile(tmp_path, name, flags, classifier):
    """make test's guard on the jobs that only make test-extended runs: a flag that the
    run-time checks come to refuse fails here, not an hour into the extended suite."""
    with open(compile_job(str(tmp_path), name, *flags)) as f:
        tasks = json.load(f)['pipelineSpec']['root']['dag']['tasks']
    assert {'Trainer', 'GenerativeEvaluator', 'Pusher'} <= set(tasks)
    assert ('DigitClassifierTrainer' in tasks) == classifier


def read_json(uri):
    with tf.io.gfile.GFile(uri) as f:
        return json.load(f)


@pytest.fixture(scope='module')
def mnist_runs(tmp_path_factory, gcs, image):
    """The default MNIST job (embedded digits) run twice: the second compares with the first's
    blessed model, which the resolver finds in ML Metadata."""
    tmp_path = tmp_path_factory.mktemp('mnist')
    launcher = VertexLauncher(image, str(tmp_path / 'launcher'), env=gcs.environment())
    first = compile_and_run(launcher, str(tmp_path), 'mnist', *MNIST_FLAGS)
    second = launcher.run(str(tmp_path / 'mnist.json'), log=print)
    return launcher, first, second


@pytest.mark.extended
def test_the_default_mnist_job_pushes_a_blessed_model_to_cloud_storage(mnist_runs):
    _, first, _ = mnist_runs
    model = first.output('Trainer', 'model')
    assert model.uri.startswith(f'gs://{BUCKET}/mnist/0/{first.job_id}/Trainer_')
    assert tf.io.gfile.exists(f'{model.uri}/Format-Serving/saved_model.pb')
    classifier = first.output('DigitClassifierTrainer', 'feature_network').uri
    assert tf.io.gfile.exists(f'{classifier}/digit_classifier.keras')
    # No blessed model before: the resolver found none, so nothing was compared.
    assert first.tasks[MODEL_RESOLVER].outputs == {'model': []}
    evaluation = first.output('GenerativeEvaluator', 'evaluation').uri
    report = read_json(f'{evaluation}/metrics.json')
    metrics = report['metrics']
    assert report['blessed'] and report['baseline_metrics'] == {}
    assert metrics['num_eval_examples'] == 16
    assert metrics['fid_mnist_classifier'] >= 0 and metrics['nll_nats'] > 0
    blessing = first.output('GenerativeEvaluator', 'blessing')
    assert blessing.metadata['blessed'] == 1
    # The entrypoint turns the model's id into its Vertex resource name for the resolver.
    assert blessing.metadata['current_model_id'] == model.name
    pushed = first.output('Pusher', 'pushed_model')
    assert pushed.metadata['pushed'] == 1
    destination = pushed.metadata['pushed_destination']
    assert destination.startswith(f'gs://{BUCKET}/mnist/serving/')
    assert tf.io.gfile.exists(f'{destination}/saved_model.pb')
    # The run's report: the artifact is the HTML file, as Vertex's UI shows it; the card of
    # the push beside the SavedModel. No metadata store here: read from the task's inputs.
    html = first.output('RunReport', 'report')
    assert html.schema_title == 'system.HTML'
    assert html.uri.endswith('/report.html') and html.metadata['display_name'] == 'run report'
    with tf.io.gfile.GFile(html.uri) as f:
        text = f.read()
    assert f'data-role="candidate">{metrics["nll_nats"]:.4f}<' in text
    assert 'no ML Metadata store reachable' in text
    assert tf.io.gfile.exists(f'{destination}/model_card.md')


@pytest.mark.extended
def test_the_data_half_runs_task_by_task_on_cloud_storage(mnist_runs):
    launcher, run, _ = mnist_runs
    examples = run.output('ImageExampleGen', 'examples')
    prefix = f'gs://{BUCKET}/mnist/0/{run.job_id}/ImageExampleGen_'
    assert examples.uri.startswith(prefix) and examples.uri.endswith('/examples')
    # The driver's span and fingerprint reached the artifact, the executor's splits too ('span'
    # is also a property name of Examples, so the entrypoint reports the custom one prefixed).
    assert examples.metadata['custom:span'] == 0
    assert 'num_files:1' in examples.metadata['input_fingerprint']
    assert json.loads(examples.metadata['split_names']) == ['train', 'eval']
    transformed = run.output('Transform', 'transformed_examples').uri
    for split in ('train', 'eval'):
        assert tf.io.gfile.glob(f'{transformed}/Split-{split}/*.gz'), split
    graph = run.output('Transform', 'transform_graph').uri
    assert tf.io.gfile.exists(f'{graph}/transform_fn/saved_model.pb')
    for name in ('ImageExampleGen', 'Transform'):
        task_dir = run.output(name, next(iter(run.tasks[name].outputs))).uri.rsplit('/', 1)[0]
        assert tf.io.gfile.exists(f'{task_dir}/executor_output.json'), name
    # Every output is in ML Metadata, LIVE, under its Vertex-style name.
    store = launcher.metadata.store
    artifacts = {a.name: a for a in store.get_artifacts()}
    for task in run.tasks.values():
        for outputs in task.outputs.values():
            for artifact in outputs:
                assert artifacts[artifact.name].state == metadata_store_pb2.Artifact.LIVE
                assert artifacts[artifact.name].uri == artifact.uri


@pytest.mark.extended
def test_the_second_run_is_compared_with_the_first_blessed_model(mnist_runs):
    _, first, second = mnist_runs
    baseline = second.output(MODEL_RESOLVER, 'model')
    assert baseline.name == first.output('Trainer', 'model').name
    assert baseline.uri == first.output('Trainer', 'model').uri
    candidate = second.output('Trainer', 'model')
    assert candidate.name != baseline.name and candidate.uri != baseline.uri
    blessing = second.output('GenerativeEvaluator', 'blessing')
    assert blessing.metadata['baseline_model_id'] == baseline.name
    assert blessing.metadata['current_model_id'] == candidate.name
    report = read_json(f'{second.output("GenerativeEvaluator", "evaluation").uri}/metrics.json')
    current, compared = report['metrics'], report['baseline_metrics']
    assert compared and set(compared) == set(current)
    # The baseline was scored again on the same data: the first run's figures for the same model.
    first_report = read_json(
        f'{first.output("GenerativeEvaluator", "evaluation").uri}/metrics.json'
    )
    assert compared['nll_nats'] == pytest.approx(first_report['metrics']['nll_nats'], rel=1e-3)
    pushed = second.output('Pusher', 'pushed_model').metadata
    assert report['blessed'] == bool(blessing.metadata['blessed']) == bool(pushed['pushed'])


@pytest.mark.extended
def test_a_resubmitted_job_resumes_the_killed_jobs_training(tmp_path, gcs, image):
    """A job killed while its Trainer trains, submitted again (a new job id, its data half run
    again into new directories): the new Trainer resumes from the killed one's checkpoint,
    which lives under the pipeline root, keyed by the training, and is removed once exported."""
    launcher = VertexLauncher(image, str(tmp_path / 'launcher'), env=gcs.environment())
    steps = ['--train_steps=60', '--steps_per_epoch=20', '--checkpoint_every_steps=5']
    job = compile_job(str(tmp_path), 'resume', *MNIST_FLAGS, *steps)
    checkpoints = f'gs://{BUCKET}/resume/Trainer/checkpoints/*/training_state.npz'
    failed = []

    def first_job():
        try:
            launcher.run(job, log=print)
        except TaskFailed as e:
            failed.append(str(e))

    runner = threading.Thread(target=first_job)
    runner.start()
    deadline = time.time() + 1800
    while not tf.io.gfile.glob(checkpoints) and time.time() < deadline and runner.is_alive():
        time.sleep(0.5)
    assert tf.io.gfile.glob(checkpoints), 'the first job wrote no checkpoint'
    launcher.kill_running('Trainer')
    runner.join()
    assert failed and failed[0].startswith('Trainer: executor exited with -9')

    second = launcher.run(job, log=print)
    assert {n: t.state for n, t in second.tasks.items() if t.state != 'SUCCEEDED'} == {}
    model_run = second.output('Trainer', 'model_run').uri
    summary = read_json(f'{model_run}/training_summary.json')
    assert 5 <= summary['resumed_from_step'] < 60 and summary['steps'] == 60
    assert tf.io.gfile.glob(checkpoints) == []  # the exported model superseded it


def copy_tree(local_dir, uri):
    for directory, _, files in os.walk(local_dir):
        target = uri + directory[len(local_dir) :]
        tf.io.gfile.makedirs(target)
        for name in files:
            tf.io.gfile.copy(os.path.join(directory, name), f'{target}/{name}', overwrite=True)


@pytest.mark.extended
def test_a_celeba_job_reads_data_and_inception_weights_from_cloud_storage(tmp_path, gcs, image):
    import h5py
    import keras
    from keras.src.legacy.saving import legacy_h5_format

    from tests import fixtures

    fixtures.write_celeba_dir(str(tmp_path / 'celeba'), counts=(16, 4, 8))
    copy_tree(str(tmp_path / 'celeba'), f'gs://{BUCKET}/data/celeba')
    # Random weights in the layout of the file users download: the path is under test.
    inception = keras.applications.InceptionV3(
        include_top=False, pooling='avg', weights=None, input_shape=(299, 299, 3)
    )
    local_weights = str(tmp_path / feature_networks.INCEPTION_WEIGHTS_FILE)
    with h5py.File(local_weights, 'w') as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, inception)
    tf.io.gfile.copy(local_weights, CELEBA_WEIGHTS)
    launcher = VertexLauncher(image, str(tmp_path / 'launcher'), env=gcs.environment())
    run = compile_and_run(launcher, str(tmp_path), 'celeba', *CELEBA_FLAGS)
    assert 'DigitClassifierTrainer' not in run.tasks
    examples = run.output('ImageExampleGen', 'examples')
    assert json.loads(examples.metadata['split_names']) == ['train', 'eval', 'test']
    evaluation = run.output('GenerativeEvaluator', 'evaluation').uri
    metrics = read_json(f'{evaluation}/metrics.json')['metrics']
    assert metrics['num_eval_examples'] == 8  # the test partition
    for key in ('nll_nats', 'fid_inception_v3', 'precision_inception_v3', 'recall_inception_v3'):
        assert np.isfinite(metrics[key]), key
    assert run.output('Pusher', 'pushed_model').metadata['pushed'] == 1
