"""Shift-only inverse autoregressive flows on the posterior samples (--num_nf).

Each flow is a pair of cells, the second with spatially mirrored masks so the
pair sees context from both sides. A cell computes z - mu(z) with mu
autoregressive in raster order (and in channel order at the centre pixel),
so the Jacobian is triangular with unit diagonal: log det = 0.
"""

import keras
import numpy as np
from keras import ops

from model_code.layers import Conv2D

EXPANSION = 6


def autoregressive_mask(kernel_size, in_channels, out_channels, zero_diag, mirror, depthwise=False):
    """Kernel mask in Keras layout [k, k, in, out] ([k, k, C, 1] for depthwise).

    Rows above the centre and pixels left of it are visible. At the centre,
    channels are split into ordered blocks: an output block sees input blocks
    before it, and its own block too unless zero_diag.
    """
    k, m = kernel_size, (kernel_size - 1) // 2
    if depthwise:
        centre = np.full((in_channels, 1), 0.0 if zero_diag else 1.0)
    else:
        common = min(in_channels, out_channels)
        in_block = np.arange(in_channels)[:, None] // (in_channels // common)
        out_block = np.arange(out_channels)[None, :] // (out_channels // common)
        centre = (in_block < out_block) if zero_diag else (in_block <= out_block)
    mask = np.zeros((k, k) + centre.shape, np.float32)
    mask[:m] = 1.0
    mask[m, :m] = 1.0
    mask[m, m] = centre
    return mask[::-1, ::-1].copy() if mirror else mask


@keras.saving.register_keras_serializable('nvae')
class AutoregressiveShift(keras.layers.Layer):
    """z - mu(z): masked 3x3 expand, ELU, masked depthwise 5x5, ELU, ELU, masked 1x1."""

    def __init__(self, num_z, mirror, **kwargs):
        super().__init__(**kwargs)
        hidden = EXPANSION * num_z
        dtype = self.dtype_policy
        self.expand = Conv2D(
            num_z,
            hidden,
            3,
            use_bias=False,
            dtype=dtype,
            mask=autoregressive_mask(3, num_z, hidden, True, mirror),
        )
        self.depthwise = Conv2D(
            hidden,
            hidden,
            5,
            use_bias=False,
            depthwise=True,
            dtype=dtype,
            mask=autoregressive_mask(5, hidden, hidden, False, mirror, depthwise=True),
        )
        # A 0.1 initial scale keeps the flow close to the identity at the start.
        self.shift = Conv2D(
            hidden,
            num_z,
            1,
            norm_scale=0.1,
            dtype=dtype,
            mask=autoregressive_mask(1, hidden, num_z, False, mirror),
        )

    def call(self, z):
        h = ops.elu(self.expand(ops.cast(z, self.compute_dtype)))
        h = ops.elu(self.depthwise(h))
        return z - ops.cast(self.shift(ops.elu(h)), z.dtype)


@keras.saving.register_keras_serializable('nvae')
class PairedFlow(keras.layers.Layer):
    def __init__(self, num_z, **kwargs):
        super().__init__(**kwargs)
        self.forward_cell = AutoregressiveShift(num_z, mirror=False, dtype=self.dtype_policy)
        self.mirrored_cell = AutoregressiveShift(num_z, mirror=True, dtype=self.dtype_policy)

    def call(self, z):
        return self.mirrored_cell(self.forward_cell(z))
