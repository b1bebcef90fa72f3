"""bench/bench_gpu.py without a GPU: its arguments, the official commands against the presets,
the orchestration and recording of its sides (stand-in processes that speak the sides'
protocol); tests/extended runs its JAX side for real in the dry run on the CPU."""

import json
import sys

import pytest

from bench import bench_gpu
from bench.official_gpu_worker import OFFICIAL_FLAGS
from model_code.config import get_config

STAND_IN = """
import json, sys, time
behaviour, median, parameters = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
if behaviour == 'slow':
    time.sleep(120)
if behaviour == 'fails':
    sys.stderr.write('Traceback: the stand-in side broke\\n')
    sys.exit(3)
print('a line that is not JSON', flush=True)
print(json.dumps({'ready': True, 'parameters': parameters}), flush=True)
sys.stdin.readline()
print(json.dumps({'parameters': parameters, 'step_s': [median], 'median_step_s': median,
                  'min_step_s': median, 'losses': [1.5], 'peak_memory_mb': 10.0}), flush=True)
"""


def error_of(argv, capsys):
    with pytest.raises(SystemExit):
        bench_gpu.parse_args(argv)
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_bad_arguments_are_refused_in_one_line_naming_the_flag(tmp_path, capsys):
    assert '--runs' in error_of(['--runs=paper_mnist@two', '--sides=ours'], capsys)
    assert '--runs' in error_of(['--runs=paper_cifar@16', '--sides=ours'], capsys)
    assert '--precisions' in error_of(['--precisions=float8', '--sides=ours'], capsys)
    assert '--sides' in error_of(['--sides=theirs'], capsys)
    assert '--steps' in error_of(['--steps=0', '--sides=ours'], capsys)
    assert '--official-dir: required' in error_of([], capsys)
    message = error_of([f'--official-dir={tmp_path}'], capsys)
    assert '--official-dir' in message and 'no train.py' in message
    (tmp_path / 'train.py').write_text('')
    message = error_of([f'--official-dir={tmp_path}', '--runs=cpu@64'], capsys)
    assert '--runs: cpu has no official command' in message
    args = bench_gpu.parse_args([f'--official-dir={tmp_path}'])
    assert args.runs == [('paper_mnist', 200), ('paper_celeba64', 16)]
    assert args.sides == ['ours', 'official'] and args.device == 'gpu'


def flags(command):
    """'--name value' and '--switch' items of a command line -> {name: value or True}."""
    items, parsed = command.split(), {}
    for i, item in enumerate(items):
        if item.startswith('--'):
            following = items[i + 1] if i + 1 < len(items) else '--'
            parsed[item[2:]] = True if following.startswith('--') else following
    return parsed


@pytest.mark.parametrize('preset', sorted(OFFICIAL_FLAGS))
def test_official_commands_build_the_presets_models(preset):
    official, config = flags(OFFICIAL_FLAGS[preset]), get_config(preset)
    assert (
        official.pop('dataset')
        == {'mnist': 'mnist', 'celeba': f'celeba_{config.image_size}'}[config.dataset]
    )
    assert official.pop('fast_adamax') is True  # the optimizer; model_code's Adamax is fused
    assert official, preset
    for name, value in official.items():
        ours = getattr(config, name)
        assert (value is True and ours is True) or type(ours)(value) == ours, name
    # Every architecture switch of the preset is set on the command line too.
    assert {n for n in ('ada_groups', 'use_se', 'res_dist') if getattr(config, n)} <= set(official)


def test_sides_are_prepared_together_timed_in_turn_and_recorded(tmp_path, monkeypatch, capsys):
    behaviours = {
        ('float32', 'ours'): 'times',
        ('float32', 'official'): 'times',
        ('mixed_float16', 'ours'): 'fails',
        ('mixed_float16', 'official'): 'slow',
    }
    medians = {'ours': '0.5', 'official': '0.75'}
    parameters = {'ours': '7', 'official': '9'}  # a model that is not the same: flagged

    def stand_in(args, job):
        behaviour = behaviours[(job['precision'], job['side'])]
        side = job['side']
        return [sys.executable, '-c', STAND_IN, behaviour, medians[side], parameters[side]], {}

    monkeypatch.setattr(bench_gpu, 'side_command', stand_in)
    (tmp_path / 'train.py').write_text('')
    results = tmp_path / 'results.jsonl'
    status = bench_gpu.main(
        [
            f'--official-dir={tmp_path}',
            '--runs=paper_mnist@200',
            '--precisions=float32,mixed_float16',
            '--budget-s=10',
            f'--results={results}',
            f'--log-dir={tmp_path / "logs"}',
        ]
    )
    assert status == 1  # not every side was timed
    (record,) = [json.loads(line) for line in results.read_text().splitlines()]
    assert record['benchmark'] == 'gpu_train_step_side_by_side' and not record['dry_run']
    assert record['machine']['cores'] >= 1 and record['wall_s'] < 10
    runs = {(r['precision'], r['side']): r for r in record['runs']}
    for side, median in (('ours', 0.5), ('official', 0.75)):
        timed = runs[('float32', side)]
        assert timed['result']['median_step_s'] == median and timed['finite_losses']
        assert timed['prepared'] == {'ready': True, 'parameters': int(parameters[side])}
    failed = runs[('mixed_float16', 'ours')]
    assert failed['error'] == 'exited with status 3' and failed['result'] is None
    assert 'the stand-in side broke' in failed['stderr_tail']
    late = runs[('mixed_float16', 'official')]
    assert late['error'].startswith('not ready') and late['prepared'] is None
    # paper_mnist: 60,000 steps of a global batch of 400, two GPUs at 200 each.
    projected = {p['side']: p for p in record['projections']}
    assert set(projected) == {'ours', 'official'}
    assert projected['ours'] == {
        'preset': 'paper_mnist',
        'precision': 'float32',
        'side': 'ours',
        'steps': 60_000,
        'global_batch': 400,
        'gpus': 2,
        'hours_on_gpus': round(60_000 * 0.5 / 3600, 1),
        'hours_on_one_gpu': round(2 * 60_000 * 0.5 / 3600, 1),
    }
    *_, f32, f16, counts = capsys.readouterr().out.strip().splitlines()
    assert counts == 'paper_mnist parameters: ours 7, official 9 (they differ)'
    assert f32.startswith('paper_mnist@200 float32 | 0.500 (400) 10.0 | 0.750 (267) 10.0')
    assert '| 1.50x |' in f32 and f32.endswith('8.3 / 12.5 (2)')
    assert f16.startswith('paper_mnist@200 mixed_float16 | exited with status 3 | not ready')
