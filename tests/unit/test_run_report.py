"""The run report and the model card (pipeline/run_report/, components/run_report/) on small
hand-made ML Metadata stores whose artifacts hold real files: a blessed and pushed run with a
baseline, a failed run, the Kubeflow path without a store. The pipeline-level checks, in a
real browser, are in test_trainer_pipeline.py."""

import base64
import html.parser
import io
import json
import os
import xml.etree.ElementTree as ET

import ml_metadata as mlmd
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import json_format
from ml_metadata.proto import metadata_store_pb2
from PIL import Image
from tensorflow_metadata.proto.v0 import anomalies_pb2, statistics_pb2
from tfx.dsl.components.base import base_executor
from tfx.types import standard_artifacts

from components.artifacts import HtmlReport
from components.run_report import executor as report_executor
from nvae_tfx import images
from pipeline import inspect_mlmd
from pipeline.run_report import lineage, model_card, page, record, writer

PIPELINE = 'nvae-test'
RUN = '2026-01-02T03:04:05.000000'
STATE = metadata_store_pb2.Execution
METRICS = {
    'nll_nats': 91.23456,
    'nll_bits_per_dim': 0.16789,
    'fid_mnist_classifier': 25.5,
    'precision_mnist_classifier': 0.79,
    'recall_mnist_classifier': 0.9,
    'eval_protocol': 'quick',
    'num_eval_examples': 500,
    'num_iw_samples': 50,
    'sample_temperature': 1.0,
    'fid_num_samples': 1000,
    'precision_recall_k': 3,
}
BASELINE = {**METRICS, 'nll_nats': 92.5, 'fid_mnist_classifier': 27.25}
PNGS = {'samples.png': (4, 6), 'reconstructions.png': (2, 5), 'latent_strips.png': (3, 7)}


class Page(html.parser.HTMLParser):
    """What a test reads from a page: shown metrics, images, scripts, links, text."""

    def __init__(self, text: str):
        super().__init__()
        self.metrics, self.images, self.scripts, self.urls, self.text = {}, [], 0, [], []
        self._metric = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if 'data-metric' in attrs:
            self._metric = (attrs['data-metric'], attrs['data-role'])
        if tag == 'img':
            self.images.append(attrs)
        self.scripts += tag == 'script'
        self.urls += [attrs[k] for k in ('src', 'href') if k in attrs]

    def handle_data(self, data):
        if self._metric:
            self.metrics[self._metric] = data
            self._metric = None
        self.text.append(data)

    @property
    def all_text(self):
        return ' '.join(' '.join(self.text).split())


def png(size) -> bytes:
    rows, columns = size
    return images.png_bytes(images.grid(np.full((rows * columns, 4, 4, 1), 0.5), columns))


# --- a hand-made run ---------------------------------------------------------------------------


class Store:
    """An ML Metadata store laid out as TFX's portable runners lay it out: a pipeline context,
    a pipeline_run context per run, a node context per component."""

    def __init__(self, path: str):
        self.path = path
        config = metadata_store_pb2.ConnectionConfig()
        config.sqlite.filename_uri = path
        self.config = config
        self.store = mlmd.MetadataStore(config)
        self.pipeline = self._context('pipeline', PIPELINE)

    def _type(self, kind, name):
        put = {'context': self.store.put_context_type, 'execution': self.store.put_execution_type}
        proto = {
            'context': metadata_store_pb2.ContextType,
            'execution': metadata_store_pb2.ExecutionType,
        }
        if kind == 'artifact':
            return self.store.put_artifact_type(metadata_store_pb2.ArtifactType(name=name))
        return put[kind](proto[kind](name=name))

    def _context(self, kind, name):
        existing = self.store.get_context_by_type_and_name(kind, name)
        if existing:
            return existing
        context = metadata_store_pb2.Context(type_id=self._type('context', kind), name=name)
        [context.id] = self.store.put_contexts([context])
        return context

    def artifact(self, type_name, uri, **properties):
        a = metadata_store_pb2.Artifact(
            type_id=self._type('artifact', type_name),
            uri=uri,
            state=metadata_store_pb2.Artifact.LIVE,
        )
        for key, value in properties.items():
            field = {int: 'int_value', float: 'double_value', str: 'string_value'}[type(value)]
            setattr(a.custom_properties[key], field, value)
        [a.id] = self.store.put_artifacts([a])
        return a

    def execution(self, run, node, state, inputs=(), outputs=(), **properties):
        """inputs/outputs: [(key, artifact)]; properties: execution properties."""
        e = metadata_store_pb2.Execution(
            type_id=self._type('execution', node), last_known_state=state
        )
        for key, value in properties.items():
            e.custom_properties[key].string_value = str(value)
        events = [
            (a, metadata_store_pb2.Event(type=kind, path={'steps': [{'key': key}]}))
            for kind, pairs in ((metadata_store_pb2.Event.INPUT, inputs),
                                (metadata_store_pb2.Event.OUTPUT, outputs))
            for key, a in pairs
        ]  # fmt: skip
        contexts = [self.pipeline, self._context('pipeline_run', run),
                    self._context('node', f'{PIPELINE}.{node}')]  # fmt: skip
        execution_id, _, _ = self.store.put_execution(e, events, contexts)
        return execution_id


def _write(path, data: bytes):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(data)


def write_statistics(uri, split):
    stats = statistics_pb2.DatasetFeatureStatisticsList()
    dataset = stats.datasets.add(num_examples=20)
    label = dataset.features.add(type=statistics_pb2.FeatureNameStatistics.INT)
    label.path.step.append('label')
    label.num_stats.mean, label.num_stats.max = 4.5, 9
    label.num_stats.common_stats.num_non_missing = 20
    image = dataset.features.add(type=statistics_pb2.FeatureNameStatistics.STRING)
    image.path.step.append('image_raw')
    image.string_stats.unique = 19
    image.string_stats.common_stats.num_non_missing = 20
    _write(f'{uri}/Split-{split}/FeatureStats.pb', stats.SerializeToString())


def write_anomalies(uri, split, problem=None):
    anomalies = anomalies_pb2.Anomalies()
    if problem:
        anomalies.anomaly_info['label'].short_description = 'Out-of-range values'
        anomalies.anomaly_info['label'].description = problem
    _write(f'{uri}/Split-{split}/SchemaDiff.pb', anomalies.SerializeToString())


def write_scalars(model_run_uri):
    """Per-epoch scalars as Keras' TensorBoard callback writes them."""
    for kind, losses in (('train', (300.0, 200.0, 150.0)), ('validation', (310.0, 220.0, 170.0))):
        writer_ = tf.summary.create_file_writer(f'{model_run_uri}/{kind}')
        with writer_.as_default():
            for epoch, loss in enumerate(losses):
                tf.summary.scalar('epoch_loss', loss, step=epoch)
                tf.summary.scalar('epoch_recon', loss - 20, step=epoch)
                tf.summary.scalar('epoch_kl', 20.0 - epoch, step=epoch)
                tf.summary.scalar('epoch_kl_00', 5.0 + epoch, step=epoch)
        writer_.close()
    summary = {'steps': 12, 'seconds': 3.5, 'final': {'loss': 150.0}}
    _write(f'{model_run_uri}/training_summary.json', json.dumps(summary).encode())


@pytest.fixture(scope='module')
def blessed(tmp_path_factory):
    """A complete run: trained, compared with an earlier run's model, blessed and pushed; the
    RunReport execution is still running (the component writing its report)."""
    tmp = tmp_path_factory.mktemp('blessed')
    s = Store(str(tmp / 'metadata.sqlite'))
    root = tmp / 'root'
    baseline = s.artifact('Model', f'{root}/Trainer/model/1')
    s.execution(
        '2025-12-31T00:00:00.000000', 'Trainer', STATE.COMPLETE, outputs=[('model', baseline)]
    )
    examples = s.artifact(
        'Examples', f'{root}/ImageExampleGen/examples/2', split_names='["train", "eval"]',
        num_examples_train=20, num_examples_eval=10, input_fingerprint='split:train,num_files:1',
    )  # fmt: skip
    s.execution(RUN, 'ImageExampleGen', STATE.COMPLETE, outputs=[('examples', examples)],
                custom_config=json.dumps({'custom_config': {'value': {
                    'dataset': 'mnist', 'source': 'idx', 'data_dir': '/data/mnist'}}}))  # fmt: skip
    statistics = s.artifact(
        'ExampleStatistics', f'{root}/StatisticsGen/statistics/3', split_names='["train", "eval"]'
    )
    for split in ('train', 'eval'):
        write_statistics(statistics.uri, split)
    s.execution(RUN, 'StatisticsGen', STATE.COMPLETE, [('examples', examples)],
                [('statistics', statistics)])  # fmt: skip
    anomalies = s.artifact(
        'ExampleAnomalies', f'{root}/ExampleValidator/anomalies/4', split_names='["train", "eval"]'
    )
    write_anomalies(anomalies.uri, 'train')
    write_anomalies(anomalies.uri, 'eval')
    s.execution(RUN, 'ExampleValidator', STATE.COMPLETE, [('statistics', statistics)],
                [('anomalies', anomalies)])  # fmt: skip
    transformed = s.artifact('Examples', f'{root}/Transform/transformed_examples/5')
    s.execution(RUN, 'Transform', STATE.CACHED, [('examples', examples)],
                [('transformed_examples', transformed)])  # fmt: skip
    model = s.artifact('Model', f'{root}/Trainer/model/6')
    model_run = s.artifact('ModelRun', f'{root}/Trainer/model_run/6')
    write_scalars(model_run.uri)
    training = {'dataset': 'mnist', 'preset': 'tiny', 'batch_size': 8, 'steps_per_epoch': 4,
                'mixed_precision': 'float32', 'overrides': {'num_latent_scales': 1}}  # fmt: skip
    s.execution(RUN, 'Trainer', STATE.COMPLETE, [('examples', transformed)],
                [('model', model), ('model_run', model_run)],
                custom_config=json.dumps(training), train_args='{"num_steps": 12}')  # fmt: skip
    evaluation = s.artifact('ModelEvaluation', f'{root}/GenerativeEvaluator/evaluation/7')
    report = {'metrics': METRICS, 'baseline_metrics': BASELINE, 'baseline_skipped': '',
              'blessed': True, 'reasons': [], 'rule': 'every metric finite; nll_nats within 1%',
              'best_metrics': {'protocol_key': 'k', 'values': {
                  'nll_nats': {'value': 90.125, 'model_id': 3}}}}  # fmt: skip
    _write(f'{evaluation.uri}/metrics.json', json.dumps(report).encode())
    for name, size in PNGS.items():
        _write(f'{evaluation.uri}/{name}', png(size))
    blessing = s.artifact('ModelBlessing', f'{root}/GenerativeEvaluator/blessing/7', blessed=1,
                          baseline_model_id=baseline.id, current_model_id=model.id)  # fmt: skip
    s.execution(RUN, 'GenerativeEvaluator', STATE.COMPLETE,
                [('model', model), ('baseline_model', baseline)],
                [('evaluation', evaluation), ('blessing', blessing)],
                max_nll=95.0, nll_tolerance=0.01)  # fmt: skip
    destination = str(tmp / 'serving' / '1700000000')
    os.makedirs(destination)
    pushed = s.artifact('PushedModel', f'{root}/Pusher/pushed_model/8', pushed=1,
                        pushed_destination=destination, pushed_version='1700000000')  # fmt: skip
    s.execution(RUN, 'Pusher', STATE.COMPLETE, [('model', model), ('model_blessing', blessing)],
                [('pushed_model', pushed)])  # fmt: skip
    writing = s.execution(
        RUN, 'RunReport', STATE.RUNNING, [('pushed_model', pushed), ('examples', examples)]
    )
    return s, writing, destination, report


@pytest.fixture(scope='module')
def failed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('failed')
    s = Store(str(tmp / 'metadata.sqlite'))
    s.execution(RUN, 'ImageExampleGen', STATE.FAILED, input_base='/data/mnist')
    return s


def cli(capsys, store, *argv):
    inspect_mlmd.main(['report', *argv, '--metadata_path', store.path, '--json'])
    return json.loads(capsys.readouterr().out)


def parse_png(uri: str) -> Image.Image:
    assert uri.startswith('data:image/png;base64,')
    return Image.open(io.BytesIO(base64.b64decode(uri.split(',', 1)[1])))


# --- the report --------------------------------------------------------------------------------


def test_report_shows_the_metrics_beside_the_baseline_and_thresholds(blessed, capsys, tmp_path):
    store, _, _, report = blessed
    written = cli(capsys, store, RUN, '--output', str(tmp_path / 'r.html'))
    assert written == {'run': RUN, 'pipeline': PIPELINE, 'report': str(tmp_path / 'r.html')}
    shown = Page((tmp_path / 'r.html').read_text())
    measured = ('nll_nats', 'nll_bits_per_dim', 'fid_mnist_classifier',
                'precision_mnist_classifier', 'recall_mnist_classifier')  # fmt: skip
    assert {k for k, role in shown.metrics if role == 'candidate'} == set(measured)
    for key in measured:
        for role, source in (
            ('candidate', report['metrics']),
            ('baseline', report['baseline_metrics']),
        ):
            assert float(shown.metrics[key, role]) == pytest.approx(source[key], abs=5e-5)
    text = shown.all_text
    assert 'Blessed and pushed to' in text
    assert 'baseline (model 1)' in text and '≤ 95.0' in text  # the baseline's id, max_nll
    assert '-1.2654 (-1.4%)' in text  # nll_nats against the baseline
    # The rule applied, its settings and the best blessed values on record.
    assert 'Rule: every metric finite; nll_nats within 1%.' in text
    assert 'Best blessed values' in text and '90.125' in text
    assert 'nll_tolerance' in text and 'bless_without_baseline' in text
    # The protocol, not among the metrics: how they were measured.
    for key in ('eval_protocol', 'num_iw_samples', 'precision_recall_k'):
        assert key in text and (key, 'candidate') not in shown.metrics


def test_report_is_self_contained_and_shows_every_image(blessed, capsys, tmp_path):
    store = blessed[0]
    path = cli(capsys, store, '--output', str(tmp_path / 'r.html'))['report']  # the newest run
    text = open(path).read()
    shown = Page(text)
    assert shown.scripts == 0
    assert all(u.startswith(('data:', '#')) for u in shown.urls), shown.urls
    grids = {i['alt']: parse_png(i['src']) for i in shown.images}
    # Every PNG of the Evaluator's directory, the unknown one under its file name; the curves.
    for name, (rows, columns) in PNGS.items():
        caption = page.IMAGE_CAPTIONS.get(name, name[:-4].replace('_', ' '))
        assert grids[caption].size == (columns * 6 + 2, rows * 6 + 2)
    assert 'Per-epoch averages (TensorBoard logs)' in grids
    svg = ET.fromstring(text[text.index('<svg') : text.index('</svg>') + 6])
    assert svg.tag == '{http://www.w3.org/2000/svg}svg'


def test_report_sections_read_the_artifacts_files(blessed, capsys, tmp_path):
    store = blessed[0]
    shown = Page(open(cli(capsys, store, '--output', str(tmp_path / 'r.html'))['report']).read())
    text = shown.all_text
    # Data: counts, fingerprint, statistics per split, anomalies.
    assert 'Statistics: train' in text and 'Statistics: eval' in text
    assert 'image_raw STRING 20 0 19' in text and 'label INT 20 0 4.5000' in text
    assert 'split:train,num_files:1' in text and 'None in any split.' in text
    # Training: the summary; configuration: the execution properties, JSON pretty-printed.
    assert 'steps 12' in text and '"preset": "tiny"' in text
    # Components: states, the writer of the report marked.
    assert 'Transform CACHED' in text and 'RunReport writing' not in text


def test_report_of_a_failed_run_says_what_failed(failed, capsys, tmp_path):
    run = record.from_store(
        failed.store, failed.store.get_context_by_type_and_name('pipeline_run', RUN), ''
    )
    assert [e.node for e in run.failed] == ['ImageExampleGen'] and run.failed[0].error == ''
    message = '/data/mnist/train-labels-idx1-ubyte: label 12 out of range 0-9'
    context = failed.store.get_context_by_type_and_name('pipeline_run', RUN)
    assert [e.id for e in record.record_failure(failed.store, context, message)] == [1]
    assert record.record_failure(failed.store, context, 'another') == []  # recorded once
    result = cli(capsys, failed)
    assert result['report'] == writer.default_path(failed.path, RUN)
    text = Page(open(result['report']).read()).all_text
    assert f'Run failed at ImageExampleGen (execution 1): {message}' in text
    assert 'Components that need its outputs did not run.' in text
    assert 'Evaluation' not in text and 'FAILED' in text


def test_unknown_run_is_one_error_line(failed, capsys):
    with pytest.raises(SystemExit, match=f"{failed.path}: no run 'nope'; runs: {RUN}"):
        cli(capsys, failed, 'nope')


def test_lineage_runs_down_from_the_data_to_the_push(blessed):
    store, writing, *_ = blessed
    run = record.from_store(store.store, record.run_of_execution(store.store, writing), '')
    svg = ET.fromstring(lineage.svg(run))
    ns = {'s': 'http://www.w3.org/2000/svg'}
    tops = {}
    for group in svg.findall('s:g', ns):
        tops[group.get('class'), int(group.get('data-id'))] = float(
            group.find('s:rect', ns).get('y')
        )
    execution = {e.node: e.id for e in run.executions}
    artifact = {a.type + a.uri.rsplit('/', 2)[-2]: a.id for a in run.artifacts.values()}
    chain = [('artifact', artifact['Examplesexamples']), ('execution', execution['Transform']),
             ('artifact', artifact['Modelmodel']), ('execution', execution['GenerativeEvaluator']),
             ('artifact', artifact['ModelBlessingblessing']), ('execution', execution['Pusher']),
             ('artifact', artifact['PushedModelpushed_model'])]  # fmt: skip
    assert [tops[node] for node in chain] == sorted(tops[node] for node in chain)
    assert len({tops[node] for node in chain}) == len(chain)
    # The baseline, an earlier run's model, sits just above the Evaluator that read it.
    baseline = [a for a in run.artifacts.values() if a.producer_execution == 1][0]
    assert tops['artifact', baseline.id] < tops['execution', execution['GenerativeEvaluator']]
    assert 'in an earlier run' in lineage.svg(run)
    # An edge per event, but the report's reading of the Examples, which others read too.
    events = sum(
        len(ids) for e in run.executions for ids in [*e.inputs.values(), *e.outputs.values()]
    )
    assert len(svg.findall('s:path', ns)) == events - 1


# --- the component and the model card ----------------------------------------------------------


def test_executor_writes_the_report_as_the_artifact_and_the_card_beside_the_push(blessed, tmp_path):
    store, writing, destination, report = blessed
    output = HtmlReport()
    output.uri = str(tmp_path / 'report')
    os.makedirs(output.uri)  # as the runner makes it
    context = base_executor.BaseExecutor.Context(tmp_dir=str(tmp_path), unique_id=str(writing))
    report_executor.Executor(context).Do(
        {}, {'report': [output]},
        {'metadata_connection_config': json_format.MessageToJson(store.config)},
    )  # fmt: skip
    assert output.uri == str(tmp_path / 'report' / 'report.html')
    assert output.get_string_custom_property('display_name') == 'run report'
    text = Page(open(output.uri).read()).all_text
    assert 'RunReport writing this report' in text
    assert f'model card {destination}/model_card.html' in text
    card = open(f'{destination}/model_card.md').read()
    for key, value in report['metrics'].items():
        if page.is_metric(key, value):
            assert f'| {key} | {page.number(value)} | {page.number(BASELINE[key])} |' in card
    assert '| eval_protocol | quick |' in card and 'split:train,num_files:1' in card
    assert 'preset `tiny` with num_latent_scales=1' in card and 'Trained for 12 steps' in card
    assert '| Model | 6 | Trainer (execution ' in card and f'run `{RUN}`' in card
    assert 'mnist from source `idx` in `/data/mnist`' in card
    assert Image.open(f'{destination}/{model_card.SAMPLES}').size == (6 * 6 + 2, 4 * 6 + 2)
    card_page = Page(open(f'{destination}/model_card.html').read())
    assert card_page.scripts == 0 and [i['alt'] for i in card_page.images] == [
        'samples at temperature 1.0'
    ]


def test_report_without_a_store_reads_the_components_inputs(blessed, tmp_path):
    """Kubeflow: the pipeline's structure and the input artifacts, no ML Metadata."""
    from components.run_report import component
    from nvae_tfx.options import EvaluationOptions, SourceOptions, TrainingOptions
    from pipeline import nvae_pipeline
    from tests.support.pipeline_helpers import run_spec

    pipeline = nvae_pipeline.create_pipeline(
        run_spec(
            tmp_path, SourceOptions(), PIPELINE,
            training=TrainingOptions(preset='tiny', train_steps=12),
            evaluation=EvaluationOptions(max_nll=95.0),
        )
    )  # fmt: skip
    [node] = [c for c in pipeline.components if c.id == 'RunReport']
    structure = json.loads(node.exec_properties['pipeline_structure'])
    assert node.exec_properties['metadata_connection_config'] is None
    assert structure['nodes']['RunReport']['inputs']['pushed_model'] == ['Pusher', 'pushed_model']
    assert structure['nodes']['GenerativeEvaluator']['properties']['max_nll'] == 95.0
    store = blessed[0].store
    inputs = {}
    for key, spec in {**component.DATA_INPUTS, **component.MODEL_INPUTS}.items():
        found = [a for a in store.get_artifacts() if a.uri.split('/')[-3:-1] == [spec[1], spec[2]]]
        if found:
            artifact = spec[0]()
            artifact.set_mlmd_artifact(found[-1])  # the newest: the candidate, not the baseline
            inputs[key] = [artifact]
    output = HtmlReport()
    output.uri = str(tmp_path / 'report')
    context = base_executor.BaseExecutor.Context(tmp_dir=str(tmp_path), unique_id='task-7')
    report_executor.Executor(context).Do(
        inputs, {'report': [output]},
        {'pipeline_structure': node.exec_properties['pipeline_structure']},
    )  # fmt: skip
    shown = Page(open(output.uri).read())
    assert float(shown.metrics['nll_nats', 'candidate']) == pytest.approx(
        METRICS['nll_nats'], abs=5e-5
    )
    assert (
        'run task task-7' in shown.all_text and 'no ML Metadata store reachable' in shown.all_text
    )
    assert '95.0' in shown.all_text  # the threshold, from the compiled pipeline's properties


def test_standard_artifact_types_stay_untouched():
    assert HtmlReport.TYPE_NAME == 'system.HTML'
    import system

    assert system.HTML is HtmlReport
    assert standard_artifacts.Model.TYPE_NAME == 'Model'
