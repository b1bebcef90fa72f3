"""CelebA at 64x64 trains with TensorFlow's oneDNN kernels on.

NVAE's factorized down-sampling skip slices out the four stride-2 pixel grids and convolves them
at stride 1: oneDNN's filter gradient of a strided 1x1 convolution corrupts the heap when there are
fewer input channels than its SIMD block, as in the tiny preset at 64x64 (BUILD_NOTES.md).
"""

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import tensorflow as tf
from keras import ops

from model_code.config import get_config
from model_code.layers import FactorizedReduce
from model_code.nvae import NVAE
from pipeline import configs
from tests.support.reference_formulations import strided_factorized_reduce

STEPS, BATCH, SIZE = 3, 4, 64


def test_factorized_reduce_equals_the_strided_convolutions():
    """Values and gradients (input, every kernel, weight norm and bias) of the sub-grid form equal
    those of the four strided convolutions (16 input channels: a shape oneDNN's strided kernel
    handles correctly)."""
    rng = np.random.default_rng(0)
    layer = FactorizedReduce(16, 24)
    x = tf.constant(rng.standard_normal((2, 8, 8, 16)), tf.float32)
    cotangent = tf.constant(rng.standard_normal((2, 4, 4, 24)), tf.float32)
    results = []
    for forward in (layer, lambda x: strided_factorized_reduce(layer, x)):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = forward(x)
            loss = tf.reduce_sum(y * cotangent)
        results.append([y, *tape.gradient(loss, [x, *layer.trainable_variables])])
    assert len(results[0]) == 2 + 4 * 3  # output, input, (kernel, bias, log norm) per conv
    for new, old in zip(*results, strict=True):
        np.testing.assert_allclose(new.numpy(), old.numpy(), rtol=1e-5, atol=1e-5)


def test_no_strided_1x1_convolution_reaches_the_backend(monkeypatch):
    """A CelebA-64 NVAE asks the backend for no strided 1x1 convolution, so the faulty oneDNN
    kernel is never selected, whatever the CPU's SIMD width."""
    calls = []
    conv = ops.conv

    def recording_conv(x, kernel, strides=1, **kwargs):
        calls.append((tuple(kernel.shape[:2]), strides))
        return conv(x, kernel, strides=strides, **kwargs)

    monkeypatch.setattr(ops, 'conv', recording_conv)
    model = NVAE(get_config('tiny', dataset='celeba', image_size=SIZE))
    model(np.zeros((1, SIZE, SIZE, 3), np.float32), training=True)
    assert ((3, 3), 2) in calls  # the encoder's strided convs went through the recorder
    assert ((1, 1), 1) in calls
    assert [call for call in calls if call[0] == (1, 1) and call[1] > 1] == []


def test_celeba_64_trains_with_onednn(tmp_path):
    """A few Trainer-loop steps of the tiny preset on 64x64 colour images (uint8 pixels, random
    flip, as the Trainer feeds them) in a subprocess with oneDNN on: a heap corruption there fails
    this test instead of killing pytest; a hang hits the timeout."""
    script = textwrap.dedent(f"""
        import json
        import numpy as np
        import tensorflow as tf
        from nvae_tfx import datasets
        from nvae_tfx.data import transformed
        from nvae_tfx.options import TrainingOptions
        from nvae_tfx.training import checkpoints, loop

        options = TrainingOptions(
            dataset='celeba', preset='tiny', train_steps={STEPS}, batch_size={BATCH},
            steps_per_epoch={STEPS}, jit_compile='false',
        ).resolved()
        model = loop.build_model(options.model_config(image_size={SIZE}), options.jit_compile)
        images = np.random.RandomState(0).randint(0, 256, (16, {SIZE}, {SIZE}, 3), np.uint8)
        ds = tf.data.Dataset.from_tensor_slices(images).repeat().batch({BATCH}).map(
            lambda b: datasets.per_step(
                transformed.to_model_images(b), 'celeba', options.binarization, True
            )
        )
        summary = loop.train(
            model, ds.skip, options, checkpoints.TrainingState({str(tmp_path / 'state')!r}),
            {str(tmp_path / 'logs')!r},
        )
        print('SUMMARY', json.dumps(summary))
    """)
    env = {**os.environ, 'TF_ENABLE_ONEDNN_OPTS': '1'}
    proc = subprocess.run(
        [sys.executable, '-c', script],
        capture_output=True,
        text=True,
        env=env,
        cwd=configs.PROJECT_ROOT,
        timeout=600,
    )
    ended = (
        f'killed by {signal.Signals(-proc.returncode).name}'
        if proc.returncode < 0
        else f'exit code {proc.returncode}'
    )
    assert proc.returncode == 0, f'training ended with {ended}:\n{proc.stderr[-3000:]}'
    line = next(line for line in proc.stdout.splitlines() if line.startswith('SUMMARY '))
    summary = json.loads(line.removeprefix('SUMMARY '))
    assert summary['steps'] == STEPS and summary['skipped_non_finite_steps'] == 0
    assert np.isfinite(summary['final']['loss']) and summary['final']['loss'] > 0
