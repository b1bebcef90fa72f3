"""Cost of the Evaluator's model work on CPU: sampling for FID and the importance-weighted NLL.

Builds a preset's model (its cost does not depend on the weights) from the checkout at --repo
(default: this one, so two checkouts can be compared) and times, with the Evaluator's own
functions (nvae_tfx/evaluation/generative_metrics.py):
  * sampling: images/s of `samples` at the Evaluator's batch of 500, temperature 1, tracing
    included (the function is traced on every call, once per evaluation in the Evaluator);
  * IW-NLL: seconds per image of `iw_log_likelihood` after tracing (the first call, with
    tracing, reported apart), for each K in --iw-samples; K=50 on the Evaluator's batch of 50,
    larger K on --large-k-batch images (per-image cost is K forward passes either way, in
    chunks of about 1,000 images).
Prints and appends the result to bench/results.jsonl.

    python bench/bench_evaluation.py --preset cpu --iw-samples 50 1000
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.machine import append_result  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--repo', default=str(HERE.parent), help='checkout whose model to time')
    parser.add_argument('--preset', default='cpu')
    parser.add_argument('--iw-samples', type=int, nargs='+', default=[50, 1000])
    parser.add_argument('--batch-size', type=int, default=50, help="the Evaluator's NLL batch")
    parser.add_argument('--large-k-batch', type=int, default=5, help='images for K > 100')
    parser.add_argument('--samples', type=int, default=1000, help='images drawn for sampling')
    parser.add_argument('--reps', type=int, default=3, help='timed calls of each function')
    parser.add_argument('--note', default='')
    parser.add_argument('--no-save', action='store_true')
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(args.repo).resolve()))
    os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '1')  # see bench_train_step.py
    import keras
    import numpy as np
    import tensorflow as tf

    from model_code.config import get_config
    from model_code.nvae import NVAE
    from nvae_tfx.evaluation import generative_metrics

    config = get_config(args.preset)
    keras.utils.set_random_seed(config.seed)
    model = NVAE(config)
    rng = np.random.default_rng(0)
    shape = (config.image_size, config.image_size, config.in_channels)
    result = {
        'benchmark': 'evaluation_model_cost',
        'repo': str(Path(args.repo).resolve()),
        'preset': args.preset,
        'parameters': model.num_parameters(),
    }

    def timed(fn, *call_args):
        """Seconds of the first call (tracing included) and median seconds of the next reps."""
        times = []
        for _ in range(args.reps + 1):
            start = time.perf_counter()
            keras.ops.convert_to_numpy(fn(*call_args))
            times.append(time.perf_counter() - start)
        return times[0], statistics.median(times[1:])

    # The Evaluator samples with the sampling state the Trainer made (its cost does not depend
    # on the number of readjustment passes, so one makes it); `samples` traces its function on
    # every call, as the Evaluator's single call does.
    model.readjust_bn(num_passes=1)
    first, seconds = timed(generative_metrics.samples, model, args.samples, 1.0, 500, 0)
    result['sampling'] = {
        'images': args.samples,
        'batch_size': 500,
        'images_per_s_incl_tracing': round(args.samples / seconds, 1),
        'first_call_s': round(first, 1),
    }
    print('sampling', result['sampling'], flush=True)
    for k in args.iw_samples:
        batch = args.batch_size if k <= 100 else args.large_k_batch
        images = (rng.random((batch, *shape)) < 0.15).astype('float32')
        iw = generative_metrics.iw_log_likelihood(model, k, batch)
        first, seconds = timed(iw, tf.constant(images))
        result[f'iw_nll_k{k}'] = {
            'images': batch,
            's_per_image': round(seconds / batch, 4),
            'first_call_s_incl_tracing': round(first, 1),
        }
        print(f'IW-NLL K={k}', result[f'iw_nll_k{k}'], flush=True)
    result['note'] = args.note
    result['tensorflow'] = tf.__version__
    if not args.no_save:
        result = append_result(result)
    print(json.dumps(result))
    return result


if __name__ == '__main__':
    main()
