"""The run report: one self-contained HTML page (styles inline, images as data: URIs, the
lineage as inline SVG, no script, nothing fetched) written from a record.Run.

Sections: the outcome (what failed, or the blessing and push), each component's state and time,
the metrics beside the baseline's and the thresholds with the protocol they were measured by,
the Evaluator's images, the training curves, the data (examples, statistics and anomalies per
split), the lineage, and the configuration each component ran with.
"""

import base64
import datetime
import html
import json
import math

from components.evaluator.executor import RECONSTRUCTIONS_PNG, SAMPLES_PNG
from nvae_tfx.durations import format_duration
from pipeline.run_report import contents, lineage, plots
from pipeline.run_report.record import Run

EXAMPLE_GEN, EVALUATOR, TRAINER, PUSHER = (
    'ImageExampleGen',
    'GenerativeEvaluator',
    'Trainer',
    'Pusher',
)
# Measured quality in the Evaluator's metrics (the rest of its metrics record how they were
# measured): likelihoods, and FID and precision/recall per feature network.
METRIC_PREFIXES = ('nll_', 'neg_elbo_', 'fid_', 'precision_', 'recall_')
NON_FINITE = ('nan', 'inf', '-inf')  # how the Evaluator writes non-finite numbers
# The Evaluator's blessing settings (nvae_tfx/evaluation/blessing.py).
THRESHOLDS = ('max_nll', 'max_fid', 'nll_tolerance', 'fid_tolerance', 'bless_without_baseline')
# Captions of the Evaluator's images; any other PNG in its directory shows under its file name.
IMAGE_CAPTIONS = {
    SAMPLES_PNG: 'Samples from the prior',
    RECONSTRUCTIONS_PNG: 'Reconstructions: each scored image, then its reconstruction',
}

STYLE = """
body { font: 14px/1.45 -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; color: #222;
       margin: 0 auto; max-width: 1180px; padding: 0 24px 48px; }
h1 { font-size: 24px; margin: 24px 0 4px; }
h2 { font-size: 19px; margin: 32px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
.meta { color: #666; margin: 0 0 12px; } nav a { margin-right: 14px; }
.outcome { padding: 10px 14px; border-radius: 6px; margin: 12px 0; font-size: 15px; }
.ok { background: #e3f4e3; border: 1px solid #9c9; }
.bad { background: #fbe3e3; border: 1px solid #d99; }
.neutral { background: #eef2f8; border: 1px solid #aab8d0; }
table { border-collapse: collapse; margin: 6px 0 12px; } th, td { border: 1px solid #ddd;
        padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f5f5f5; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.state-COMPLETE { color: #176317; } .state-FAILED { color: #b00; font-weight: bold; }
.state-CACHED { color: #2a55a5; } .state-RUNNING { color: #8a6d00; }
figure { display: inline-block; margin: 6px 18px 12px 0; vertical-align: top; }
figure.grid { max-width: calc(50% - 18px); }
figcaption { color: #555; font-size: 13px; }
img { border: 1px solid #ddd; max-width: 100%; }
figure.grid img { image-rendering: pixelated; }
pre { background: #f7f7f7; padding: 6px 8px; margin: 0; font-size: 12px; white-space: pre-wrap;
      word-break: break-all; max-width: 900px; }
.lineage-box { overflow-x: auto; border: 1px solid #eee; padding: 6px; }
.muted { color: #777; } code { font-size: 12px; }
.row { display: flex; flex-wrap: wrap; gap: 0 28px; align-items: flex-start; }
"""


# --- small pieces ------------------------------------------------------------------------------


def _e(value) -> str:
    return html.escape(str(value))


def _time(seconds: float | None, clock_only: bool = False) -> str:
    """UTC; clock_only: the time of day alone (the run's date is in the heading)."""
    if seconds is None:
        return '-'
    moment = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    if clock_only:
        return moment.strftime('%H:%M:%S')
    return moment.isoformat(timespec='seconds').replace('+00:00', ' UTC')


def number(value) -> str:
    """A metric as the report shows it: floats to 4 decimals, non-finite ones by name."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float):
        return f'{value:.4f}' if math.isfinite(value) else str(value)
    return str(value)


def _data_uri(png: bytes) -> str:
    return 'data:image/png;base64,' + base64.b64encode(png).decode()


def _figure(png: bytes, caption: str, css_class: str) -> str:
    return (
        f'<figure class="{css_class}"><img src="{_data_uri(png)}" alt="{_e(caption)}">'
        f'<figcaption>{_e(caption)}</figcaption></figure>'
    )


def _table(header, rows, numeric=()) -> str:
    head = ''.join(f'<th>{_e(h)}</th>' for h in header)
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            cls = ' class="num"' if i in numeric else ''
            cells.append(f'<td{cls}>{cell}</td>')
        body.append('<tr>' + ''.join(cells) + '</tr>')
    return f'<table><tr>{head}</tr>{"".join(body)}</table>'


def _value(value) -> str:
    """An execution property: JSON (text in ML Metadata, data in a compiled pipeline's
    structure) pretty-printed, long text in a block."""
    if isinstance(value, str) and value[:1] in '{[':
        try:
            value = json.loads(value)
        except ValueError:
            pass
    text = (
        json.dumps(value, indent=1, sort_keys=True)
        if isinstance(value, (dict, list))
        else str(value)
    )
    return (
        f'<pre>{_e(text)}</pre>' if '\n' in text or len(text) > 80 else f'<code>{_e(text)}</code>'
    )


def is_metric(key: str, value) -> bool:
    """Whether an entry of the Evaluator's metrics is a measured quality, not the protocol."""
    measured = isinstance(value, float) or value in NON_FINITE
    return key.startswith(METRIC_PREFIXES) and measured and not isinstance(value, bool)


# --- sections ----------------------------------------------------------------------------------


def _outcome(run: Run, evaluation_report: dict | None) -> str:
    if run.failed:
        lines = [
            f'<b>Run failed</b> at {_e(e.node)} (execution {e.id})'
            + (f': <code>{_e(e.error)}</code>' if e.error else ' (no message recorded)')
            for e in run.failed
        ]
        lines.append('Components that need its outputs did not run.')
        return f'<div class="outcome bad" id="outcome">{"<br>".join(lines)}</div>'
    pushed = run.artifact(PUSHER, 'pushed_model')
    if evaluation_report is not None:
        if evaluation_report.get('blessed'):
            text = '<b>Blessed</b>'
            if pushed is not None and pushed.properties.get('pushed') == 1:
                destination = pushed.properties.get('pushed_destination', '')
                text += f' and pushed to <code>{_e(destination)}</code>'
                if contents.exists(destination, contents.MODEL_CARD_HTML):
                    card = f'{destination.rstrip("/")}/{contents.MODEL_CARD_HTML}'
                    text += f'; model card <code>{_e(card)}</code>'
            return f'<div class="outcome ok" id="outcome">{text}.</div>'
        reasons = ''.join(f'<li>{_e(r)}</li>' for r in evaluation_report.get('reasons', []))
        return (
            f'<div class="outcome bad" id="outcome"><b>Not blessed</b>, nothing pushed:'
            f'<ul>{reasons}</ul></div>'
        )
    if run.execution(TRAINER) is None and run.executions:
        text = 'Data ingested, validated and transformed; no model was trained in this run.'
        return f'<div class="outcome neutral" id="outcome">{text}</div>'
    return '<div class="outcome neutral" id="outcome">No evaluation was recorded in this run.</div>'


def _components(run: Run, writing: int | None) -> str:
    rows = []
    for e in run.executions:
        state = 'writing this report' if writing is not None and e.id == writing else e.state
        outputs = '<br>'.join(
            f'{_e(key)}: {_e(run.artifacts[i].type)} {i} <code>{_e(run.artifacts[i].uri)}</code>'
            for key, ids in sorted(e.outputs.items())
            for i in ids
        )
        rows.append(
            [
                _e(e.node),
                f'<span class="state-{_e(e.state)}">{_e(state)}</span>',
                _time(e.started, clock_only=True),
                '-' if e.duration_s is None else _e(format_duration(e.duration_s)),
                _e(e.id or '-'),
                outputs or '<span class="muted">none</span>',
            ]
        )
    table = _table(
        ['component', 'state', 'started (UTC)', 'took', 'execution', 'outputs'], rows, (3, 4)
    )
    return f'<h2 id="components">Components</h2>{table}'


def _evaluation(run: Run, report: dict | None) -> str:
    evaluation = run.artifact(EVALUATOR, 'evaluation')
    if evaluation is None:
        return ''
    parts = ['<h2 id="evaluation">Evaluation</h2>']
    if report is None:
        parts.append(
            f'<p class="muted">No {contents.EVALUATION_REPORT} in {_e(evaluation.uri)}.</p>'
        )
        return ''.join(parts)
    metrics, baseline = report.get('metrics', {}), report.get('baseline_metrics', {})
    execution = run.execution(EVALUATOR)
    settings = execution.properties if execution else {}
    blessing = run.artifact(EVALUATOR, 'blessing')
    baseline_id = blessing.properties.get('baseline_model_id') if blessing else None
    first_fid = next((k for k in metrics if k.startswith('fid_')), None)
    thresholds = {'nll_nats': settings.get('max_nll'), first_fid: settings.get('max_fid')}
    rows = []
    for key, value in metrics.items():
        if not is_metric(key, value):
            continue
        base = baseline.get(key)
        change = ''
        if isinstance(value, float) and isinstance(base, float) and base:
            change = f'{value - base:+.4f} ({(value - base) / abs(base):+.1%})'
        limit = thresholds.get(key)
        rows.append(
            [
                f'<code>{_e(key)}</code>',
                f'<span data-metric="{_e(key)}" data-role="candidate">{_e(number(value))}</span>',
                f'<span data-metric="{_e(key)}" data-role="baseline">{_e(number(base))}</span>'
                if base is not None
                else '<span class="muted">-</span>',
                _e(change),
                _e(f'≤ {limit}') if limit is not None else '<span class="muted">-</span>',
            ]
        )
    baseline_head = f'baseline (model {baseline_id})' if baseline else 'baseline'
    scores = [
        '<h3>Metrics</h3>',
        _table(['metric', 'this model', baseline_head, 'change', 'threshold'], rows, (1, 2, 3)),
    ]
    if not baseline:
        why = report.get('baseline_skipped') or 'no blessed model before this one to compare with'
        scores.append(f'<p class="muted">Baseline: {_e(why)}.</p>')
    if report.get('baseline_readjusted'):
        scores.append(f'<p class="muted">{_e(report["baseline_readjusted"])}.</p>')
    best = (report.get('best_metrics') or {}).get('values', {})
    if best:
        best_rows = [
            [f'<code>{_e(k)}</code>', _e(number(v['value'])), _e(v['model_id'])]
            for k, v in best.items()
        ]
        scores += ['<h4>Best blessed values</h4>', _table(['metric', 'value', 'model'], best_rows)]
    decision = 'blessed' if report.get('blessed') else 'not blessed'
    reasons = ''.join(f'<li>{_e(r)}</li>' for r in report.get('reasons', []))
    blessing_part = [f'<h3>Blessing</h3><p id="blessing">Decision: <b>{decision}</b></p>']
    if reasons:
        blessing_part.append(f'<ul>{reasons}</ul>')
    if report.get('rule'):
        blessing_part.append(f'<p class="muted">Rule: {_e(report["rule"])}.</p>')
    settings_rows = [[f'<code>{t}</code>', _e(settings.get(t, 'none'))] for t in THRESHOLDS]
    blessing_part.append(_table(['setting', 'value'], settings_rows))
    protocol = [
        [f'<code>{_e(k)}</code>', _e(number(v))] for k, v in metrics.items() if not is_metric(k, v)
    ]
    measured = ['<h3>How they were measured</h3>', _table(['protocol', 'value'], protocol)]
    parts.append(
        '<div class="row">'
        + ''.join(f'<div>{"".join(column)}</div>' for column in (scores, blessing_part, measured))
        + '</div>'
    )
    known = list(IMAGE_CAPTIONS)
    figures = [
        _figure(png, IMAGE_CAPTIONS.get(name, name.rsplit('.', 1)[0].replace('_', ' ')), 'grid')
        for name, png in sorted(
            contents.images(evaluation.uri),
            key=lambda item: (known.index(item[0]) if item[0] in known else len(known), item[0]),
        )
    ]
    if figures:
        temperature = metrics.get('sample_temperature')
        note = f' Samples at temperature {temperature}.' if temperature is not None else ''
        parts.append(f'<h3>Images</h3><p class="muted">From {_e(evaluation.uri)}.{note}</p>')
        parts.append(''.join(figures))
    return ''.join(parts)


def _training(run: Run) -> str:
    model_run = run.artifact(TRAINER, 'model_run')
    if model_run is None:
        return ''
    parts = ['<h2 id="training">Training</h2>']
    curves = plots.training_curves(contents.scalars(model_run.uri))
    if curves:
        parts.append(_figure(curves, 'Per-epoch averages (TensorBoard logs)', 'plot'))
    summary = contents.read_json(model_run.uri, contents.TRAINING_SUMMARY)
    if summary:
        facts = [[_e(k), _e(v)] for k, v in summary.items() if k != 'final']
        final = [[_e(k), _e(number(v))] for k, v in sorted(summary.get('final', {}).items())]
        parts.append('<h3>Summary</h3>' + _table(['', ''], facts, (1,)))
        parts.append('<details><summary>Final epoch averages</summary>')
        parts.append(_table(['value', 'last epoch'], final, (1,)) + '</details>')
    elif not curves:
        parts.append(f'<p class="muted">No training logs in {_e(model_run.uri)}.</p>')
    return ''.join(parts)


def _data(run: Run) -> str:
    examples = run.artifact(EXAMPLE_GEN, 'examples')
    if examples is None:
        return ''
    p = examples.properties
    splits = contents.split_names(examples)
    rows = [
        [_e(s), _e(p.get(f'num_examples_{s}', '-')), _e(p.get(f'num_skipped_{s}', '-'))]
        for s in splits
    ]
    parts = [
        '<h2 id="data">Data</h2>',
        f'<p>Examples {examples.id}: <code>{_e(examples.uri)}</code></p>',
        _table(['split', 'examples', 'skipped as unreadable'], rows, (1, 2)),
    ]
    if p.get('input_fingerprint'):
        parts.append(f'<p>Input fingerprint:</p><pre>{_e(p["input_fingerprint"])}</pre>')
    statistics = run.artifact('StatisticsGen', 'statistics')
    if statistics is not None:
        for split, features in contents.statistics(statistics).items():
            rows = [
                [
                    f'<code>{_e(f["feature"])}</code>',
                    _e(f['type']),
                    _e(f.get('present', '-')),
                    _e(f.get('missing', '-')),
                    *(_e(number(f[k])) if k in f else '' for k in ('mean', 'std', 'min', 'max')),
                    _e(f.get('unique', '')),
                ]
                for f in features
            ]
            header = [
                'feature',
                'type',
                'present',
                'missing',
                'mean',
                'std',
                'min',
                'max',
                'unique',
            ]
            parts.append(f'<h3>Statistics: {_e(split)}</h3>' + _table(header, rows, range(2, 9)))
    anomalies = run.artifact('ExampleValidator', 'anomalies')
    if anomalies is not None:
        found = contents.anomalies(anomalies)
        items = ''.join(f'<li><code>{_e(line)}</code></li>' for line in found)
        parts.append(
            '<h3>Anomalies</h3>'
            + (
                f'<ul id="anomalies">{items}</ul>'
                if found
                else '<p id="anomalies">None in any split.</p>'
            )
        )
    return ''.join(parts)


def _lineage(run: Run) -> str:
    drawing = lineage.svg(run)
    if not drawing:
        return ''
    return (
        '<h2 id="lineage">Lineage</h2><p class="muted">Executions (boxes, by state) and the '
        'artifacts they read and wrote; hover for ids and locations.</p>'
        f'<div class="lineage-box">{drawing}</div>'
    )


def _configuration(run: Run) -> str:
    parts = [
        '<h2 id="configuration">Configuration</h2><p class="muted">Each component\'s '
        'execution properties, as recorded.</p>'
    ]
    for e in run.executions:
        if not e.properties:
            continue
        rows = [[f'<code>{_e(k)}</code>', _value(v)] for k, v in sorted(e.properties.items())]
        table = _table(['property', 'value'], rows)
        parts.append(f'<details open><summary>{_e(e.node)}</summary>{table}</details>')
    return ''.join(parts)


def build(run: Run, writing: int | None = None) -> str:
    """The report's HTML. writing: the id of the execution writing it (the RunReport
    component's own, still running)."""
    evaluation = run.artifact(EVALUATOR, 'evaluation')
    report = contents.read_json(evaluation.uri, contents.EVALUATION_REPORT) if evaluation else None
    title = f'{run.pipeline}: run {run.run_id}'
    sections = [
        ('components', 'Components', _components(run, writing)),
        ('evaluation', 'Evaluation', _evaluation(run, report)),
        ('training', 'Training', _training(run)),
        ('data', 'Data', _data(run)),
        ('lineage', 'Lineage', _lineage(run)),
        ('configuration', 'Configuration', _configuration(run)),
    ]
    nav = ''.join(f'<a href="#{anchor}">{name}</a>' for anchor, name, part in sections if part)
    written = datetime.datetime.now(datetime.timezone.utc).timestamp()
    body = [
        f'<h1>{_e(title)}</h1>',
        f'<p class="meta">Started {_time(run.started)}; read from {_e(run.source)}; '
        f'written {_time(written)}.</p>',
        f'<nav>{nav}</nav>',
        _outcome(run, report),
        *(part for _, _, part in sections),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<title>{_e(title)}</title><style>{STYLE}</style></head>'
        f'<body>{"".join(body)}</body></html>\n'
    )
