"""Cost of the importance-weighted NLL: tracing at K=50 against K=1000, and per-image time at K.

The bound's chunk loop is symbolic, so the first call (tracing) should cost about the same at
any K while the per-image time grows with K. Runs NVAE.log_likelihood as the Evaluator does
(nvae_tfx.evaluation.generative_metrics on TensorFlow; jax.jit over a stateless scope on JAX)
on an untrained model of the given preset, prints one JSON object and appends it, with the
machine, to bench/results.jsonl.

    KERAS_BACKEND=tensorflow python bench/bench_iw_likelihood.py --preset cpu --images 4
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '1')  # as the Evaluator runs

import keras  # noqa: E402
import numpy as np  # noqa: E402

from bench.machine import append_result  # noqa: E402
from model_code.config import get_config  # noqa: E402
from model_code.nvae import NVAE  # noqa: E402


def bound_function(model, k, batch):
    """images -> log p(x) per image, compiled the way the backend's evaluation would."""
    if keras.backend.backend() == 'tensorflow':
        from nvae_tfx.evaluation import generative_metrics

        return generative_metrics.iw_log_likelihood(model, k, batch)
    import jax

    chunk = min(k, max(1, 1000 // batch))
    variables = model.variables

    @jax.jit
    def pure(values, x):
        with keras.StatelessScope(list(zip(variables, values, strict=True))) as scope:
            bound = model.log_likelihood(x, num_samples=k, chunk_size=chunk)
        return bound, scope.get_current_value(model.seed_generator.state)

    def call(x):
        bound, seed = pure([v.value for v in variables], x)
        model.seed_generator.state.assign(seed)
        return bound

    return call


def device():
    if keras.backend.backend() == 'jax':
        import jax

        return jax.devices()[0].device_kind
    import tensorflow as tf

    return 'GPU' if tf.config.list_physical_devices('GPU') else 'CPU'


def timed(fn, x):
    start = time.perf_counter()
    out = keras.ops.convert_to_numpy(fn(x))
    return time.perf_counter() - start, out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--preset', default='cpu')
    parser.add_argument('--batch', type=int, default=2, help='images per call')
    parser.add_argument('--images', type=int, default=4, help='images timed at the large K')
    parser.add_argument('--k', type=int, nargs=2, default=(50, 1000), help='small and large K')
    args = parser.parse_args()

    config = get_config(args.preset)
    model = NVAE(config)
    shape = (args.batch, config.image_size, config.image_size, config.in_channels)
    x = (np.random.default_rng(0).random(shape) < 0.3).astype('float32')
    model(x)
    rows = {}
    for k in args.k:
        fn = bound_function(model, k, args.batch)
        first_s, _ = timed(fn, x)  # tracing (and compiling) plus one evaluation
        calls = max(1, args.images // args.batch) if k == max(args.k) else 1
        times = [timed(fn, x)[0] for _ in range(calls)]
        per_call = float(np.median(times))
        rows[f'k{k}'] = {
            'first_call_s': round(first_s, 2),
            'trace_s': round(first_s - per_call, 2),
            's_per_image': round(per_call / args.batch, 4),
            'images_timed': calls * args.batch,
        }
    small, large = (rows[f'k{k}'] for k in args.k)
    record = append_result(
        {
            'benchmark': 'iw_likelihood',
            'backend': keras.backend.backend(),
            'device': device(),
            'preset': args.preset,
            'image_size': config.image_size,
            'batch': args.batch,
            **rows,
            'trace_ratio_large_over_small': round(
                large['trace_s'] / max(small['trace_s'], 1e-9), 3
            ),
        }
    )
    print(json.dumps(record, indent=1))


if __name__ == '__main__':
    main()
