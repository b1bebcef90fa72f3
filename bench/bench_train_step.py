"""Training-step throughput and peak memory of NVAE for one preset and batch size.

Runs `model.fit` on a fixed synthetic batch on the current Keras backend
(KERAS_BACKEND) and device, reports the median images/s over the timed
steps, peak memory, and the analytic FLOPs per image (2 x multiply-adds of
every conv and dense layer, forward; a training step counted as 3x forward),
prints one JSON object and appends it, with the machine, to bench/results.jsonl.

    KERAS_BACKEND=tensorflow python -m bench.bench_train_step --preset cpu --batch-size 64
"""

import argparse
import json
import os
import platform
import resource
import statistics
import time

# TensorFlow enables its oneDNN kernels by default only on CPUs with AVX-512
# VNNI/BF16/AMX; on AVX2 machines they make conv back-propagation ~2x
# faster (AVX-512 machines with those extensions have it on already). Must be set before
# TensorFlow is imported.
os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '1')

import keras  # noqa: E402
import numpy as np  # noqa: E402

from bench.machine import append_result  # noqa: E402
from model_code.config import get_config  # noqa: E402
from model_code.layers import Conv2D, FactorizedReduce, SqueezeExcite  # noqa: E402
from model_code.nvae import NVAE  # noqa: E402
from model_code.optim import make_optimizer  # noqa: E402


def forward_flops_per_image(model):
    """2 x MACs of all convs (at the resolution they run at) and SE dense layers, one image.
    The four convs of a FactorizedReduce count as four 1x1 convs at its output resolution."""
    shapes = {}
    originals = {Conv2D: Conv2D.call, FactorizedReduce: FactorizedReduce.call}

    def recording(cls):
        def call(layer, x):
            y = originals[cls](layer, x)
            for conv in getattr(layer, 'convs', [layer]):
                shapes[id(conv)] = tuple(y.shape[1:3])
            return y

        return call

    for cls in originals:
        cls.call = recording(cls)
    try:
        size = model.config.image_size
        model(np.zeros((1, size, size, model.config.in_channels), 'float32'), training=False)
    finally:
        for cls, call in originals.items():
            cls.call = call
    macs = 0
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, Conv2D):
            height, width = shapes[id(layer)]
            macs += height * width * int(np.prod(layer.kernel.shape))
        elif isinstance(layer, SqueezeExcite):
            macs += int(np.prod(layer.fc1.kernel.shape) + np.prod(layer.fc2.kernel.shape))
    return 2 * macs


def backend_info():
    """Backend, accelerators and library versions (bench.machine adds the host)."""
    versions = {'keras': keras.__version__, 'numpy': np.__version__}
    backend = keras.backend.backend()
    if backend == 'tensorflow':
        import tensorflow as tf

        versions['tensorflow'] = tf.__version__
        devices = [d.name for d in tf.config.list_physical_devices() if d.device_type != 'CPU']
    else:
        import jax

        versions['jax'] = jax.__version__
        devices = [str(d) for d in jax.devices() if d.platform != 'cpu']
    return {
        'platform': platform.platform(),
        'backend': backend,
        'accelerators': devices,
        'versions': versions,
    }


def device_peak_memory():
    """Peak accelerator memory in bytes, or None on CPU."""
    backend = keras.backend.backend()
    if backend == 'tensorflow':
        import tensorflow as tf

        if tf.config.list_physical_devices('GPU'):
            return tf.config.experimental.get_memory_info('GPU:0')['peak']
    else:
        import jax

        device = jax.devices()[0]
        if device.platform != 'cpu':
            return device.memory_stats().get('peak_bytes_in_use')
    return None


def set_threads(intra_op, inter_op):
    """TensorFlow's thread pools (before any op runs); 0 keeps its default."""
    if keras.backend.backend() != 'tensorflow':
        return
    import tensorflow as tf

    if intra_op:
        tf.config.threading.set_intra_op_parallelism_threads(intra_op)
    if inter_op:
        tf.config.threading.set_inter_op_parallelism_threads(inter_op)


def build_model(config, jit):
    """On TensorFlow the model as the Trainer builds it (nvae_tfx.training.loop.build_model:
    Adamax inside a LossScaleOptimizer, which skips non-finite updates); elsewhere compiled with
    the optimizer alone (the Trainer runs on TensorFlow only)."""
    if keras.backend.backend() == 'tensorflow':
        from nvae_tfx.training.loop import build_model as trainer_build_model

        return trainer_build_model(config, jit_compile=str(jit).lower())
    model = NVAE(config)
    model.compile(optimizer=make_optimizer(config), jit_compile=jit)
    return model


class StepTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times = []

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        float(logs['loss'])  # wait for the step (JAX dispatches asynchronously)
        self.times.append(time.perf_counter() - self._start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--preset', default='cpu')
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--steps', type=int, default=10, help='timed steps')
    parser.add_argument('--warmup', type=int, default=2, help='untimed steps, compilation included')
    parser.add_argument(
        '--jit',
        choices=('auto', 'on', 'off'),
        default='auto',
        help="XLA: 'auto' = off on TensorFlow-on-CPU (measured faster), on otherwise",
    )
    parser.add_argument(
        '--mixed-precision', default=None, help='float32, mixed_float16 or mixed_bfloat16'
    )
    parser.add_argument(
        '--threads', type=int, default=0, help='TensorFlow intra-op threads (0: its default)'
    )
    parser.add_argument(
        '--inter-op-threads', type=int, default=0, help='TensorFlow inter-op threads (0: default)'
    )
    parser.add_argument('--note', default='', help='free text stored with the result')
    parser.add_argument('--no-save', action='store_true', help='print only')
    args = parser.parse_args(argv)

    overrides = {'total_steps': 1000}
    if args.mixed_precision:
        overrides['mixed_precision'] = args.mixed_precision
    config = get_config(args.preset, **overrides)
    set_threads(args.threads, args.inter_op_threads)
    keras.utils.set_random_seed(config.seed)
    info = backend_info()
    jit = args.jit == 'on' or (
        args.jit == 'auto' and not (info['backend'] == 'tensorflow' and not info['accelerators'])
    )
    model = build_model(config, jit)
    flops = forward_flops_per_image(model)

    size = config.image_size
    rng = np.random.default_rng(0)
    shape = (args.batch_size, size, size, config.in_channels)
    if config.dataset == 'mnist':
        x = (rng.random(shape) < 0.15).astype('float32')
    else:
        x = np.round(rng.random(shape) * 255.0).astype('float32') / 255.0

    start = time.perf_counter()
    model.fit(x, batch_size=args.batch_size, epochs=args.warmup, verbose=0)
    warmup_s = time.perf_counter() - start
    timer = StepTimer()
    model.fit(x, batch_size=args.batch_size, epochs=args.steps, verbose=0, callbacks=[timer])
    step_s = statistics.median(timer.times)
    images_per_s = args.batch_size / step_s

    result = {
        'benchmark': 'train_step',
        'preset': args.preset,
        'batch_size': args.batch_size,
        'mixed_precision': config.mixed_precision,
        'jit_compile': jit,
        'parameters': model.num_parameters(),
        'timed_steps': args.steps,
        'median_step_s': round(step_s, 4),
        'step_s_min_max': [round(min(timer.times), 4), round(max(timer.times), 4)],
        'images_per_s': round(images_per_s, 2),
        'warmup_s_incl_compile': round(warmup_s, 1),
        'peak_rss_mb': round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        'peak_device_memory_mb': (lambda b: None if b is None else round(b / 2**20, 1))(
            device_peak_memory()
        ),
        'forward_gflops_per_image': round(flops / 1e9, 4),
        'train_gflops_per_s': round(3 * flops * images_per_s / 1e9, 2),
        'tf_enable_onednn_opts': os.environ['TF_ENABLE_ONEDNN_OPTS'],
        'threads': {'intra_op': args.threads, 'inter_op': args.inter_op_threads},
        'note': args.note,
        **info,
    }
    if not args.no_save:
        result = append_result(result)
    print(json.dumps(result))
    return result


if __name__ == '__main__':
    main()
