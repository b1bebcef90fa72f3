"""Compiled Kubeflow V2 jobs run as Vertex AI runs them (tests/support/vertex_launcher.py), on
a Cloud Storage that every process shares (tests/support/local_gcs.py)."""

import json
import os
import subprocess
import sys
import urllib.request

import pytest
import tensorflow as tf
from ml_metadata.proto import metadata_store_pb2

from pipeline import configs
from tests.support import cel
from tests.support.vertex_jobs import (
    BUCKET,
    CELEBA_FLAGS,
    IMAGE,
    MNIST_FLAGS,
    compile_job,
)
from tests.support.vertex_launcher import MetadataStore, VertexLauncher, build_context

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


# --- The compiled jobs --------------------------------------------------------------------------


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
