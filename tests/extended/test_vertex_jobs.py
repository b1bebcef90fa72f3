"""The compiled Vertex jobs run whole on the local harness and Cloud Storage: the default MNIST
job twice (the second compared with the first's blessed model), a job killed in its Trainer and
resubmitted, a CelebA job with its data and Inception weights on Cloud Storage; and, where a
Docker daemon runs, the real image build."""

import json
import subprocess
import threading
import time

import numpy as np
import pytest
import tensorflow as tf
from ml_metadata.proto import metadata_store_pb2

from nvae_tfx.evaluation import feature_networks
from pipeline import configs
from tests.support.vertex_jobs import (
    BUCKET,
    CELEBA_FLAGS,
    CELEBA_WEIGHTS,
    MNIST_FLAGS,
    MODEL_RESOLVER,
    compile_and_run,
    compile_job,
    read_json,
)
from tests.support.vertex_launcher import TaskFailed, VertexLauncher


def docker_daemon() -> bool:
    try:
        return subprocess.run(['docker', 'info'], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


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


@pytest.fixture(scope='module')
def mnist_runs(tmp_path_factory, gcs, image):
    """The default MNIST job (embedded digits) run twice: the second compares with the first's
    blessed model, which the resolver finds in ML Metadata."""
    tmp_path = tmp_path_factory.mktemp('mnist')
    launcher = VertexLauncher(image, str(tmp_path / 'launcher'), env=gcs.environment())
    first = compile_and_run(launcher, str(tmp_path), 'mnist', *MNIST_FLAGS)
    second = launcher.run(str(tmp_path / 'mnist.json'), log=print)
    return launcher, first, second


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


def test_a_celeba_job_reads_data_and_inception_weights_from_cloud_storage(tmp_path, gcs, image):
    import h5py
    import keras
    from keras.src.legacy.saving import legacy_h5_format

    from nvae_tfx.data import synthetic

    synthetic.write_celeba_dir(f'gs://{BUCKET}/data/celeba', counts=(16, 4, 8))
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
