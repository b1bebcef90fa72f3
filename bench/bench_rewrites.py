"""Forward + backward time of each rewritten model operation against the formulation it
replaces, at the sizes of the `cpu` preset at batch 64 (TensorFlow, CPU).

The cases (and their equality, values and gradients) are those of tests/test_exact_rewrites.py.
Both versions of a case run in turn, --reps times each, in one process; prints and appends to
bench/results.jsonl the median milliseconds of each and their ratio.

    python bench/bench_rewrites.py --reps 15
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '1')  # see bench_train_step.py
os.environ['KERAS_BACKEND'] = 'tensorflow'

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import ops  # noqa: E402

from bench.machine import append_result  # noqa: E402
from tests.test_exact_rewrites import (  # noqa: E402
    batch_norm_case,
    bilinear_case,
    factorized_reduce_case,
    nearest_case,
    up_branch_case,
)

# The largest instance of each operation in the `cpu` preset, batch 64.
CPU_PRESET_CASES = {
    'batch_norm_swish 32x32x96': lambda: batch_norm_case((64, 32, 32, 96), swish=True),
    'batch_norm 32x32x16': lambda: batch_norm_case((64, 32, 32, 16), swish=False),
    'factorized_reduce 32x32x16': lambda: factorized_reduce_case((64, 32, 32, 16)),
    'upsample_bilinear 16x16x32': lambda: bilinear_case((64, 16, 16, 32)),
    'upsample_nearest 16x16x96': lambda: nearest_case((64, 16, 16, 96)),
    'up_branch 16x16x32 x3': lambda: up_branch_case((64, 16, 16, 32), expansion=3),
}


def training_step(fn):
    """fn's output and the gradient of a fixed projection of it with respect to its inputs."""

    @tf.function
    def step(probe, *args):
        with tf.GradientTape() as tape:
            tape.watch(args)
            loss = ops.sum(fn(*args) * probe)
        return tape.gradient(loss, args)

    return step


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--reps', type=int, default=15)
    parser.add_argument('--only', default='', help='run the cases whose name contains this')
    parser.add_argument('--no-save', action='store_true')
    args = parser.parse_args(argv)
    results = {}
    for name, case in CPU_PRESET_CASES.items():
        if args.only not in name:
            continue
        new, old, inputs = case()
        inputs = [tf.constant(a) for a in inputs]
        probe = tf.constant(np.random.default_rng(0).standard_normal(old(*inputs).shape), 'float32')
        steps = {'rewritten': training_step(new), 'replaced': training_step(old)}
        times = {k: [] for k in steps}
        for step in steps.values():
            step(probe, *inputs)  # trace
        for _ in range(args.reps):
            for key, step in steps.items():
                start = time.perf_counter()
                [g.numpy() for g in step(probe, *inputs)]
                times[key].append(time.perf_counter() - start)
        ms = {k: round(1e3 * statistics.median(v), 2) for k, v in times.items()}
        results[name] = {**ms, 'speedup': round(ms['replaced'] / ms['rewritten'], 2)}
        print(name, results[name], flush=True)
    record = {
        'benchmark': 'rewrites_forward_backward',
        'batch_size': 64,
        'reps': args.reps,
        'median_ms': results,
        'tensorflow': tf.__version__,
        'tf_enable_onednn_opts': os.environ['TF_ENABLE_ONEDNN_OPTS'],
    }
    if not args.no_save:
        record = append_result(record)
    print(json.dumps(record))


if __name__ == '__main__':
    main()
