"""One side of bench/bench_gpu.py: the official PyTorch NVAE (NVlabs/NVAE) training on one GPU
exactly as its train.py trains: its own train() function, imported from its train.py, over a
queue that gives the same batch every step, with its model, fast Adamax, GradScaler(2**10) and
the process group of one that train.py sets up on one GPU (distributed=True, NCCL, world size
1). Precision: mixed_float16 is train.py's own autocast; float32 runs the same code with
autocast off; mixed_bfloat16 with autocast to bfloat16.

Runs under the GPU machine's Python with torch (the official code's imports: torchvision,
scipy, Pillow, tensorboardX, lmdb), not this project's environment. Protocol: builds the model
on the CPU and prints {"ready": ...}; on a line on stdin moves it to the GPU, runs the warm-up
and timed steps and prints one JSON result; nothing is printed on stdout otherwise.

    python bench/official_gpu_worker.py --official-dir NVAE --preset paper_mnist --batch-size 200
"""

import argparse
import contextlib
import json
import os
import re
import socket
import statistics
import sys
import time

# The README commands of NVlabs/NVAE for the two paper presets (model_code/config.py), without
# the flags for data, output, epochs, batch size and processes, which the benchmark sets.
OFFICIAL_FLAGS = {
    'paper_mnist': (
        '--dataset mnist --num_latent_scales 2 --num_groups_per_scale 10 '
        '--num_postprocess_cells 3 --num_preprocess_cells 3 --num_cell_per_cond_enc 2 '
        '--num_cell_per_cond_dec 2 --num_latent_per_group 20 --num_preprocess_blocks 2 '
        '--num_postprocess_blocks 2 --weight_decay_norm 1e-2 --num_channels_enc 32 '
        '--num_channels_dec 32 --num_nf 0 --ada_groups --use_se --res_dist --fast_adamax'
    ),
    'paper_celeba64': (
        '--dataset celeba_64 --num_channels_enc 64 --num_channels_dec 64 '
        '--num_postprocess_cells 2 --num_preprocess_cells 2 --num_latent_scales 3 '
        '--num_latent_per_group 20 --num_cell_per_cond_enc 2 --num_cell_per_cond_dec 2 '
        '--num_preprocess_blocks 1 --num_postprocess_blocks 1 --weight_decay_norm 1e-1 '
        '--num_groups_per_scale 20 --num_nf 1 --ada_groups --use_se --res_dist --fast_adamax'
    ),
}


def official_args(official_dir, flags):
    """An args namespace as train.py's own argparse block builds it (the block runs under
    __main__ only, so it is executed here from the source)."""
    with open(os.path.join(official_dir, 'train.py')) as f:
        source = f.read()
    block = source[
        source.index('    parser = argparse.ArgumentParser') : source.index(
            '    args = parser.parse_args()'
        )
    ]
    namespace = {}
    exec('import argparse\n' + re.sub(r'(?m)^    ', '', block), namespace)
    return namespace['parser'].parse_args(flags.split())


def synthetic_batch(dataset, batch_size):
    """The batch recipe of bench/bench_gpu.py's other side, NCHW: binary digits on the 32x32
    canvas, or colour images of 8-bit levels."""
    import numpy as np
    import torch

    rng = np.random.default_rng(0)
    if dataset == 'mnist':
        x = (rng.random((batch_size, 1, 32, 32)) < 0.15).astype('float32')
    else:
        x = np.round(rng.random((batch_size, 3, 64, 64)) * 255.0).astype('float32') / 255.0
    return torch.from_numpy(x)


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class StepTimes:
    """train()'s queue: the same batch `steps` times; each fetch first waits for the GPU, so the
    time between two fetches is one whole step."""

    def __init__(self, batch, steps):
        self.batch, self.steps, self.fetched = batch, steps, []

    def __iter__(self):
        import torch

        for _ in range(self.steps + 1):
            torch.cuda.synchronize()
            self.fetched.append(time.perf_counter())
            if len(self.fetched) <= self.steps:
                yield self.batch

    def step_s(self):
        return [b - a for a, b in zip(self.fetched[:-1], self.fetched[1:], strict=True)]


class NoWriter:
    """train() writes TensorBoard summaries every 100 steps; the benchmark keeps none."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument('--official-dir', required=True, help='a checkout of NVlabs/NVAE')
    parser.add_argument('--preset', choices=sorted(OFFICIAL_FLAGS), required=True)
    parser.add_argument('--batch-size', type=int, required=True, help='per GPU')
    parser.add_argument(
        '--precision', choices=('float32', 'mixed_float16', 'mixed_bfloat16'), default='float32'
    )
    parser.add_argument('--steps', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--total-steps', type=int, required=True, help="the run's, for schedules")
    parser.add_argument('--warmup-steps', type=int, required=True, help='LR warm-up of the run')
    args = parser.parse_args(argv)

    import torch
    import torch.distributed as dist

    if not torch.cuda.is_available():
        print(json.dumps({'error': 'torch sees no CUDA GPU; the official code trains on GPUs'}))
        return 2
    sys.path.insert(0, os.path.abspath(args.official_dir))
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries the JSON lines only
        import train as official
        import utils

    flags = official_args(args.official_dir, OFFICIAL_FLAGS[args.preset])
    flags.batch_size = args.batch_size
    flags.num_total_iter = args.total_steps
    flags.distributed = True  # as train.py on one GPU: a process group of one
    official.args = flags  # train() reads the global that train.py's __main__ sets
    torch.manual_seed(flags.seed)
    started = time.perf_counter()
    model = official.AutoEncoder(flags, None, utils.get_arch_cells(flags.arch_instance))
    parameters = sum(p.numel() for p in model.parameters())
    x = synthetic_batch('mnist' if flags.dataset == 'mnist' else 'celeba', args.batch_size)
    batch = (x, torch.zeros(args.batch_size, dtype=torch.long))  # (images, labels) as its loaders
    print(
        json.dumps(
            {
                'ready': True,
                'parameters': parameters,
                'prepare_s': round(time.perf_counter() - started, 1),
            }
        ),
        flush=True,
    )
    sys.stdin.readline()

    started = time.perf_counter()
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(free_port()))
    torch.cuda.set_device(0)
    dist.init_process_group(backend='nccl', init_method='env://', rank=0, world_size=1)
    torch.cuda.manual_seed_all(flags.seed)
    model = model.cuda()
    optimizer = official.Adamax(
        model.parameters(), flags.learning_rate, weight_decay=flags.weight_decay, eps=1e-3
    )
    grad_scalar = official.GradScaler(2**10)
    if args.precision == 'float32':
        official.autocast = lambda: torch.autocast('cuda', enabled=False)
    elif args.precision == 'mixed_bfloat16':
        official.autocast = lambda: torch.autocast('cuda', dtype=torch.bfloat16)
    torch.cuda.reset_peak_memory_stats()
    # One train() call over all the steps, as an epoch runs (its once-per-100-steps work falls on
    # the first, a warm-up step); the queue waits for the GPU at each fetch.
    queue = StepTimes(batch, args.warmup + args.steps)
    nelbo, _ = official.train(
        queue, model, optimizer, grad_scalar, 0, args.warmup_steps, NoWriter(), NoWriter()
    )
    loss = float(nelbo)
    times = queue.step_s()[args.warmup :]
    print(
        json.dumps(
            {
                'parameters': parameters,
                'step_s': [round(t, 5) for t in times],
                'median_step_s': round(statistics.median(times), 5),
                'min_step_s': round(min(times), 5),
                'warmup_s': round(queue.fetched[args.warmup] - started, 1),
                # train()'s running mean over every step, warm-up included.
                'losses': [round(loss, 3)],
                'peak_memory_mb': round(torch.cuda.max_memory_allocated() / 2**20, 1),
                'peak_reserved_mb': round(torch.cuda.max_memory_reserved() / 2**20, 1),
                'device': torch.cuda.get_device_name(0),
                'versions': {'torch': torch.__version__, 'cuda': torch.version.cuda},
                'tf32': {
                    'cudnn': torch.backends.cudnn.allow_tf32,
                    'matmul': torch.backends.cuda.matmul.allow_tf32,
                },
            }
        ),
        flush=True,
    )
    dist.destroy_process_group()
    return 0


if __name__ == '__main__':
    sys.exit(main())
