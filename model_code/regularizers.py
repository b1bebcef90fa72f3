"""Smoothness of the conv weights: NVAE's spectral regularisation penalty and the BN-gamma
penalty, or, as a variant (NVAEConfig.normalization), spectral normalization's estimate of the
largest singular value each kernel is divided by."""

import keras
import numpy as np
from keras import ops


def _normalize(x):
    # F.normalize(eps=1e-3): rows divided by max(|row|, 1e-3).
    return x / ops.maximum(ops.sqrt(ops.sum(ops.square(x), axis=-1, keepdims=True)), 1e-3)


def _unit(x):
    return x / ops.maximum(ops.sqrt(ops.sum(ops.square(x))), 1e-12)


def power_iteration(matrix_t, u):
    """One power-iteration step for the largest singular value of the matrix whose transpose is
    matrix_t [cols, rows], from the unit vector u [rows]: the next u (no gradient)."""
    matrix_t = ops.stop_gradient(matrix_t)
    v = _unit(ops.matmul(matrix_t, u))
    return ops.stop_gradient(_unit(ops.matmul(v, matrix_t)))


def largest_singular_value(matrix_t, u):
    """sigma = u^T W v, v = W^T u / |W^T u|, for W = matrix_t^T and the current estimate u:
    spectral normalization's sigma, whose gradient reaches W only through W itself (u and v are
    constants of the step)."""
    u = ops.stop_gradient(u)
    v = ops.stop_gradient(_unit(ops.matmul(matrix_t, u)))
    return ops.sum(u * ops.matmul(v, matrix_t))


@keras.saving.register_keras_serializable('nvae')
class SpectralRegularizer(keras.layers.Layer):
    """Sum over conv kernels of their largest singular value, sigma = u^T W v.

    Kernels are passed as [out, fan_in] matrices and batched by shape. u and v
    are non-trainable state refined by power iteration (without gradient)
    each training step; the gradient flows through W only.
    """

    def __init__(self, matrix_shapes, **kwargs):
        super().__init__(**kwargs)
        self.matrix_shapes = [tuple(s) for s in matrix_shapes]
        shapes = sorted(set(self.matrix_shapes))
        self.groups = [
            [i for i, s in enumerate(self.matrix_shapes) if s == shape] for shape in shapes
        ]
        rng = np.random.default_rng(0)
        self.u, self.v = [], []
        for shape, members in zip(shapes, self.groups, strict=True):
            rows, cols = shape
            for name, size, store in (('u', rows, self.u), ('v', cols, self.v)):
                init = rng.standard_normal((len(members), size)).astype(np.float32)
                init /= np.maximum(np.linalg.norm(init, axis=1, keepdims=True), 1e-3)
                var = self.add_weight(
                    shape=init.shape,
                    initializer='zeros',
                    trainable=False,
                    name=f'{name}_{rows}x{cols}',
                )
                var.assign(init)
                store.append(var)
        self.built = True

    def call(self, matrices, num_iterations):
        """matrices: float32 [out, fan_in] per conv, in construction order."""
        loss = 0.0
        for members, u_var, v_var in zip(self.groups, self.u, self.v, strict=True):
            weights = ops.stack([matrices[i] for i in members])  # n, rows, cols
            frozen = ops.stop_gradient(weights)

            def power_step(_, uv, frozen=frozen):
                v = _normalize(ops.einsum('nr,nrc->nc', uv[0], frozen))
                return _normalize(ops.einsum('nrc,nc->nr', frozen, v)), v

            u, v = ops.fori_loop(0, num_iterations, power_step, (u_var.value, v_var.value))
            u, v = ops.stop_gradient(u), ops.stop_gradient(v)
            u_var.assign(u)
            v_var.assign(v)
            loss = loss + ops.sum(ops.einsum('nr,nrc,nc->n', u, weights, v))
        return loss

    def get_config(self):
        return {**super().get_config(), 'matrix_shapes': self.matrix_shapes}


def batch_norm_penalty(bn_layers):
    """Sum over BatchNorm layers of max |gamma|."""
    return sum(ops.max(ops.abs(ops.cast(bn.gamma, 'float32'))) for bn in bn_layers)
