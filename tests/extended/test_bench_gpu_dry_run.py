"""bench/bench_gpu.py's JAX side for real, in the dry run on the CPU."""

import json
import subprocess
import sys

from model_code.config import get_config


def test_dry_run_times_the_jax_side_on_the_cpu(tmp_path):
    """The JAX side for real (tiny preset, batch 2, compiled by XLA for the CPU): minutes on 2
    cores, so outside make test."""
    results = tmp_path / 'results.jsonl'
    run = subprocess.run(
        [
            sys.executable,
            '-m',
            'bench.bench_gpu',
            '--dry-run',
            '--precisions=float32',
            '--budget-s=1200',
            f'--results={results}',
        ],
        capture_output=True,
        text=True,
        timeout=1300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (record,) = [json.loads(line) for line in results.read_text().splitlines()]
    (timed,) = record['runs']
    assert record['dry_run'] and (timed['preset'], timed['batch_size']) == ('tiny', 2)
    result = timed['result']
    assert result['versions']['jax'] and result['device'] == 'cpu'
    assert result['parameters'] == timed['prepared']['parameters'] > 0
    assert len(result['step_s']) == 2 and result['median_step_s'] > 0 and timed['finite_losses']
    assert result['xla_gflops_per_step'] > 0
    assert record['projections'][0]['steps'] == get_config('tiny').total_steps
