"""NVAE building blocks, channels-last, backend-agnostic Keras 3.

Every layer takes its input channel count up front (as PyTorch does) and
creates its weights in the constructor, so a model is complete, countable and
loadable before it has seen data.
"""

import math

import keras
import numpy as np
from keras import ops

from model_code import regularizers

# PyTorch's BatchNorm momentum 0.05 (new = 0.95 old + 0.05 batch) is Keras' 0.95.
BN_MOMENTUM = 0.95
BN_EPSILON = 1e-5
RESIDUAL_SCALE = 0.1  # the branch, not the skip, is scaled in every cell


def torch_uniform(fan_in):
    """PyTorch's default conv/linear init: kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in)
    return keras.initializers.RandomUniform(-bound, bound)


def channel_sums(x):
    """Sums over batch and pixels per channel of [B, H, W, C], as the product of a row of ones
    with the [BHW, C] matrix: a bandwidth-bound GEMV, faster on CPU than TensorFlow's
    reduction over leading axes for the large activations (BUILD_NOTES.md)."""
    rows = ops.reshape(x, (-1, x.shape[-1]))
    return ops.matmul(ops.ones((1, ops.shape(rows)[0]), rows.dtype), rows)[0]


def batch_moments(x):
    """Mean and biased variance per channel (two passes, as ops.moments), from channel_sums."""
    count = ops.cast(ops.size(x) // x.shape[-1], x.dtype)
    mean = channel_sums(x) / count
    return mean, channel_sums(ops.square(x - mean)) / count


def unbiased(variance, x):
    """The biased batch variance of x as the unbiased one, n / (n - 1) times it: what PyTorch's
    BatchNorm (and NVAE's synchronized one) moves its running variance with, while it normalises
    with the biased one."""
    count = ops.cast(ops.size(x) // x.shape[-1], variance.dtype)
    return variance * count / ops.maximum(count - 1.0, 1.0)


def normalize_with_batch_statistics(x, gamma, beta, mean, variance, epsilon, swish):
    """gamma (x - mean) / sqrt(variance + epsilon) + beta, then SiLU if swish, in float32, for
    statistics taken from x itself; the gradient is written out by hand.

    The forward pass is Keras' (and TensorFlow's) batch_normalization formula. mean and variance
    enter without gradient; their dependence on x is in the closed-form gradient below, which
    takes fewer passes over the activations than automatic differentiation of the moments, the
    normalisation and the activation (no broadcast copies, no recomputed sigmoid).
    """

    @ops.custom_gradient
    def forward(x, gamma, beta, mean, variance):
        inv_std = ops.rsqrt(variance + epsilon)
        scale = inv_std * gamma
        y = x * scale + (beta - mean * scale)
        if swish:
            gate = ops.sigmoid(y)
            out = y * gate

        def grad(upstream):
            # SiLU'(y) = s (1 + y - y s).
            dy = upstream * (gate * (1.0 + y - out)) if swish else upstream
            centered = x - mean
            count = ops.cast(ops.size(x) // x.shape[-1], 'float32')
            d_beta = channel_sums(dy)
            d_centered = channel_sums(dy * centered)
            # dL/dx = scale (dy - mean(dy) - xhat mean(dy xhat)), xhat = centered * inv_std.
            dx = dy * scale - (
                centered * (scale * ops.square(inv_std) * d_centered / count)
                + scale * d_beta / count
            )
            return dx, d_centered * inv_std, d_beta, ops.zeros_like(mean), ops.zeros_like(variance)

        return (out if swish else y), grad

    return forward(x, gamma, beta, mean, variance)


@keras.saving.register_keras_serializable('nvae')
class BatchNorm(keras.layers.BatchNormalization):
    """Keras' BatchNormalization (same weights, moving statistics and inference path), optionally
    followed by SiLU, whose training step on one device runs with a hand-written gradient:
    activations, statistics and gradients equal the stock layer's to float rounding.

    sampling_state: the layer also keeps a second pair of statistics, those of images drawn from
    the prior (NVAE.readjust_bn), which a call with sampling_state=True normalises with (or, in
    training mode, re-estimates); every other call keeps to the training statistics.
    """

    def __init__(self, channels, swish=False, sampling_state=False, **kwargs):
        super().__init__(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, **kwargs)
        self.swish = swish
        self.sampling_state = sampling_state
        self.build((None, None, None, channels))

    def build(self, input_shape):
        super().build(input_shape)
        if self.sampling_state:
            # float32 under mixed precision too, as the moving statistics (autocast=False).
            channels = (input_shape[-1],)
            self.sampling_mean = self.add_weight(
                shape=channels,
                initializer='zeros',
                trainable=False,
                autocast=False,
                name='sampling_mean',
            )
            self.sampling_variance = self.add_weight(
                shape=channels,
                initializer='ones',
                trainable=False,
                autocast=False,
                name='sampling_variance',
            )

    def call(self, x, training=False, sampling_state=False):
        if sampling_state:
            return self._call_sampling_state(x, training)
        if not (training and self.trainable) or self.synchronized:
            out = super().call(x, training=training)
            return ops.silu(out) if self.swish else out
        x = ops.cast(x, 'float32')
        mean, variance = (ops.stop_gradient(m) for m in batch_moments(x))
        self._move(self.moving_mean, self.moving_variance, mean, variance, x)
        out = normalize_with_batch_statistics(
            x, self.gamma.value, self.beta.value, mean, variance, self.epsilon, self.swish
        )
        return ops.cast(out, self.compute_dtype)

    def _call_sampling_state(self, x, training):
        """The inference formula of the stock layer on the sampling statistics; in training mode
        (readjustment, no gradient) on the batch's, which move the sampling statistics as a
        training step moves the moving ones."""
        if not self.sampling_state:
            raise ValueError(f'{self.name} keeps no sampling state')
        x = ops.cast(x, 'float32')
        if training:
            mean, variance = batch_moments(x)
            self._move(self.sampling_mean, self.sampling_variance, mean, variance, x)
        else:
            mean, variance = self.sampling_mean.value, self.sampling_variance.value
        out = ops.batch_normalization(
            x,
            mean,
            variance,
            axis=-1,
            offset=self.beta.value,
            scale=self.gamma.value,
            epsilon=self.epsilon,
        )
        out = ops.silu(out) if self.swish else out
        return ops.cast(out, self.compute_dtype)

    def _move(self, stored_mean, stored_variance, mean, variance, x):
        """One momentum step of stored statistics towards a batch's, the variance unbiased. (The
        synchronized path is Keras' own, which moves with the biased variance of all replicas'
        values: 1/n apart, n the global count, large in any multi-replica training.)"""
        stored_mean.assign(stored_mean * self.momentum + mean * (1.0 - self.momentum))
        stored_variance.assign(
            stored_variance * self.momentum + unbiased(variance, x) * (1.0 - self.momentum)
        )

    def reset_sampling_state(self):
        """The sampling statistics start from the training statistics, as readjustment does."""
        self.sampling_mean.assign(self.moving_mean)
        self.sampling_variance.assign(self.moving_variance)

    def get_config(self):
        config = super().get_config()
        for derived in ('momentum', 'epsilon'):
            config.pop(derived)
        return {
            **config,
            'channels': self.gamma.shape[0],
            'swish': self.swish,
            'sampling_state': self.sampling_state,
        }


def upsample_nearest(x):
    """x2 nearest-neighbour up-sampling (a resize op: its gradient is cheaper than two repeats')."""
    _, height, width, _ = x.shape
    return ops.image.resize(x, (2 * height, 2 * width), interpolation='nearest')


def _align_corners_matrix(size):
    """[2*size, size] linear-interpolation weights of a x2 resize with align_corners=True."""
    out = 2 * size
    src = np.arange(out) * ((size - 1) / (out - 1))
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, size - 1)
    frac = src - lo
    weights = np.zeros((out, size), np.float32)
    weights[np.arange(out), lo] += 1.0 - frac
    weights[np.arange(out), hi] += frac
    return weights


def upsample_bilinear_align_corners(x):
    """x2 bilinear resize with align_corners=True, as PyTorch's F.interpolate.

    Keras' UpSampling2D('bilinear') uses half-pixel centres, which gives
    different values; here the separable interpolation is two small matmuls.
    """
    _, height, width, channels = x.shape
    rows = ops.cast(_align_corners_matrix(height), x.dtype)
    cols = ops.cast(_align_corners_matrix(width), x.dtype)
    # Broadcast matrix products over reshaped views: no transposes (an einsum needs two).
    x = ops.matmul(rows, ops.reshape(x, (-1, height, width * channels)))
    x = ops.matmul(cols, ops.reshape(x, (-1, width, channels)))
    return ops.reshape(x, (-1, 2 * height, 2 * width, channels))


@keras.saving.register_keras_serializable('nvae')
class Conv2D(keras.layers.Layer):
    """Convolution with PyTorch padding, optional weight norm, kernel mask and spectral norm.

    Weight norm: kernel = exp(log_weight_norm) * w / (|w| + 1e-5) per output
    channel, with log_weight_norm initialised to log(|w| + 0.01). A mask (for
    autoregressive flows) multiplies w before normalisation.

    Spectral norm (NVAEConfig.normalization 'spectral_norm'): the weight-normalised kernel,
    as the [out, fan_in] matrix W, is divided by its largest singular value sigma, estimated as
    u^T W v from a persistent unit vector u that refine_spectral_norm moves by one power
    iteration (once per training step, NVAE.call); weight norm then sets the relative scale of
    the output channels, spectral norm the overall one. u starts as the top singular vector of
    the initial kernel, so the first steps divide by the exact value.
    """

    def __init__(
        self,
        in_channels,
        filters,
        kernel_size=1,
        strides=1,
        use_bias=True,
        weight_norm=True,
        depthwise=False,
        mask=None,
        norm_scale=1.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.strides = strides
        self.padding = (kernel_size - 1) // 2
        self.depthwise = depthwise
        self.mask = None if mask is None else np.asarray(mask, np.float32)
        # Depthwise kernels are [k, k, C, 1]; the norm is taken per C.
        self._norm_axes = (0, 1, 3) if depthwise else (0, 1, 2)
        fan_in = kernel_size * kernel_size * (1 if depthwise else in_channels)
        shape = (kernel_size, kernel_size, in_channels, 1 if depthwise else filters)
        self.kernel = self.add_weight(shape=shape, initializer=torch_uniform(fan_in), name='kernel')
        self.bias = (
            self.add_weight(shape=(filters,), initializer=torch_uniform(fan_in), name='bias')
            if use_bias
            else None
        )
        self.log_weight_norm = None
        self.built = True
        if weight_norm:
            self.log_weight_norm = self.add_weight(
                shape=(filters,), initializer='zeros', name='log_weight_norm'
            )
            norm = np.sqrt(
                np.sum(np.square(self._masked(self.kernel.numpy())), axis=self._norm_axes)
            )
            self.log_weight_norm.assign(np.log(norm + 1e-2) + math.log(norm_scale))
        self.spectral_u = None  # use_spectral_norm

    def use_spectral_norm(self):
        """From now on the kernel is spectrally normalised (NVAE turns it on for every conv)."""
        rows, _ = self.matrix_shape
        self.spectral_u = self.add_weight(
            shape=(rows,), initializer='zeros', trainable=False, name='spectral_u'
        )
        matrix = np.transpose(ops.convert_to_numpy(self._matrix_t(self._normalized_kernel())))
        self.spectral_u.assign(np.linalg.svd(matrix, full_matrices=False)[0][:, 0])

    def _masked(self, kernel):
        return kernel if self.mask is None else kernel * self.mask

    def _normalized_kernel(self):
        """The weight-normalised (where weight norm is on) masked kernel, in float32."""
        kernel = self._masked(ops.cast(self.kernel, 'float32'))
        if self.log_weight_norm is None:
            return kernel
        norm = ops.sqrt(ops.sum(ops.square(kernel), axis=self._norm_axes))
        scale = ops.exp(ops.cast(self.log_weight_norm, 'float32')) / (norm + 1e-5)
        return kernel * (scale[:, None] if self.depthwise else scale)

    def _matrix_t(self, kernel):
        """The kernel as the transpose of its [out, fan_in] matrix: [fan_in, out]."""
        rows, cols = self.matrix_shape
        return ops.reshape(kernel, (cols, rows))

    def effective_kernel(self):
        """The kernel the convolution uses, in float32 (also used by spectral regularisation)."""
        kernel = self._normalized_kernel()
        if self.spectral_u is None:
            return kernel
        sigma = regularizers.largest_singular_value(self._matrix_t(kernel), self.spectral_u.value)
        return kernel / sigma

    def refine_spectral_norm(self):
        """One power iteration of the spectral norm's vector u on the current kernel."""
        matrix_t = self._matrix_t(self._normalized_kernel())
        self.spectral_u.assign(regularizers.power_iteration(matrix_t, self.spectral_u.value))

    @property
    def matrix_shape(self):
        """Shape of the kernel as an [out, fan_in] matrix (spectral regularisation)."""
        k, _, cin, cout = self.kernel.shape
        return (cin, k * k) if self.depthwise else (cout, k * k * cin)

    def kernel_matrix(self):
        return ops.transpose(self._matrix_t(self.effective_kernel()))

    def call(self, x):
        kernel = ops.cast(self.effective_kernel(), x.dtype)
        if self.strides > 1 and self.padding:
            # PyTorch pads symmetrically; 'same' with stride 2 would shift the grid.
            p = self.padding
            x = ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]])
            padding = 'valid'
        else:
            padding = 'same' if self.padding else 'valid'
        conv = ops.depthwise_conv if self.depthwise else ops.conv
        y = conv(x, kernel, strides=self.strides, padding=padding)
        return y if self.bias is None else y + ops.cast(self.bias, y.dtype)


@keras.saving.register_keras_serializable('nvae')
class BNSwish(keras.layers.Layer):
    def __init__(self, channels, sampling_state=False, **kwargs):
        super().__init__(**kwargs)
        self.bn = BatchNorm(
            channels, swish=True, sampling_state=sampling_state, dtype=self.dtype_policy
        )

    def call(self, x, training=False, sampling_state=False):
        return self.bn(x, training=training, sampling_state=sampling_state)


@keras.saving.register_keras_serializable('nvae')
class SqueezeExcite(keras.layers.Layer):
    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        hidden = max(channels // 16, 4)
        self.fc1 = keras.layers.Dense(
            hidden,
            activation='relu',
            kernel_initializer=torch_uniform(channels),
            bias_initializer=torch_uniform(channels),
            dtype=self.dtype_policy,
        )
        self.fc2 = keras.layers.Dense(
            channels,
            activation='sigmoid',
            kernel_initializer=torch_uniform(hidden),
            bias_initializer=torch_uniform(hidden),
            dtype=self.dtype_policy,
        )
        self.fc1.build((None, channels))
        self.fc2.build((None, hidden))

    def call(self, x):
        gate = self.fc2(self.fc1(ops.mean(x, axis=(1, 2))))
        return x * gate[:, None, None, :]


@keras.saving.register_keras_serializable('nvae')
class FactorizedReduce(keras.layers.Layer):
    """Down-sampling skip: Swish, then four 1x1 stride-2 convs on shifted grids, concatenated.

    The grids start at (row, column) offsets (0, 0), (1, 1), (0, 1) and (1, 0), i.e. the four
    pixels of every 2x2 block. They are run as one 1x1 conv over the blocks' pixels stacked on
    channels, with the four kernels on the block diagonal of one kernel: the same sums (plus
    exact zeros), without the strided slices, whose gradients are full-size scatters, and
    without a strided 1x1 conv, whose oneDNN filter gradient corrupts the heap when there are
    fewer input channels than its SIMD block (BUILD_NOTES.md).
    """

    # Index of each conv's pixel in a 2x2 block flattened row-major.
    BLOCK_PIXEL = (0, 3, 1, 2)

    def __init__(self, in_channels, out_channels, **kwargs):
        super().__init__(**kwargs)
        quarter = out_channels // 4
        sizes = [quarter, quarter, quarter, out_channels - 3 * quarter]
        self.convs = [Conv2D(in_channels, n, 1, dtype=self.dtype_policy) for n in sizes]

    def call(self, x):
        _, height, width, channels = x.shape
        x = ops.reshape(ops.silu(x), (-1, height // 2, 2, width // 2, 2, channels))
        x = ops.reshape(
            ops.transpose(x, (0, 1, 3, 2, 4, 5)), (-1, height // 2, width // 2, 4 * channels)
        )
        kernels = [ops.cast(conv.effective_kernel()[0, 0], x.dtype) for conv in self.convs]
        pixel_rows = []
        for pixel in range(4):
            pixel_rows.append(
                ops.concatenate(
                    [
                        k if self.BLOCK_PIXEL[i] == pixel else ops.zeros_like(k)
                        for i, k in enumerate(kernels)
                    ],
                    axis=1,
                )
            )
        kernel = ops.concatenate(pixel_rows, axis=0)[None, None]
        bias = ops.concatenate([ops.cast(conv.bias, x.dtype) for conv in self.convs], axis=0)
        return ops.conv(x, kernel) + bias


@keras.saving.register_keras_serializable('nvae')
class UpsampleSkip(keras.layers.Layer):
    """Up-sampling skip: bilinear (align_corners) x2, then a bias-free 1x1 conv halving channels."""

    def __init__(self, in_channels, **kwargs):
        super().__init__(**kwargs)
        self.conv = Conv2D(
            in_channels, in_channels // 2, 1, use_bias=False, dtype=self.dtype_policy
        )

    def call(self, x):
        return self.conv(upsample_bilinear_align_corners(x))


@keras.saving.register_keras_serializable('nvae')
class ResidualBranch(keras.layers.Layer):
    """Encoder branch: (BN-Swish-Conv3x3) twice; only the first conv carries the stride."""

    def __init__(self, in_channels, out_channels, strides, **kwargs):
        super().__init__(**kwargs)
        dtype = self.dtype_policy
        self.act1 = BNSwish(in_channels, dtype=dtype)
        self.conv1 = Conv2D(in_channels, out_channels, 3, strides=strides, dtype=dtype)
        self.act2 = BNSwish(out_channels, dtype=dtype)
        self.conv2 = Conv2D(out_channels, out_channels, 3, dtype=dtype)

    def call(self, x, training=False, sampling_state=False):
        x = self.conv1(self.act1(x, training=training, sampling_state=sampling_state))
        return self.conv2(self.act2(x, training=training, sampling_state=sampling_state))


@keras.saving.register_keras_serializable('nvae')
class InvertedResidualBranch(keras.layers.Layer):
    """Decoder branch: [nearest x2] BN, 1x1 expand, depthwise 5x5, 1x1 project, BN.

    The expansion is relative to the input (pre-upsampling) channels; these
    convs are not weight-normalised in the official model. Its BatchNorms keep a sampling state:
    this branch is the decoder's, which sampling runs.
    """

    def __init__(self, in_channels, out_channels, expansion, upsample, **kwargs):
        super().__init__(**kwargs)
        dtype = self.dtype_policy
        hidden = int(round(in_channels * expansion))
        self.upsample = upsample
        self.bn_in = BatchNorm(in_channels, sampling_state=True, dtype=dtype)
        self.expand = Conv2D(in_channels, hidden, 1, use_bias=False, weight_norm=False, dtype=dtype)
        self.act1 = BNSwish(hidden, sampling_state=True, dtype=dtype)
        self.depthwise = Conv2D(
            hidden, hidden, 5, use_bias=False, weight_norm=False, depthwise=True, dtype=dtype
        )
        self.act2 = BNSwish(hidden, sampling_state=True, dtype=dtype)
        self.project = Conv2D(
            hidden, out_channels, 1, use_bias=False, weight_norm=False, dtype=dtype
        )
        self.bn_out = BatchNorm(out_channels, sampling_state=True, dtype=dtype)

    def call(self, x, training=False, sampling_state=False):
        bn = dict(training=training, sampling_state=sampling_state)
        x = self.act1(self.expand(self.bn_in(x, **bn)), **bn)
        if self.upsample:
            # The official model up-samples first. BatchNorm, the 1x1 conv and Swish act per
            # pixel, and a nearest-neighbour copy has the statistics of its source, so up-sampling
            # after them is the same function on a quarter of the pixels.
            x = upsample_nearest(x)
        x = self.project(self.act2(self.depthwise(x), **bn))
        return self.bn_out(x, **bn)


@keras.saving.register_keras_serializable('nvae')
class Cell(keras.layers.Layer):
    """skip(x) + 0.1 * SE(branch(x)), the residual cell used everywhere in NVAE.

    direction: 'normal' keeps the shape, 'down' halves the resolution and
    doubles the channels, 'up' does the reverse. expansion=None selects the
    encoder branch, otherwise the inverted-residual decoder branch.
    """

    def __init__(self, in_channels, direction='normal', expansion=None, use_se=True, **kwargs):
        super().__init__(**kwargs)
        dtype = self.dtype_policy
        out_channels = {'normal': in_channels, 'down': 2 * in_channels, 'up': in_channels // 2}[
            direction
        ]
        self.out_channels = out_channels
        if direction == 'down':
            self.skip = FactorizedReduce(in_channels, out_channels, dtype=dtype)
        elif direction == 'up':
            self.skip = UpsampleSkip(in_channels, dtype=dtype)
        else:
            self.skip = None
        if expansion is None:
            if direction == 'up':
                raise ValueError('the encoder branch has no up-sampling variant')
            strides = 2 if direction == 'down' else 1
            self.branch = ResidualBranch(in_channels, out_channels, strides, dtype=dtype)
        else:
            if direction == 'down':
                raise ValueError('the decoder branch has no down-sampling variant')
            self.branch = InvertedResidualBranch(
                in_channels, out_channels, expansion, upsample=direction == 'up', dtype=dtype
            )
        self.se = SqueezeExcite(out_channels, dtype=dtype) if use_se else None

    def call(self, x, training=False, sampling_state=False):
        """sampling_state: BatchNorm on the statistics of prior samples (decoder cells only)."""
        skip = x if self.skip is None else self.skip(x)
        branch = self.branch(x, training=training, sampling_state=sampling_state)
        if self.se is not None:
            branch = self.se(branch)
        return skip + RESIDUAL_SCALE * branch


@keras.saving.register_keras_serializable('nvae')
class EncoderCombiner(keras.layers.Layer):
    """Posterior features: encoder features + 1x1 conv of the decoder state."""

    def __init__(self, enc_channels, dec_channels, **kwargs):
        super().__init__(**kwargs)
        self.conv = Conv2D(dec_channels, enc_channels, 1, dtype=self.dtype_policy)

    def call(self, enc, dec):
        return enc + self.conv(dec)


@keras.saving.register_keras_serializable('nvae')
class DecoderCombiner(keras.layers.Layer):
    """New decoder state: 1x1 conv of concat(state, z)."""

    def __init__(self, channels, latent_channels, **kwargs):
        super().__init__(**kwargs)
        self.conv = Conv2D(channels + latent_channels, channels, 1, dtype=self.dtype_policy)

    def call(self, state, z):
        return self.conv(ops.concatenate([state, ops.cast(z, state.dtype)], axis=-1))


@keras.saving.register_keras_serializable('nvae')
class ELUConv(keras.layers.Layer):
    """ELU then a weight-normalised conv with bias (prior heads, output head)."""

    def __init__(self, in_channels, filters, kernel_size, **kwargs):
        super().__init__(**kwargs)
        self.conv = Conv2D(in_channels, filters, kernel_size, dtype=self.dtype_policy)

    def call(self, x):
        return self.conv(ops.elu(x))
