"""pipeline/run_kubeflow.py: the Kubeflow V2 PipelineJob JSON, compiled offline, and --submit."""

import importlib
import json
import os
import re

import pytest

from nvae_tfx.options import PROTOCOLS
from pipeline import code_fingerprints, configs, run_kubeflow

IMAGE = 'europe-docker.pkg.dev/proj/repo/nvae-tfx:test'
MODEL_TASKS = {'Trainer', 'GenerativeEvaluator'}
TASKS = {
    'ImageExampleGen',
    'StatisticsGen',
    'ImportSchemaGen',
    'ExampleValidator',
    'ValidationGate',
    'Transform',
    'Trainer',
    'DigitClassifierTrainer',
    'GenerativeEvaluator',
    'Pusher',
    'RunReport',
    # LatestBlessedModelStrategy compiles into two chained MLMD queries.
    'latest_blessed_model_resolver-model-blessing-resolver',
    'latest_blessed_model_resolver-model-resolver',
}


def compile_job(tmp_path, *argv):
    """The root is local, declared as mounted in the containers: compiling must write nothing
    there."""
    output = tmp_path / 'job.json'
    run_kubeflow.main(
        [
            '--pipeline_root',
            str(tmp_path / 'root'),
            '--in_image',
            str(tmp_path / 'root'),
            '--image',
            IMAGE,
            '--output',
            str(output),
            *argv,
        ]
    )
    return json.loads(output.read_text())


@pytest.fixture(scope='module')
def gpu_job(tmp_path_factory):
    """Full MNIST from a bucket, two A100s, a Dataflow-style Beam arg."""
    tmp_path = tmp_path_factory.mktemp('kfp')
    job = compile_job(
        tmp_path,
        '--source=idx',
        '--data_dir=gs://bucket/mnist',
        '--inception_weights=gs://bucket/weights/inception.h5',
        '--gpus=2',
        '--gpu_type=NVIDIA_TESLA_A100',
        '--cpus=12',
        '--memory_gb=85',
        '--iw_samples=1000',
        '--',
        '--runner=DataflowRunner',
        '--region=europe-west4',
    )
    return job, tmp_path


def tasks(job):
    return job['pipelineSpec']['root']['dag']['tasks']


def executors(job):
    return job['pipelineSpec']['deploymentSpec']['executors']


def parameter(task, name):
    value = task['inputs']['parameters'][name]
    return value.get('runtimeValue', {}).get('constantValue', {}).get('stringValue', value)


def test_every_task_runs_in_the_project_image(gpu_job):
    job, _ = gpu_job
    assert set(tasks(job)) == TASKS
    containers = {name: e['container'] for name, e in executors(job).items() if 'container' in e}
    assert len(containers) == len(TASKS) - 2  # the resolvers are MLMD queries, not containers
    assert {c['image'] for c in containers.values()} == {IMAGE}


def test_trainer_and_evaluator_get_the_accelerators(gpu_job):
    job, _ = gpu_job
    for name, executor in executors(job).items():
        resources = executor.get('container', {}).get('resources')
        if name.removesuffix('_executor') in MODEL_TASKS:
            assert resources == {
                'accelerator': {'count': '2', 'type': 'NVIDIA_TESLA_A100'},
                'cpuLimit': 12.0,
                'memoryLimit': 85.0,
            }
        else:
            assert resources is None, name


def test_pusher_is_gated_by_the_evaluators_blessing(gpu_job):
    job, _ = gpu_job
    pusher = tasks(job)['Pusher']
    assert pusher['inputs']['artifacts']['model_blessing']['taskOutputArtifact'] == {
        'outputArtifactKey': 'blessing',
        'producerTask': 'GenerativeEvaluator',
    }
    assert 'GenerativeEvaluator' in pusher['dependentTasks']
    assert json.loads(parameter(pusher, 'push_destination')) == {
        'filesystem': {'base_directory': str(gpu_job[1] / 'root') + '/serving'}
    }


def test_baseline_resolves_through_the_evaluators_current_model_id(gpu_job):
    """The model query matches the blessing's current_model_id, which Kubeflow rewrites to the
    artifact name only for executors derived from TFX's Evaluator executor."""
    job, _ = gpu_job
    query = executors(job)['latest_blessed_model_resolver-model-resolver_executor']['resolver']
    assert "metadata['current_model_id']" in query['outputArtifactQueries']['model']['filter']
    evaluator = tasks(job)['GenerativeEvaluator']['inputs']['artifacts']
    assert evaluator['baseline_model']['taskOutputArtifact']['producerTask'] == (
        'latest_blessed_model_resolver-model-resolver'
    )
    args = executors(job)['GenerativeEvaluator_executor']['container']['args']
    executor_class = _import(args[args.index('--executor_class_path') + 1])
    from tfx.components.evaluator import executor as tfx_evaluator

    assert issubclass(executor_class, tfx_evaluator.Executor)


def test_the_report_is_an_html_artifact_the_pipeline_ui_shows(gpu_job):
    """KFP's UI renders system.HTML artifacts; TFX compiles a custom type's name into its schema
    title, which the container imports as a class path: a package the Dockerfile copies. With no
    metadata store to read, the report gets the pipeline's structure."""
    import yaml
    from kfp.pipeline_spec import pipeline_spec_pb2
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils

    from components.artifacts import HtmlReport

    job, _ = gpu_job
    report = tasks(job)['RunReport']
    component = job['pipelineSpec']['components'][report['componentRef']['name']]
    schema = component['outputDefinitions']['artifacts']['report']['artifactType']
    assert yaml.safe_load(schema['instanceSchema'])['title'] == 'system.HTML'
    class_path = kubeflow_v2_entrypoint_utils._retrieve_class_path(
        pipeline_spec_pb2.ArtifactTypeSchema(instance_schema=schema['instanceSchema'])
    )
    assert _import(class_path) is HtmlReport
    dockerfile = open(os.path.join(configs.PROJECT_ROOT, 'Dockerfile')).read()
    assert re.search(r'^COPY system /pipeline/system$', dockerfile, re.M)
    assert {'Pusher', 'GenerativeEvaluator', 'Transform'} <= set(report['dependentTasks'])
    assert report['inputs']['artifacts']['pushed_model']['taskOutputArtifact'] == {
        'outputArtifactKey': 'pushed_model',
        'producerTask': 'Pusher',
    }
    assert 'metadata_connection_config' not in report['inputs']['parameters']
    structure = json.loads(parameter(report, 'pipeline_structure'))
    evaluator = structure['nodes']['GenerativeEvaluator']
    assert evaluator['properties']['iw_samples'] == 'runtime parameter iw_samples (default 1000)'
    assert evaluator['inputs']['model'] == ['Trainer', 'model']


def test_runtime_parameters_with_their_defaults(gpu_job):
    job, _ = gpu_job
    definitions = job['pipelineSpec']['root']['inputDefinitions']['parameters']
    assert definitions == {
        'iw_samples': {'type': 'INT'},
        'fid_samples': {'type': 'INT'},
        'nll_tolerance': {'type': 'DOUBLE'},
        'fid_tolerance': {'type': 'DOUBLE'},
    }
    values = job['runtimeConfig']['parameters']
    # The cpu preset's protocol gives the generated count; the flag gives K.
    assert values == {
        'iw_samples': {'intValue': '1000'},
        'fid_samples': {'intValue': str(PROTOCOLS['quick'].fid_samples)},
        'nll_tolerance': {'doubleValue': PROTOCOLS['quick'].nll_tolerance},
        'fid_tolerance': {'doubleValue': PROTOCOLS['quick'].fid_tolerance},
    }
    evaluator = tasks(job)['GenerativeEvaluator']['inputs']['parameters']
    assert evaluator['iw_samples'] == {'componentInputParameter': 'iw_samples'}
    assert job['runtimeConfig']['gcsOutputDirectory'] == str(gpu_job[1] / 'root')


def test_beam_args_reach_the_data_components(gpu_job):
    job, _ = gpu_job
    for name in ('ImageExampleGen', 'StatisticsGen', 'Transform', 'GenerativeEvaluator'):
        args = executors(job)[f'{name}_executor']['container']['args']
        assert args[-2:] == ['--runner=DataflowRunner', '--region=europe-west4'], name


def test_code_comes_from_the_image_not_packaged_wheels(gpu_job):
    """Transform and Trainer name functions of the installed project; nothing is uploaded at
    compile time; every class path the job names is a package the Dockerfile copies."""
    job, tmp_path = gpu_job
    transform, trainer = tasks(job)['Transform'], tasks(job)['Trainer']
    assert callable(_import(parameter(transform, 'preprocessing_fn')))
    assert callable(_import(parameter(trainer, 'run_fn')))
    assert 'module_file' not in transform['inputs']['parameters']
    assert json.loads(parameter(transform, 'custom_config'))['code_fingerprint'] == (
        code_fingerprints.fingerprint('Transform')
    )
    assert not (tmp_path / 'root').exists()  # no _wheels

    dockerfile = open(os.path.join(configs.PROJECT_ROOT, 'Dockerfile')).read()
    packages = set()
    for executor in executors(job).values():
        args = executor.get('container', {}).get('args', [])
        if '--executor_class_path' in args:
            packages.add(args[args.index('--executor_class_path') + 1].split('.')[0])
    packages.update(
        parameter(t, 'preprocessing_fn' if t is transform else 'run_fn').split('.')[0]
        for t in (transform, trainer)
    )
    assert packages - {'tfx'} == {'components'}
    for package in packages - {'tfx'} | {'nvae_tfx', 'model_code', 'pipeline', 'schemas'}:
        assert re.search(rf'^COPY {package} /pipeline/{package}$', dockerfile, re.M), package


def test_paths_are_the_images(gpu_job):
    job, _ = gpu_job
    schema = parameter(tasks(job)['ImportSchemaGen'], 'schema_file')
    assert schema == configs.IMAGE_PROJECT_ROOT + '/schemas/mnist/schema.pbtxt'
    assert os.path.isfile(configs.PROJECT_ROOT + schema[len(configs.IMAGE_PROJECT_ROOT) :])
    assert parameter(tasks(job)['ImageExampleGen'], 'input_base') == 'gs://bucket/mnist'
    evaluator = tasks(job)['GenerativeEvaluator']
    assert parameter(evaluator, 'inception_weights') == 'gs://bucket/weights/inception.h5'


def test_local_runtime_paths_are_refused_unless_in_the_image():
    base = ['--image', IMAGE, '--pipeline_root', 'gs://b/root', '--source=idx']
    for flags, refused in (
        (['--data_dir=data/mnist'], f'--data_dir={os.path.abspath("data/mnist")}'),
        (['--data_dir=gs://b/mnist', '--inception_weights=/w/i.h5'], '--inception_weights=/w/i.h5'),
        (['--data_dir=gs://b/mnist', '--serving_dir=/srv'], '--serving_dir=/srv'),
        (['--data_dir=/data/mnist', '--in_image=/data/other'], '--data_dir=/data/mnist'),
    ):
        with pytest.raises(ValueError) as refusal:
            run_kubeflow.parse(base + flags)
        assert f'{refused} is a path on this machine' in str(refusal.value)
        assert f'add --in_image={refused.split("=")[1]}' in str(refusal.value)
    with pytest.raises(ValueError, match='--pipeline_root=/mnt/root is a path on this machine'):
        run_kubeflow.parse(
            [
                '--image',
                IMAGE,
                '--pipeline_root',
                '/mnt/root',
                '--data_dir=gs://b/m',
                '--source=idx',
            ]
        )
    for in_image, problem in (
        ('data/mnist', 'give the absolute path inside the containers'),
        ('/data/unused', 'is none of --pipeline_root, --serving_dir, --data_dir'),
    ):
        with pytest.raises(ValueError, match=problem):
            run_kubeflow.parse(base + ['--data_dir=gs://b/m', f'--in_image={in_image}'])
    # Declared paths and URIs pass as they are.
    spec, _ = run_kubeflow.parse(
        base
        + ['--data_dir=/data/mnist/', '--in_image=/data/mnist', '--serving_dir=gs://b/serving']
        + ['--inception_weights=/w/i.h5', '--in_image=/w/i.h5']
    )
    assert (spec.source.data_dir, spec.evaluation.inception_weights) == ('/data/mnist', '/w/i.h5')
    # A path below a declared one is inside it: the default serving directory below the root.
    spec, _ = run_kubeflow.parse(
        ['--image', IMAGE, '--pipeline_root=/gcs/b/root', '--in_image=/gcs/b/root']
    )
    assert spec.paths.serving_dir == '/gcs/b/root/serving'
    with pytest.raises(ValueError, match='--serving_dir=/gcs/b/rooted is a path on this machine'):
        run_kubeflow.parse(
            ['--image', IMAGE, '--pipeline_root=/gcs/b/root', '--in_image=/gcs/b/root']
            + ['--serving_dir=/gcs/b/rooted']
        )


def test_cpu_only_embedded_digits(tmp_path):
    job = compile_job(tmp_path, '--gpus=0', '--no_cache')
    resources = executors(job)['Trainer_executor']['container']['resources']
    assert resources == {'cpuLimit': 8.0, 'memoryLimit': 32.0}
    example_gen = tasks(job)['ImageExampleGen']
    assert parameter(example_gen, 'input_base') == '/pipeline/data/embedded'
    assert not any(t.get('cachingOptions', {}).get('enableCache') for t in tasks(job).values())
    # In-container default: a Beam worker per CPU.
    args = executors(job)['Transform_executor']['container']['args']
    assert args[-2:] == list(run_kubeflow.DEFAULT_BEAM_ARGS)


def test_submit_without_credentials_fails_clearly(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv('GOOGLE_APPLICATION_CREDENTIALS', raising=False)
    monkeypatch.setenv('NO_GCE_CHECK', 'true')  # no metadata-server probe: not on Google Cloud
    monkeypatch.setenv('CLOUDSDK_CONFIG', str(tmp_path / 'gcloud'))  # no user credentials either
    job_file = tmp_path / 'job.json'
    with pytest.raises(SystemExit, match='no Google Cloud credentials'):
        run_kubeflow.main(
            [
                '--pipeline_root',
                'gs://bucket/nvae',
                '--image',
                IMAGE,
                '--output',
                str(job_file),
                '--no_train',
                '--submit',
                '--project',
                'proj',
            ]
        )
    assert 'Compiled nvae-mnist' in capsys.readouterr().out
    assert json.loads(job_file.read_text())['displayName'] == 'nvae-mnist'  # kept for later


def test_flags_are_checked(capsys):
    with pytest.raises(ValueError, match='--pipeline_root is required'):
        run_kubeflow.parse(['--image', IMAGE])
    with pytest.raises(ValueError, match='--submit needs --project'):
        run_kubeflow.parse(['--image', IMAGE, '--pipeline_root', 'gs://b/p', '--submit'])
    with pytest.raises(SystemExit):
        run_kubeflow.parse(['--pipeline_root', 'gs://b/p'])  # argparse: --image is required
    assert 'the following arguments are required: --image' in capsys.readouterr().err


def _import(path):
    module, name = path.rsplit('.', 1)
    return getattr(importlib.import_module(module), name)
