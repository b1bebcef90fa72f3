"""The model's faster formulations equal the straightforward ones they replace, values and
gradients, to float32 rounding, on TensorFlow and on JAX. Each case builds (rewritten,
straightforward, inputs).
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from keras import ops

from model_code.layers import (
    BN_EPSILON,
    FactorizedReduce,
    InvertedResidualBranch,
    _align_corners_matrix,
    batch_moments,
    normalize_with_batch_statistics,
    upsample_bilinear_align_corners,
    upsample_nearest,
)
from pipeline import configs
from tests.support.reference_formulations import strided_factorized_reduce

REPO = configs.PROJECT_ROOT


def _normal(shape, seed, scale=1.0, shift=0.0):
    return (scale * np.random.default_rng(seed).standard_normal(shape) + shift).astype('float32')


def batch_norm_case(shape=(4, 6, 6, 8), swish=True):
    """BatchNorm training step (+ SiLU) with the hand-written gradient vs Keras' formulas."""
    channels = shape[-1]
    # Activations with a mean far from zero, as after a residual stack.
    x = _normal(shape, 0, 3.0, 2.0)
    gamma = np.random.default_rng(1).uniform(0.5, 1.5, channels).astype('float32')
    beta = _normal(channels, 2)

    def stock(x, gamma, beta):  # what Keras' BatchNormalization + SiLU compute in training
        mean, variance = ops.moments(x, axes=(0, 1, 2))
        y = ops.batch_normalization(x, mean, variance, -1, beta, gamma, BN_EPSILON)
        return ops.silu(y) if swish else y

    def fused(x, gamma, beta):
        mean, variance = (ops.stop_gradient(m) for m in batch_moments(x))
        return normalize_with_batch_statistics(x, gamma, beta, mean, variance, BN_EPSILON, swish)

    return fused, stock, (x, gamma, beta)


def factorized_reduce_case(shape=(2, 8, 8, 6)):
    layer = FactorizedReduce(shape[-1], 2 * shape[-1])

    def four_strided_convs(x):  # the official formulation
        return strided_factorized_reduce(layer, x)

    return layer, four_strided_convs, (_normal(shape, 3),)


def bilinear_case(shape=(2, 3, 5, 4)):
    def einsums(x):
        x = ops.einsum('ih,bhwc->biwc', _align_corners_matrix(shape[1]), x)
        return ops.einsum('jw,biwc->bijc', _align_corners_matrix(shape[2]), x)

    return upsample_bilinear_align_corners, einsums, (_normal(shape, 4),)


def nearest_case(shape=(2, 3, 4, 5)):
    def repeats(x):
        return ops.repeat(ops.repeat(x, 2, axis=1), 2, axis=2)

    return upsample_nearest, repeats, (_normal(shape, 5),)


def up_branch_case(shape=(3, 4, 4, 4), expansion=3):
    """Decoder up-sampling branch: BN, expand and BN-Swish before the nearest x2 copy."""
    branch = InvertedResidualBranch(shape[-1], shape[-1] // 2, expansion, upsample=True)

    def upsample_first(x):  # the official order
        x = branch.expand(branch.bn_in(upsample_nearest(x), training=True))
        x = branch.depthwise(branch.act1(x, training=True))
        return branch.bn_out(branch.project(branch.act2(x, training=True)), training=True)

    return lambda x: branch(x, training=True), upsample_first, (_normal(shape, 6, 2.0, 1.0),)


CASES = {
    'batch_norm': lambda: batch_norm_case(swish=False),
    'batch_norm_swish': batch_norm_case,
    'factorized_reduce': factorized_reduce_case,
    'upsample_bilinear': bilinear_case,
    'upsample_nearest': nearest_case,
    'up_branch': up_branch_case,
}


def gradients(fn, *args):
    """d fn(*args) / d args, as numpy arrays, on the current backend (fn returns a scalar)."""
    if keras.backend.backend() == 'tensorflow':
        import tensorflow as tf

        args = [tf.convert_to_tensor(a) for a in args]
        with tf.GradientTape() as tape:
            tape.watch(args)
            value = fn(*args)
        return [g.numpy() for g in tape.gradient(value, args)]
    import jax

    return [np.asarray(g) for g in jax.grad(fn, argnums=tuple(range(len(args))))(*args)]


def np_(x):
    return np.asarray(ops.convert_to_numpy(x))


def relative_error(a, b):
    a, b = np.asarray(a, 'float64'), np.asarray(b, 'float64')
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def errors(new, old, args):
    """Largest relative error of new against old: the value, then the gradient of a random
    projection of the output with respect to each input."""
    reference = np_(old(*args))
    probe = _normal(reference.shape, 8)
    found = [relative_error(np_(new(*args)), reference)]
    new_grads = gradients(lambda *a: ops.sum(new(*a) * probe), *args)
    old_grads = gradients(lambda *a: ops.sum(old(*a) * probe), *args)
    return found + [relative_error(n, o) for n, o in zip(new_grads, old_grads, strict=True)]


def measure():
    result = {'backend': keras.backend.backend()}
    for name, case in CASES.items():
        result[name] = errors(*case())
    return result


@pytest.mark.parametrize('backend', ['tensorflow', 'jax'])
def test_rewrites_equal_the_formulations_they_replace(backend):
    run = subprocess.run(
        [
            sys.executable,
            '-c',
            'import json; from tests.unit.test_exact_rewrites import measure; '
            'print(json.dumps(measure()))',
        ],
        env={**os.environ, 'KERAS_BACKEND': backend, 'PYTHONPATH': REPO},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result.pop('backend') == backend
    assert set(result) == set(CASES)
    for name, found in result.items():
        # [value, gradient of each input]; only the order of float32 sums differs.
        assert len(found) >= 2, name
        assert max(found) < 1e-5, (name, found)
