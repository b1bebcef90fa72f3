"""The training variants side by side: the default run (the `cpu` preset on the embedded digits,
as `make run`) once per variant, each with its own pipeline root, ML Metadata store and serving
directory, and the Evaluator's metrics and sample grid of each.

  python -m bench.bench_variants                              # every variant, one after another
  python -m bench.bench_variants --variants default,spectral_norm
  python -m bench.bench_variants -- --preset=tiny --train_steps=20   # other run_local flags

Each run appends a record to bench/results.jsonl: machine, the load average while it ran (sampled
every 30 s), the command, the code's commit, wall time and metrics.json's metrics. With no
run_local flags after `--` (the documented configuration), docs/variants.md's table is rewritten
from the latest such record of each variant, and the grids of the runs just made are copied to
docs/variants/.
"""

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import threading
import time

from bench import machine
from pipeline import cli, configs

WORK_DIR = os.path.join(configs.OUTPUT_ROOT, 'bench', 'variants')
DOCS_PAGE = os.path.join(configs.PROJECT_ROOT, 'docs', 'variants.md')
DOCS_IMAGES = os.path.join(configs.PROJECT_ROOT, 'docs', 'variants')
BENCHMARK = 'training_variants'
TABLE_START, TABLE_END = '<!-- variants table: bench/bench_variants.py -->', '<!-- end -->'

# name -> the model settings it changes (model_code/config.py); 'default' is NVAE's.
VARIANTS = {
    'default': {},
    'spectral_norm': {'normalization': 'spectral_norm'},
    'kl_warmup_epoch': {'kl_warmup': 'epoch'},
    'spectral_norm+kl_warmup_epoch': {'normalization': 'spectral_norm', 'kl_warmup': 'epoch'},
}


class LoadSampler:
    """The 1-minute load average every `interval` seconds while a run lasts."""

    def __init__(self, interval=30.0):
        self._interval, self._samples = interval, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self):
        while True:
            self._samples.append(os.getloadavg()[0])
            if self._stop.wait(self._interval):
                return

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict:
        s = self._samples
        return {'mean': round(sum(s) / len(s), 2), 'max': round(max(s), 2), 'samples': len(s)}


def commit() -> str:
    """The checkout's commit, '+dirty' when tracked files differ from it."""

    def git(*args):
        return subprocess.run(
            ['git', *args], cwd=configs.PROJECT_ROOT, capture_output=True, text=True
        ).stdout.strip()

    dirty = git('status', '--porcelain', '--untracked-files=no')
    return git('rev-parse', '--short', 'HEAD') + ('+dirty' if dirty else '')


def run_variant(name: str, run_local_args: list[str]) -> dict:
    """Runs the pipeline for one variant from scratch; returns its results record."""
    out = os.path.join(WORK_DIR, name)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    sets = [a for key, value in VARIANTS[name].items() for a in ('--set', f'{key}={value}')]
    command = [
        sys.executable, '-m', 'pipeline.run_local',
        f'--pipeline_root={out}/root', f'--metadata_path={out}/metadata.sqlite',
        f'--serving_dir={out}/serving', *sets, *run_local_args,
    ]  # fmt: skip
    print(f'{name}: running (log: {out}/run.log)', flush=True)
    start = time.perf_counter()
    with LoadSampler() as load, open(os.path.join(out, 'run.log'), 'w') as log:
        result = subprocess.run(
            command,
            cwd=configs.PROJECT_ROOT,
            stdout=log,
            stderr=log,
            env={**os.environ, 'PYTHONUNBUFFERED': '1'},  # the log follows the run
        )
    wall_s = time.perf_counter() - start
    if result.returncode:
        sys.exit(f'error: the {name} run failed (exit {result.returncode}); see {out}/run.log')
    [evaluation] = glob.glob(f'{out}/root/GenerativeEvaluator/evaluation/*/')
    with open(os.path.join(evaluation, 'metrics.json')) as f:
        metrics = json.load(f)['metrics']
    record = machine.append_result(
        {
            'benchmark': BENCHMARK,
            'variant': name,
            'settings': VARIANTS[name],
            'run_local_args': run_local_args,
            'command': ' '.join(command[1:]),
            'commit': commit(),
            'wall_s': round(wall_s, 1),
            'load_average_during_run': load.summary(),
            'metrics': metrics,
            'samples_png': os.path.join(evaluation, 'samples.png'),
        }
    )
    print(
        f'{name}: {wall_s / 60:.1f} min (load {record["load_average_during_run"]["mean"]}); '
        f'NLL {metrics["nll_nats"]:.2f} nats, FID {metrics.get("fid_mnist_classifier")}',
        flush=True,
    )
    return record


def latest_records() -> dict[str, dict]:
    """The latest results record of each variant run in the documented configuration."""
    latest = {}
    with open(machine.RESULTS_FILE) as f:
        for line in f:
            record = json.loads(line)
            if record.get('benchmark') == BENCHMARK and not record['run_local_args']:
                latest[record['variant']] = record
    return {name: latest[name] for name in VARIANTS if name in latest}


def _settings(settings: dict) -> str:
    return ' '.join(f'`--set {k}={v}`' for k, v in settings.items()) or '(none: NVAE)'


def table(records: dict[str, dict]) -> str:
    """The Markdown table, its measurement protocol and the grids."""
    rows = [
        '| variant | settings | NLL (nats) | bits/dim | −ELBO (nats) | FID | precision | '
        'recall | run (min) | load avg | commit |',
        '|---|---|---|---|---|---|---|---|---|---|---|',
    ]
    for name, r in records.items():
        m = r['metrics']
        rows.append(
            f'| {name} | {_settings(r["settings"])} | {m["nll_nats"]:.2f} | '
            f'{m["nll_bits_per_dim"]:.4f} | {m["neg_elbo_nats"]:.2f} | '
            f'{m["fid_mnist_classifier"]:.2f} | {m["precision_mnist_classifier"]:.3f} | '
            f'{m["recall_mnist_classifier"]:.3f} | {r["wall_s"] / 60:.1f} | '
            f'{r["load_average_during_run"]["mean"]} | {r["commit"]} |'
        )
    first = next(iter(records.values()))
    m, host = first['metrics'], first['machine']
    protocol = (
        f'Measured by the Evaluator ({m["eval_protocol"]} protocol): NLL is the importance-'
        f'weighted bound with K={m["num_iw_samples"]} on {m["num_eval_examples"]} '
        f'{m["eval_split"]} digits (binarized once, seed {m["binarization_seed"]}); FID and '
        f'precision/recall (k={m["precision_recall_k"]}) of {m["fid_num_samples"]} generated '
        f'mean images at temperature {m["sample_temperature"]} against '
        f'{m["fid_reference_examples"]} real {m["fid_reference_split"]} digits, on the '
        f"pipeline's digit classifier's features (each run trains its own). Machine: "
        f'{host["cpu"]}, {host["cores"]} cores; "load avg" is the mean 1-minute load average '
        f'during the run (other work shared the machine where it exceeds the cores), which '
        f'changes the run time, not the metrics. Command: `python -m '
        f'bench.bench_variants` (each run: `{_redacted(first["command"])}` with its `--set`s).'
    )
    grids = [
        '| ' + ' | '.join(records) + ' |',
        '|' + '---|' * len(records),
        '| '
        + ' | '.join(f'<img src="variants/{name}.png" width="200">' for name in records)
        + ' |',
    ]
    caption = (
        "Each run's `samples.png`: 100 samples at temperature 1.0 (Bernoulli means) after "
        'BatchNorm readjustment, as the Evaluator draws them.'
    )
    return '\n'.join([*rows, '', protocol, '', *grids, '', caption])


def _redacted(command: str) -> str:
    """The run_local command without this machine's paths and the variant's own settings."""
    parts = command.split()
    keep, skip = [], False
    for part in parts:
        if skip:
            skip = False
            continue
        if part == '--set':
            skip = True
            continue
        keep.append(part.split('=')[0] + '=...' if part.startswith('--') and '/' in part else part)
    return ' '.join(['python', *keep])


def write_docs(records: dict[str, dict], ran: list[dict]) -> None:
    os.makedirs(DOCS_IMAGES, exist_ok=True)
    for record in ran:
        shutil.copyfile(
            record['samples_png'], os.path.join(DOCS_IMAGES, f'{record["variant"]}.png')
        )
    with open(DOCS_PAGE) as f:
        page = f.read()
    head, rest = page.split(TABLE_START, 1)
    _, tail = rest.split(TABLE_END, 1)
    with open(DOCS_PAGE, 'w') as f:
        f.write(f'{head}{TABLE_START}\n{table(records)}\n{TABLE_END}{tail}')
    print(f'wrote {DOCS_PAGE} ({len(records)} variants) and {DOCS_IMAGES}/')


def main():
    own, run_local_args = cli.split_beam_args(sys.argv[1:])
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument('--variants', default=','.join(VARIANTS), help=f'of {", ".join(VARIANTS)}')
    args = p.parse_args(own)
    names = args.variants.split(',')
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        p.error(f'unknown variants {unknown}; choose from {list(VARIANTS)}')
    run_local_args = run_local_args or []
    ran = [run_variant(name, run_local_args) for name in names]
    if not run_local_args:
        write_docs(latest_records(), ran)


if __name__ == '__main__':
    main()
