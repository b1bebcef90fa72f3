"""NVAE's down-sampling skip (FactorizedReduce: four 1x1 stride-2 convs) on TensorFlow with oneDNN:
as the model runs it (each conv on a sub-sampled input at stride 1) against one strided conv each,
forward and backward (gradients of input and weights), timed side by side, interleaved.

Only shapes with at least 16 input channels are timed: with fewer, oneDNN's strided 1x1 filter
gradient corrupts the heap (BUILD_NOTES.md). Prints one JSON object and appends it, with the
machine, to bench/results.jsonl.

    python bench/bench_strided_1x1.py
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '1')  # before TensorFlow is imported

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench.machine import append_result  # noqa: E402
from model_code.layers import FactorizedReduce  # noqa: E402
from tests.reference_formulations import strided_factorized_reduce  # noqa: E402

# (height = width, input channels) of every FactorizedReduce in the presets named.
SHAPES = {
    'cpu, MNIST 32': [(32, 16), (16, 32)],
    'cpu, CelebA 64': [(64, 16), (32, 32)],
    'paper_celeba64': [(64, 64), (32, 128), (16, 256)],
}


def train_direction(form, layer):
    """Forward and gradients of the input and the layer's weights, as one traced function."""

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.square(form(layer, x)))
        return tape.gradient(loss, [x, *layer.trainable_variables])

    return step


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--reps', type=int, default=20, help='timed calls of each form per shape')
    parser.add_argument('--no-save', action='store_true', help='print only')
    args = parser.parse_args(argv)

    rows = []
    for preset, shapes in SHAPES.items():
        for size, channels in shapes:
            layer = FactorizedReduce(channels, 2 * channels)
            x = tf.constant(
                np.random.default_rng(0).standard_normal(
                    (args.batch_size, size, size, channels), np.float32
                )
            )
            forms = {
                'subsampled': train_direction(lambda layer, x: layer(x), layer),
                'strided': train_direction(strided_factorized_reduce, layer),
            }
            grads = {name: step(x) for name, step in forms.items()}  # traces; checks agreement
            for new, old in zip(grads['subsampled'], grads['strided'], strict=True):
                scale = np.abs(old.numpy()).max()  # sums of many terms: relative to their size
                np.testing.assert_allclose(new.numpy(), old.numpy(), rtol=1e-4, atol=1e-5 * scale)
            times = {name: [] for name in forms}
            for _ in range(args.reps):
                for name, step in forms.items():
                    start = time.perf_counter()
                    [g.numpy() for g in step(x)]
                    times[name].append(time.perf_counter() - start)
            ms = {name: round(1e3 * statistics.median(t), 3) for name, t in times.items()}
            rows.append(
                {
                    'preset': preset,
                    'input': [args.batch_size, size, size, channels],
                    'median_ms': ms,
                    'subsampled_over_strided': round(ms['subsampled'] / ms['strided'], 3),
                }
            )
            print(json.dumps(rows[-1]))
    result = {
        'benchmark': 'strided_1x1_conv',
        'batch_size': args.batch_size,
        'reps': args.reps,
        'tensorflow': tf.__version__,
        'tf_enable_onednn_opts': os.environ['TF_ENABLE_ONEDNN_OPTS'],
        'rows': rows,
    }
    if not args.no_save:
        result = append_result(result)
    print(json.dumps(result))
    return result


if __name__ == '__main__':
    main()
