"""The paper presets' training step on one GPU: this code under KERAS_BACKEND=jax against the
official PyTorch NVAE, in float32 and mixed precision, with peak GPU memory, in one run; and the
paper runs' wall time projected from the measured steps.

Every side runs in its own process. All of them prepare at once (this code: the model built on
the CPU and its XLA train step compiled for the GPU; the official code: its model built on the
CPU), then they are timed one at a time with nothing else running: warm-up steps, then timed
steps, each waited for (this code's step is the jitted train_step that Keras' JAX trainer runs,
on data already on the GPU; the official ones are its train.py's train() over the same batch
each step, bench/official_gpu_worker.py). A side not ready within the preparation share of
--budget-s, or not finished by the budget, is recorded as such. The result goes to
bench/results.jsonl with the machine and GPU, and a table with the projections ends the
output.

    python -m bench.bench_gpu --official-dir NVAE_CHECKOUT            # on a GPU machine
    python -m bench.bench_gpu --dry-run                               # the JAX side, tiny, CPU

docs/gpu.md says how to run it on a lent GPU machine (bench/gpu_run.sh).
"""

import argparse
import json
import math
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

from model_code.config import PRECISIONS, PRESETS, get_config  # noqa: E402

DEFAULT_RUNS = 'paper_mnist@200,paper_celeba64@16'  # the official per-GPU batches
SIDES = ('ours', 'official')
PREPARE_SHARE = 0.6  # of the budget, for building and compiling every side at once


def synthetic_batch(config, batch_size):
    """bench_train_step.py's recipe, NHWC: binary digits, or colour images of 8-bit levels."""
    import numpy as np

    rng = np.random.default_rng(0)
    shape = (batch_size, config.image_size, config.image_size, config.in_channels)
    if config.dataset == 'mnist':
        return (rng.random(shape) < 0.15).astype('float32')
    return np.round(rng.random(shape) * 255.0).astype('float32') / 255.0


def xla_flops(compiled):
    """XLA's count of the compiled step's floating-point operations, where it gives one."""
    analysis = compiled.cost_analysis()
    if isinstance(analysis, list):  # older JAX: one dict per computation
        analysis = analysis[0] if analysis else {}
    flops = (analysis or {}).get('flops')
    return None if flops is None else float(flops)


def ours_worker(argv):
    """This code's side: the jitted train_step of Keras' JAX trainer, timed step by step."""
    parser = argparse.ArgumentParser()
    parser.add_argument('--preset', required=True)
    parser.add_argument('--batch-size', type=int, required=True)
    parser.add_argument('--precision', required=True)
    parser.add_argument('--steps', type=int, required=True)
    parser.add_argument('--warmup', type=int, required=True)
    parser.add_argument('--device', choices=('gpu', 'cpu'), required=True)
    args = parser.parse_args(argv)
    import jax
    import keras

    from model_code.nvae import NVAE
    from model_code.optim import make_optimizer

    if keras.backend.backend() != 'jax':
        raise SystemExit('ours-worker runs under KERAS_BACKEND=jax')
    cpu = jax.devices('cpu')[0]
    try:
        target = jax.devices(args.device)[0]
    except RuntimeError as e:
        print(json.dumps({'error': f'JAX has no {args.device} device: {e}'.splitlines()[0]}))
        return 2
    started = time.perf_counter()
    # Built on the CPU: a side waiting for its turn holds no GPU memory.
    with jax.default_device(cpu):
        config = get_config(args.preset, mixed_precision=args.precision)
        keras.utils.set_random_seed(config.seed)
        model = NVAE(config)
        model.compile(optimizer=make_optimizer(config), jit_compile=True)
        x = synthetic_batch(config, args.batch_size)
        model._symbolic_build(data_batch=(x, None, None))
        model.optimizer.build(model.trainable_variables)
        state = model._get_jax_state(
            trainable_variables=True,
            non_trainable_variables=True,
            optimizer_variables=True,
            metrics_variables=True,
            purge_model_variables=False,
        )
    built = time.perf_counter()
    sharding = jax.sharding.SingleDeviceSharding(target)
    on_target = jax.tree_util.tree_map(
        lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding), (state, (x,))
    )
    # As Keras' JAX trainer jits it (make_train_function): state donated, updated each step.
    lowered = jax.jit(model.train_step, donate_argnums=0).lower(
        on_target[0], (on_target[1][0], None, None)
    )
    traced = time.perf_counter()
    step = lowered.compile()
    compiled = time.perf_counter()
    print(
        json.dumps(
            {
                'ready': True,
                'parameters': model.num_parameters(),
                'prepare_s': round(compiled - started, 1),
                'build_s': round(built - started, 1),
                'trace_s': round(traced - built, 1),
                'compile_s': round(compiled - traced, 1),
            }
        ),
        flush=True,
    )
    sys.stdin.readline()

    started = time.perf_counter()
    state = jax.device_put(state, target)
    data = (jax.device_put(x, target), None, None)
    times, losses = [], []
    for i in range(args.warmup + args.steps):
        start = time.perf_counter()
        logs, state = step(state, data)
        loss = float(logs['loss'])  # waits for the step
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
            losses.append(loss)
        else:
            warmup_s = time.perf_counter() - started
    memory = target.memory_stats() if args.device == 'gpu' else None
    flops = xla_flops(step)
    median = statistics.median(times)
    print(
        json.dumps(
            {
                'parameters': model.num_parameters(),
                'step_s': [round(t, 5) for t in times],
                'median_step_s': round(median, 5),
                'min_step_s': round(min(times), 5),
                'warmup_s': round(warmup_s, 1),
                'peak_memory_mb': (
                    round(memory['peak_bytes_in_use'] / 2**20, 1) if memory else None
                ),
                'losses': [round(v, 3) for v in losses],
                'xla_gflops_per_step': None if flops is None else round(flops / 1e9, 1),
                'achieved_tflops': None if flops is None else round(flops / median / 1e12, 2),
                'device': target.device_kind,
                'versions': {'keras': keras.__version__, 'jax': jax.__version__},
                'default_matmul_precision': jax.config.jax_default_matmul_precision,
            }
        ),
        flush=True,
    )
    return 0


def parse_runs(text):
    """'preset@batch,...' -> [(preset, batch)]; one line naming the flag on a bad item."""
    runs = []
    for item in filter(None, text.split(',')):
        preset, _, batch = item.partition('@')
        if preset not in PRESETS or not batch.isdigit() or int(batch) < 1:
            raise ValueError(
                f'--runs: {item!r} is not PRESET@BATCH with PRESET one of {", ".join(PRESETS)} '
                'and BATCH a positive integer'
            )
        runs.append((preset, int(batch)))
    if not runs:
        raise ValueError('--runs: no PRESET@BATCH given')
    return runs


def parse_list(flag, text, choices):
    items = [item for item in text.split(',') if item]
    unknown = sorted(set(items) - set(choices))
    if unknown or not items:
        raise ValueError(f'{flag}: {", ".join(unknown) or "nothing"} given; choose from {choices}')
    return items


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--runs', default=DEFAULT_RUNS, help='PRESET@BATCH per GPU, in order')
    parser.add_argument('--precisions', default=','.join(PRECISIONS))
    parser.add_argument('--sides', default=','.join(SIDES))
    parser.add_argument('--official-dir', help='a checkout of NVlabs/NVAE (the official side)')
    parser.add_argument(
        '--official-python', default=sys.executable, help='Python with torch (official side)'
    )
    parser.add_argument('--steps', type=int, default=10, help='timed steps of every side')
    parser.add_argument('--warmup', type=int, default=2, help='untimed steps before them')
    parser.add_argument(
        '--budget-s', type=float, default=450, help='wall seconds for the whole benchmark'
    )
    parser.add_argument(
        '--dry-run',
        action='store_true',
        help="this code's side only, the tiny preset at batch 2 on the CPU, 2 steps: checks the "
        'JAX side and the recording without a GPU (saved only with --results)',
    )
    parser.add_argument('--results', help='results file (default: bench/results.jsonl)')
    parser.add_argument('--log-dir', help="the sides' stderr, one file each (default: temporary)")
    parser.add_argument('--note', default='', help='free text stored with the result')
    args = parser.parse_args(argv)
    try:
        args.precisions = parse_list('--precisions', args.precisions, PRECISIONS)
        if args.dry_run:
            args.runs, args.sides, args.device = [('tiny', 2)], ['ours'], 'cpu'
            args.steps, args.warmup = 2, 1
        else:
            args.runs = parse_runs(args.runs)
            args.sides = parse_list('--sides', args.sides, SIDES)
            args.device = 'gpu'
        for flag, value in (('--steps', args.steps), ('--warmup', args.warmup)):
            if value < 1:
                raise ValueError(f'{flag}: {value}; at least 1')
        if args.budget_s <= 0:
            raise ValueError(f'--budget-s: {args.budget_s}; a positive number of seconds')
        if 'official' in args.sides:
            check_official(args)
    except ValueError as e:
        parser.error(str(e))
    return args


def check_official(args):
    from bench.official_gpu_worker import OFFICIAL_FLAGS

    if not args.official_dir:
        raise ValueError('--official-dir: required for the official side (or --sides=ours)')
    if not os.path.isfile(os.path.join(args.official_dir, 'train.py')):
        raise ValueError(
            f'--official-dir: {args.official_dir} holds no train.py (a checkout of NVlabs/NVAE)'
        )
    for preset, _ in args.runs:
        if preset not in OFFICIAL_FLAGS:
            raise ValueError(
                f'--runs: {preset} has no official command; the official side runs '
                f'{", ".join(sorted(OFFICIAL_FLAGS))} (or --sides=ours)'
            )


class Side:
    """One side's process: prepares on its own, then times its steps on a line on stdin."""

    def __init__(self, job, command, env, log_path):
        self.job, self.log_path = job, log_path
        self.ready = self.result = self.error = None
        with open(log_path, 'w') as log:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                bufsize=1,
                env={**os.environ, **env},
            )
        # Lines as they come, None at the end: waits with a deadline on a queue.
        self.lines = queue.Queue()
        threading.Thread(target=self._forward_lines, daemon=True).start()

    def _forward_lines(self):
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _read(self, deadline):
        """The side's next JSON line, or None (self.error set) at exit or the deadline."""
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.error = 'not finished within the budget'
                return None
            if line is None:
                self.process.wait()
                self.error = f'exited with status {self.process.returncode}'
                return None
            if line.startswith('{'):
                message = json.loads(line)
                if 'error' in message:
                    self.error = message['error']
                    return None
                return message

    def wait_ready(self, deadline):
        self.ready = self._read(deadline)
        if self.ready is None and self.error == 'not finished within the budget':
            self.error = 'not ready (built and compiled) within the preparation time'
        return self.ready is not None

    def run(self, deadline):
        try:
            self.process.stdin.write('go\n')
        except BrokenPipeError:
            pass  # it exited after it was ready: _read says so
        self.result = self._read(deadline)
        return self.result is not None

    def stop(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def record(self):
        record = {**self.job, 'prepared': self.ready, 'result': self.result}
        if self.error:
            with open(self.log_path) as f:
                record.update(error=self.error, stderr_tail=f.read()[-3000:])
        elif self.result:
            record['finite_losses'] = all(math.isfinite(v) for v in self.result['losses'])
        return record


def side_command(args, job):
    """(command, environment) of one side."""
    common = ['--preset', job['preset'], '--batch-size', str(job['batch_size'])]
    common += ['--precision', job['precision'], '--steps', str(args.steps)]
    common += ['--warmup', str(args.warmup)]
    if job['side'] == 'ours':
        env = {
            'KERAS_BACKEND': 'jax',
            # Memory as used: the sides share the GPU while they prepare.
            'XLA_PYTHON_CLIENT_PREALLOCATE': 'false',
        }
        if args.device == 'cpu':
            env['JAX_PLATFORMS'] = 'cpu'
        command = [sys.executable, '-m', 'bench.bench_gpu', 'ours-worker', *common]
        return command + ['--device', args.device], env
    config = get_config(job['preset'])
    command = [args.official_python, str(HERE / 'official_gpu_worker.py'), *common]
    command += ['--official-dir', args.official_dir, '--total-steps', str(config.total_steps)]
    return command + ['--warmup-steps', str(config.warmup_steps)], {}


def gpu_info():
    """nvidia-smi's description of the GPUs, or None without it."""
    query = 'name,memory.total,driver_version,clocks.max.sm,power.limit'
    try:
        out = subprocess.run(
            ['nvidia-smi', f'--query-gpu={query}', '--format=csv,noheader'],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode:
        return None
    return {'query': query, 'gpus': out.stdout.strip().splitlines()}


def projections(records):
    """The paper runs' wall time from each timed side: the preset's steps (its schedule) times
    the step measured at the official per-GPU batch. On as many GPUs as the official command
    (global batch / per-GPU batch), gradient exchange not counted; on one GPU, those per-GPU
    batches one after another."""
    rows = []
    for r in records:
        if not r['result']:
            continue
        config = get_config(r['preset'])
        gpus = max(1, config.batch_size // r['batch_size'])
        step_s = r['result']['median_step_s']
        rows.append(
            {
                'preset': r['preset'],
                'precision': r['precision'],
                'side': r['side'],
                'steps': config.total_steps,
                'global_batch': config.batch_size,
                'gpus': gpus,
                'hours_on_gpus': round(config.total_steps * step_s / 3600, 1),
                'hours_on_one_gpu': round(config.total_steps * step_s * gpus / 3600, 1),
            }
        )
    return rows


def table(records, rows):
    """The side-by-side figures and projections as text, one line per preset and precision."""
    by_key = {(r['preset'], r['batch_size'], r['precision'], r['side']): r for r in records}
    projected = {(p['preset'], p['precision'], p['side']): p for p in rows}
    lines = [
        'preset@batch precision | ours s/step (img/s) peak MB | official s/step (img/s) peak MB'
        ' | official/ours | paper run h, ours / official (GPUs)'
    ]
    for preset, batch, precision in dict.fromkeys((k[0], k[1], k[2]) for k in by_key):
        cells, medians, hours = [], {}, []
        for side in SIDES:
            r = by_key.get((preset, batch, precision, side))
            if r is None:
                cells.append('-')
            elif r['result']:
                m = medians[side] = r['result']['median_step_s']
                cells.append(f'{m:.3f} ({batch / m:.0f}) {r["result"]["peak_memory_mb"]}')
                p = projected[(preset, precision, side)]
                hours.append(f'{p["hours_on_gpus"]}')
            else:
                cells.append(r['error'])
                hours.append('-')
        ratio = f'{medians["official"] / medians["ours"]:.2f}x' if len(medians) == 2 else '-'
        gpus = max(1, get_config(preset).batch_size // batch)
        lines.append(
            f'{preset}@{batch} {precision} | {cells[0]} | {cells[1]} | {ratio} | '
            f'{" / ".join(hours)} ({gpus})'
        )
    # Both sides must build the same model: their parameter counts, per preset.
    counts = {}
    for r in records:
        if r['prepared']:
            counts.setdefault(r['preset'], {})[r['side']] = r['prepared']['parameters']
    for preset, by_side in counts.items():
        same = '' if len(set(by_side.values())) == 1 else ' (they differ)'
        lines.append(
            f'{preset} parameters: ' + ', '.join(f'{k} {v:,}' for k, v in by_side.items()) + same
        )
    return '\n'.join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ['ours-worker']:
        return ours_worker(argv[1:])
    args = parse_args(argv)
    started = time.monotonic()
    deadline = started + args.budget_s
    log_dir = args.log_dir or tempfile.mkdtemp(prefix='bench_gpu_')
    os.makedirs(log_dir, exist_ok=True)
    jobs = [
        {'preset': preset, 'batch_size': batch, 'precision': precision, 'side': side}
        for preset, batch in args.runs
        for precision in args.precisions
        for side in args.sides
    ]
    sides = []
    try:
        for job in jobs:
            command, env = side_command(args, job)
            name = '{preset}-{batch_size}-{precision}-{side}.log'.format(**job)
            sides.append(Side(job, command, env, os.path.join(log_dir, name)))
        print(f'preparing {len(sides)} sides at once ...', flush=True)
        prepare_deadline = started + PREPARE_SHARE * args.budget_s
        for side in sides:
            side.wait_ready(prepare_deadline)
        for side in sides:  # one at a time, nothing else running
            if side.ready is None:
                side.stop()
                continue
            side.run(deadline)
            side.stop()
            label = '{preset}@{batch_size} {precision} {side}'.format(**side.job)
            outcome = side.error or f'{side.result["median_step_s"]:.4f} s/step'
            print(f'{label}: {outcome} ({time.monotonic() - started:.0f} s)', flush=True)
    finally:
        for side in sides:
            side.stop()
    records = [side.record() for side in sides]
    rows = projections(records)
    result = {
        'benchmark': 'gpu_train_step_side_by_side',
        'dry_run': args.dry_run,
        'gpu': gpu_info(),
        'settings': {'steps': args.steps, 'warmup': args.warmup, 'budget_s': args.budget_s},
        'wall_s': round(time.monotonic() - started, 1),
        'runs': records,
        'projections': rows,
        'note': args.note,
    }
    if args.results or not args.dry_run:
        from bench.machine import RESULTS_FILE, append_result

        result = append_result(result, args.results or RESULTS_FILE)
    print(table(records, rows))
    return 0 if all(r['result'] for r in records) else 1


if __name__ == '__main__':
    sys.exit(main())
