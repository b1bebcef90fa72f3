"""The model card of a pushed model, written beside the SavedModel in its serving version
directory (model_card.md, model_card.html, and the sample grid the Markdown shows): what the
model is, what it is for and not for, the data it was trained on and that data's fingerprint,
its metrics with the protocol they were measured by, and the lineage ids that lead back to
all of it in ML Metadata.

The content is built once as sections of blocks and rendered to both formats; the HTML is
self-contained (the grid inline), the Markdown refers to the grid file beside it.
"""

import base64
import html
import json

import tensorflow as tf

from components.evaluator.executor import SAMPLES_PNG
from pipeline.run_report import contents, page
from pipeline.run_report.record import Run

MARKDOWN, HTML, SAMPLES = (
    contents.MODEL_CARD_MARKDOWN,
    contents.MODEL_CARD_HTML,
    contents.MODEL_CARD_SAMPLES,
)

# What each dataset's model is for, and where it stops being meaningful.
INTENDED_USE = {
    'mnist': 'Drawing handwritten-digit images, scoring the likelihood of digit images like the '
    'training data (binarized, 32x32 with the digit centred as in MNIST), and reconstructing '
    'them: research on and demonstration of deep hierarchical VAEs.',
    'celeba': 'Drawing aligned face images, scoring the likelihood of images like the training '
    'data (CelebA crops resized to the trained size), and reconstructing them: research on and '
    'demonstration of deep hierarchical VAEs.',
}
LIMITS = {
    'mnist': [
        'Knows only MNIST-style digits: likelihoods of other images are not a validated '
        'out-of-distribution or anomaly test.',
    ],
    'celeba': [
        "Learned from CelebA's celebrity photographs and carries that data set's skews (age, "
        'skin tone, pose, image style); generated faces are not real people.',
        'Not for recognising, verifying or judging people, and not for decisions about them.',
    ],
}
COMMON_LIMITS = [
    'FID and precision/recall use the feature network named in the protocol; they compare '
    'models of this pipeline with each other, not with published numbers.',
    'The numbers hold for the protocol below (images scored, importance samples, temperature); '
    'the quick protocol is not the paper protocol.',
]


def _json_property(run: Run, node: str, name: str) -> dict:
    """A component's JSON-valued execution property (custom_config, train_args): JSON text in
    ML Metadata, a dict in a compiled pipeline's structure; {} where the component did not
    run."""
    execution = run.execution(node)
    value = execution.properties.get(name) if execution else None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


def sections(run: Run) -> list:
    """[(title, [block])]; a block is ('p', text), ('ul', [text]), ('table', header, rows) or
    ('img', png bytes, alt text)."""
    training = _json_property(run, page.TRAINER, 'custom_config')
    steps = _json_property(run, page.TRAINER, 'train_args').get('num_steps', '?')
    # ExampleGen's custom_config is a CustomConfig message wrapping the options as a Struct.
    source = _json_property(run, page.EXAMPLE_GEN, 'custom_config')
    source = source.get('custom_config', {}).get('value', {})
    model = run.artifact(page.TRAINER, 'model')
    pushed = run.artifact(page.PUSHER, 'pushed_model')
    examples = run.artifact(page.EXAMPLE_GEN, 'examples')
    evaluation = run.artifact(page.EVALUATOR, 'evaluation')
    blessing = run.artifact(page.EVALUATOR, 'blessing')
    report = contents.read_json(evaluation.uri, contents.EVALUATION_REPORT) if evaluation else {}
    report = report or {}
    dataset = training.get('dataset') or source.get('dataset', '')
    names = ('preset', 'batch_size', 'steps_per_epoch', 'mixed_precision')
    setting = {k: training.get(k, '?') for k in names}
    overrides = ', '.join(f'{k}={v}' for k, v in sorted((training.get('overrides') or {}).items()))
    details = [
        f'NVAE (Vahdat & Kautz 2020), a deep hierarchical variational autoencoder of {dataset} '
        f'images: preset `{setting["preset"]}`' + (f' with {overrides}.' if overrides else '.'),
        f'Trained for {steps} steps of {setting["batch_size"]} images '
        f'({setting["steps_per_epoch"]} per epoch) in {setting["mixed_precision"]} precision.',
    ]
    if pushed is not None:
        details.append(
            f'Pushed to `{pushed.properties.get("pushed_destination")}` (version '
            f'{pushed.properties.get("pushed_version")}), a SavedModel with the signatures '
            '`sample`, `reconstruct`, `log_likelihood` and `log_likelihood_images`.'
        )
    result = [('Model details', [('ul', details)])]
    result.append(
        ('Intended use and limits', [
            ('p', INTENDED_USE.get(dataset, '')),
            ('ul', LIMITS.get(dataset, []) + COMMON_LIMITS),
        ])
    )  # fmt: skip
    if examples is not None:
        splits = contents.split_names(examples)
        counts = ', '.join(
            f'{s} {examples.properties.get(f"num_examples_{s}", "?")}' for s in splits
        )
        result.append(
            ('Training data', [
                ('ul', [
                    f'{dataset} from source `{source.get("source", "?")}`'
                    + (f' in `{source["data_dir"]}`' if source.get('data_dir') else '')
                    + f'; examples per split: {counts}.',
                    f'Examples artifact {examples.id}: `{examples.uri}`.',
                ]),
                ('p', 'Input fingerprint (ExampleGen: files, bytes and checksums per split):'),
                ('pre', examples.properties.get('input_fingerprint', 'not recorded')),
            ])
        )  # fmt: skip
    metrics = report.get('metrics', {})
    baseline = report.get('baseline_metrics', {})
    rows = [
        [k, page.number(v), page.number(baseline[k]) if k in baseline else '-']
        for k, v in metrics.items()
        if page.is_metric(k, v)
    ]
    protocol = [[k, page.number(v)] for k, v in metrics.items() if not page.is_metric(k, v)]
    if rows:
        decision = (
            'blessed'
            if report.get('blessed')
            else 'not blessed: ' + '; '.join(report.get('reasons', []))
        )
        result.append(
            ('Metrics', [
                ('table', ['metric', 'this model', 'baseline'], rows),
                ('p', f'Decision: {decision}.'),
                ('table', ['protocol', 'value'], protocol),
            ])
        )  # fmt: skip
    lineage = [
        examples,
        run.artifact('Transform', 'transformed_examples'),
        model,
        evaluation,
        blessing,
        pushed,
    ]
    rows = [
        [
            a.type,
            str(a.id),
            a.producer + (f' (execution {a.producer_execution})' if a.producer_execution else ''),
        ]
        for a in lineage
        if a is not None
    ]
    result.append(
        ('Lineage', [
            ('p', f'Pipeline {run.pipeline}, run `{run.run_id}`; ML Metadata ids:'),
            ('table', ['artifact', 'id', 'written by'], rows),
        ])
    )  # fmt: skip
    samples = dict(contents.images(evaluation.uri)).get(SAMPLES_PNG) if evaluation else None
    if samples:
        temperature = metrics.get('sample_temperature', '?')
        result.append(('Samples', [('img', samples, f'samples at temperature {temperature}')]))
    return result


def markdown(title: str, content: list) -> str:
    lines = [f'# {title}', '']
    for heading, blocks in content:
        lines += [f'## {heading}', '']
        for block in blocks:
            kind = block[0]
            if kind == 'p':
                lines += [block[1], '']
            elif kind == 'ul':
                lines += [f'- {item}' for item in block[1]] + ['']
            elif kind == 'pre':
                lines += ['```', block[1], '```', '']
            elif kind == 'table':
                header, rows = block[1], block[2]
                lines.append('| ' + ' | '.join(header) + ' |')
                lines.append('|' + '---|' * len(header))
                lines += ['| ' + ' | '.join(row) + ' |' for row in rows] + ['']
            elif kind == 'img':
                lines += [f'![{block[2]}]({SAMPLES})', '']
    return '\n'.join(lines)


def _inline(text: str) -> str:
    """Markdown's `code` spans as <code>, the rest escaped."""
    parts = html.escape(text).split('`')
    return ''.join(f'<code>{p}</code>' if i % 2 else p for i, p in enumerate(parts))


def html_page(title: str, content: list) -> str:
    body = [f'<h1>{html.escape(title)}</h1>']
    for heading, blocks in content:
        body.append(f'<h2>{html.escape(heading)}</h2>')
        for block in blocks:
            kind = block[0]
            if kind == 'p':
                body.append(f'<p>{_inline(block[1])}</p>')
            elif kind == 'ul':
                body.append('<ul>' + ''.join(f'<li>{_inline(i)}</li>' for i in block[1]) + '</ul>')
            elif kind == 'pre':
                body.append(f'<pre>{html.escape(block[1])}</pre>')
            elif kind == 'table':
                head = ''.join(f'<th>{html.escape(h)}</th>' for h in block[1])
                rows = ''.join(
                    '<tr>' + ''.join(f'<td>{html.escape(c)}</td>' for c in row) + '</tr>'
                    for row in block[2]
                )
                body.append(f'<table><tr>{head}</tr>{rows}</table>')
            elif kind == 'img':
                data = base64.b64encode(block[1]).decode()
                alt = html.escape(block[2])
                body.append(
                    f'<figure><img src="data:image/png;base64,{data}" alt="{alt}">'
                    f'<figcaption>{alt}</figcaption></figure>'
                )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<title>{html.escape(title)}</title><style>{page.STYLE}</style></head>'
        f'<body>{"".join(body)}</body></html>\n'
    )


def write(run: Run, directory: str) -> str:
    """Writes the card of the run's pushed model into directory; returns the HTML card's path."""
    model = run.artifact(page.TRAINER, 'model')
    title = f'Model card: {run.pipeline} model {model.id if model else "?"}'
    content = sections(run)
    base = directory.rstrip('/')
    with tf.io.gfile.GFile(f'{base}/{MARKDOWN}', 'w') as f:
        f.write(markdown(title, content))
    with tf.io.gfile.GFile(f'{base}/{HTML}', 'w') as f:
        f.write(html_page(title, content))
    for block in (b for _, blocks in content for b in blocks if b[0] == 'img'):
        with tf.io.gfile.GFile(f'{base}/{SAMPLES}', 'wb') as f:
            f.write(block[1])
    return f'{base}/{HTML}'
