"""One side of bench/bench_side_by_side.py: the official PyTorch NVAE's training step.

Runs under the official code's own Python (torch, numpy; not this project's environment) and
drives it through the shared timing module (`official_nvae.py` beside `bench_official.py`, which
patches the official source for the CPU in memory and ports train.py's step). It builds the
model, runs the warm-up steps, prints `ready`, then runs one step per line read on stdin and
prints its wall and CPU seconds as JSON.
"""

import argparse
import json
import sys
import time

import numpy as np


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--timing-dir', required=True, help='directory of official_nvae.py')
    parser.add_argument('--official-dir', required=True, help='a checkout of NVlabs/NVAE')
    parser.add_argument('--preset', default='cpu')
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--warmup', type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, args.timing_dir)
    import official_nvae as o
    import torch

    o.setup(args.official_dir, args.threads)
    flags = o.parse_args(o.PRESETS[args.preset])
    net = o.build_model(flags, seed=flags.seed)
    # As bench_official.py: 1,000 total steps and the preset's LR warm-up.
    trainer = o.Trainer(
        net, flags, total_steps=1000, warmup_steps=100 if args.preset == 'cpu' else 750
    )
    rng = np.random.default_rng(0)
    shape = (args.batch_size, 1, 32, 32)
    x = torch.from_numpy((rng.random(shape) < 0.15).astype('float32'))
    step = 0
    for step in range(args.warmup):
        trainer.step(x, step)
    print(
        json.dumps(
            {
                'ready': True,
                'parameters': o.num_parameters(net),
                'torch': torch.__version__,
                'threads': torch.get_num_threads(),
            }
        ),
        flush=True,
    )
    for _ in sys.stdin:
        step += 1
        wall, cpu = time.perf_counter(), time.process_time()
        loss = trainer.step(x, step)['loss']
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


if __name__ == '__main__':
    main()
