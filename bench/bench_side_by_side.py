"""Training-step throughput of several implementations, interleaved step by step on one machine.

Each side runs in its own process, builds its model on the same synthetic batch recipe as
bench/bench_train_step.py, warms up, and then the sides take turns: round r runs one training
step of every side, in an order that rotates each round. Load from other work therefore falls
on all sides alike, which is what makes ratios on a shared machine fair. Sides:

  --ours 'PATH [VAR=VALUE ...]'
                       this project's model as the Trainer builds it (nvae_tfx.training.loop),
                       imported from the checkout at PATH, with these environment variables
                       (e.g. TF_NUM_INTEROP_THREADS=1); repeat to compare checkouts or settings;
  --official ...       the official PyTorch NVAE (NVlabs/NVAE) through the shared timing module
                       (official_nvae.py, beside bench_official.py; its README says how to set
                       up the source and a Python with torch, outside this repository).

Reports, per side, the median, lower-quartile and fastest wall seconds per step, median CPU
seconds and images/s, and for every side after the first the median of its per-round speed
ratios against the first and the ratio of the fastest steps (the least disturbed by other work:
PyTorch's OpenMP threads slow down far more than TensorFlow's when the cores are shared);
appends the result, with the load average of every round, to bench/results.jsonl.

    python -m bench.bench_side_by_side --preset cpu --batch-size 64 --rounds 20 --ours . \\
        --official-python VENV/bin/python --official-dir NVAE_CHECKOUT \\
        --official-timing-dir SHARED/bench
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.machine import append_result

HERE = Path(__file__).resolve().parent


def ours_worker(argv):
    """Worker process for --ours: one Trainer-built training step per line on stdin."""
    parser = argparse.ArgumentParser()
    parser.add_argument('--preset', default='cpu')
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--threads', type=int, default=0)
    parser.add_argument('--warmup', type=int, default=2)
    args = parser.parse_args(argv)
    os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '1')  # see bench_train_step.py
    import keras
    import numpy as np
    import tensorflow as tf

    from model_code.config import get_config
    from nvae_tfx.training.loop import build_model

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    config = get_config(args.preset, total_steps=1000)
    keras.utils.set_random_seed(config.seed)
    model = build_model(config, jit_compile='false')
    rng = np.random.default_rng(0)
    shape = (args.batch_size, config.image_size, config.image_size, config.in_channels)
    x = (rng.random(shape) < 0.15).astype('float32')
    for _ in range(args.warmup):
        model.train_on_batch(x, return_dict=True)
    print(json.dumps({'ready': True, 'parameters': model.num_parameters()}), flush=True)
    for _ in sys.stdin:
        wall, cpu = time.perf_counter(), time.process_time()
        loss = float(model.train_on_batch(x, return_dict=True)['loss'])
        print(
            json.dumps(
                {
                    'wall_s': time.perf_counter() - wall,
                    'cpu_s': time.process_time() - cpu,
                    'loss': loss,
                }
            ),
            flush=True,
        )


class Side:
    def __init__(self, name, command, env=None, cwd=None):
        self.name, self.command, self.env = name, command, env or {}
        self.process = subprocess.Popen(
            command,
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
            env={**os.environ, **self.env},
        )
        self.info = self._read()
        self.steps = []

    def _read(self):
        """The next JSON line of the worker (the official code prints other lines too)."""
        while True:
            line = self.process.stdout.readline()
            if not line:
                self.process.wait()
                raise RuntimeError(
                    f'{self.name} exited ({self.process.returncode}): {" ".join(self.command)}'
                )
            if line.startswith('{'):
                return json.loads(line)

    def step(self):
        self.process.stdin.write('step\n')
        result = self._read()
        self.steps.append(result)
        return result

    def close(self):
        self.process.stdin.close()
        self.process.wait()


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ['ours-worker']:
        return ours_worker(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--preset', default='cpu')
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--rounds', type=int, default=20, help='timed steps of every side')
    parser.add_argument('--threads', type=int, default=os.cpu_count(), help='for every side')
    parser.add_argument(
        '--ours', action='append', default=[], help="'PATH [VAR=VALUE ...]': a checkout"
    )
    parser.add_argument('--official-python', help='Python with torch for the official code')
    parser.add_argument('--official-dir', help='a checkout of NVlabs/NVAE')
    parser.add_argument('--official-timing-dir', help='directory of official_nvae.py')
    parser.add_argument(
        '--official-env',
        default='',
        help="'VAR=VALUE ...' for the official side (e.g. OMP_WAIT_POLICY=PASSIVE)",
    )
    parser.add_argument('--note', default='', help='free text stored with the result')
    parser.add_argument('--no-save', action='store_true', help='print only')
    args = parser.parse_args(argv)
    official = [args.official_python, args.official_dir, args.official_timing_dir]
    if any(official) and not all(official):
        parser.error('the official side needs --official-python, -dir and -timing-dir')
    for path in filter(None, official):
        if not os.path.exists(path):
            parser.error(f'{path}: not found')
    common = ['--preset', args.preset, '--batch-size', str(args.batch_size)]
    common += ['--threads', str(args.threads)]
    commands, envs, cwds = {}, {}, {}
    if all(official):
        commands['official'] = [
            args.official_python,
            str(HERE / 'official_step_worker.py'),
            '--timing-dir',
            args.official_timing_dir,
            '--official-dir',
            args.official_dir,
            *common,
        ]
        envs['official'] = dict(setting.split('=', 1) for setting in args.official_env.split())
    for spec in args.ours:
        repo, *settings = spec.split()
        name = 'ours' if len(args.ours) == 1 else f'ours:{spec}'
        # The worker runs in the checkout, whose packages `python -m` imports from there.
        worker = [sys.executable, '-m', 'bench.bench_side_by_side', 'ours-worker']
        commands[name] = [*worker, *common]
        envs[name] = dict(setting.split('=', 1) for setting in settings)
        cwds[name] = repo
    if len(commands) < 2:
        parser.error('give at least two sides (--ours PATH twice, or --ours and --official-*)')

    sides = []
    try:
        for name, command in commands.items():
            print(f'warming up {name} ...', flush=True)
            sides.append(Side(name, command, envs.get(name), cwds.get(name)))
        loads = []
        for r in range(args.rounds):
            shift = r % len(sides)
            for side in sides[shift:] + sides[:shift]:
                side.step()
            loads.append(round(os.getloadavg()[0], 2))
            print(
                f'round {r + 1}/{args.rounds}: '
                + ', '.join(f'{s.name} {s.steps[-1]["wall_s"]:.3f} s' for s in sides)
                + f' (load {loads[-1]})',
                flush=True,
            )
    finally:
        for side in sides:
            side.close()

    def summary(side):
        walls = sorted(s['wall_s'] for s in side.steps)
        wall = statistics.median(walls)
        return {
            'command': ' '.join(side.command),
            'environment': side.env,
            'info': side.info,
            'median_wall_s': round(wall, 4),
            # The least disturbed steps: other work on the machine only ever adds time.
            'min_wall_s': round(walls[0], 4),
            'lower_quartile_wall_s': round(walls[len(walls) // 4], 4),
            'median_cpu_s': round(statistics.median(s['cpu_s'] for s in side.steps), 4),
            'images_per_s': round(args.batch_size / wall, 2),
            'wall_s': [round(s['wall_s'], 4) for s in side.steps],
            'last_loss': round(side.steps[-1]['loss'], 3),
        }

    base = sides[0]
    result = {
        'benchmark': 'train_step_side_by_side',
        'preset': args.preset,
        'batch_size': args.batch_size,
        'rounds': args.rounds,
        'threads': args.threads,
        'sides': {side.name: summary(side) for side in sides},
        # Speed of each side relative to the first, paired round by round.
        'speed_ratio_vs_' + base.name: {
            side.name: round(
                statistics.median(
                    b['wall_s'] / s['wall_s'] for b, s in zip(base.steps, side.steps, strict=True)
                ),
                3,
            )
            for side in sides[1:]
        },
        'speed_ratio_of_fastest_steps_vs_' + base.name: {
            side.name: round(
                min(s['wall_s'] for s in base.steps) / min(s['wall_s'] for s in side.steps), 3
            )
            for side in sides[1:]
        },
        'load_average_1m_per_round': loads,
        'note': args.note,
    }
    if not args.no_save:
        result = append_result(result)
    printed = {k: v for k, v in result.items() if k != 'sides'}
    printed['images_per_s'] = {n: s['images_per_s'] for n, s in result['sides'].items()}
    print(json.dumps(printed))
    return result


if __name__ == '__main__':
    main()
