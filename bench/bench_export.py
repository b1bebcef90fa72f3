"""What the Trainer's export costs: BatchNorm readjustment and the SavedModel with its
signatures plus the Keras file, for a model as the Trainer builds it (weights untrained: the
cost does not depend on them).

    python -m bench.bench_export --preset cpu
    python -m bench.bench_export --preset tiny --repo ../other-checkout   # another version

Prints seconds per phase and appends them, with machine and config, to bench/results.jsonl.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from bench import machine


def measure(preset: str, readjust_passes: int) -> dict:
    import keras
    import numpy as np
    import tensorflow_transform as tft

    from nvae_tfx.options import TrainingOptions
    from nvae_tfx.training import export, loop
    from tests import fixtures

    # Checkouts before the fixture took other datasets name it for MNIST.
    write_transform_graph = (
        getattr(fixtures, 'write_transform_graph', None) or fixtures.write_mnist_transform_graph
    )
    work = tempfile.mkdtemp(prefix='bench_export_')
    tft_output = tft.TFTransformOutput(write_transform_graph(f'{work}/transform_graph'))
    options = TrainingOptions(preset=preset, readjust_bn_passes=readjust_passes)
    keras.utils.set_random_seed(0)
    model = loop.build_model(options.model_config(image_size=32), options.jit_compile)
    model(np.zeros((2, 32, 32, 1), np.float32))
    seconds = {}
    start = time.perf_counter()
    export.readjust_bn(model, options)
    seconds['readjust_bn'] = time.perf_counter() - start
    start = time.perf_counter()
    export.export(model, f'{work}/model/Format-Serving', tft_output, options)
    seconds['export'] = time.perf_counter() - start
    return {k: round(v, 1) for k, v in seconds.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument('--preset', default='cpu')
    p.add_argument('--readjust_passes', type=int, default=20)
    p.add_argument('--repo', default='.', help='checkout whose code is measured')
    p.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    repo = os.path.abspath(args.repo)
    if args.worker:
        print(json.dumps(measure(args.preset, args.readjust_passes)))
        return
    # A fresh process with the checkout first on the path: its modules, not this one's.
    env = {**os.environ, 'PYTHONPATH': repo, 'TF_CPP_MIN_LOG_LEVEL': '2'}
    script = os.path.abspath(__file__)
    out = subprocess.run(
        [sys.executable, script, '--worker', f'--preset={args.preset}',
         f'--readjust_passes={args.readjust_passes}'],
        env=env, cwd=repo, capture_output=True, text=True,
    )  # fmt: skip
    if out.returncode:
        sys.exit(out.stderr[-3000:])
    seconds = json.loads(out.stdout.strip().splitlines()[-1])
    record = machine.append_result(
        {
            'benchmark': 'export',
            'repo': repo,
            'commit': subprocess.run(
                ['git', 'rev-parse', '--short', 'HEAD'], cwd=repo, capture_output=True, text=True
            ).stdout.strip(),
            'preset': args.preset,
            'readjust_bn_passes': args.readjust_passes,
            'seconds': seconds,
        }
    )
    phases = ', '.join(f'{k} {v} s' for k, v in seconds.items())
    print(f'{args.preset} at {record["commit"]}: {phases}')


if __name__ == '__main__':
    main()
