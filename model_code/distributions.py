"""Distributions of NVAE, always evaluated in float32.

Normal: the latent posterior and prior, with NVAE's soft clamps.
Bernoulli: the MNIST decoder. DiscretizedMixLogistic: the colour decoder.
"""

import math

import keras
import numpy as np
from keras import ops


def soft_clamp5(x):
    """5 tanh(x / 5): a differentiable clamp to [-5, 5]."""
    return 5.0 * ops.tanh(x / 5.0)


class Normal:
    """N(mu, sigma) with mu = clamp(mu), sigma = exp(clamp(log_sigma)) + 0.01, times temperature.

    The +0.01 means Normal(0, 0), the prior of the top group, has sigma 1.01.
    """

    def __init__(self, mu, log_sigma, temperature=1.0):
        self.mu = soft_clamp5(ops.cast(mu, 'float32'))
        self.sigma = (ops.exp(soft_clamp5(ops.cast(log_sigma, 'float32'))) + 1e-2) * temperature

    def sample(self, seed):
        return self.mu + self.sigma * keras.random.normal(ops.shape(self.mu), seed=seed)

    def log_prob(self, z):
        scaled = (z - self.mu) / self.sigma
        return -0.5 * ops.square(scaled) - 0.5 * math.log(2.0 * math.pi) - ops.log(self.sigma)

    def kl(self, other):
        """Elementwise KL(self || other), analytic."""
        shift = (self.mu - other.mu) / other.sigma
        ratio = self.sigma / other.sigma
        return 0.5 * (ops.square(shift) + ops.square(ratio)) - 0.5 - ops.log(ratio)


class Bernoulli:
    def __init__(self, logits):
        self.logits = ops.cast(logits, 'float32')

    def log_prob(self, x):
        return x * self.logits - ops.softplus(self.logits)

    def mean(self):
        return ops.sigmoid(self.logits)


def _mix_colours(x, coeffs):
    """Adds the linear dependence of G on R and of B on R, G; clips; maps [-1, 1] to [0, 1]."""
    r = ops.clip(x[..., 0], -1.0, 1.0)
    g = ops.clip(x[..., 1] + coeffs[..., 0] * r, -1.0, 1.0)
    b = ops.clip(x[..., 2] + coeffs[..., 1] * r + coeffs[..., 2] * g, -1.0, 1.0)
    return ops.stack([r, g, b], axis=-1) / 2.0 + 0.5


class DiscretizedMixLogistic:
    """PixelCNN++ discretised mixture of logistics over RGB in [0, 1].

    params [B, H, W, 10 M]: M mixture logits, then per colour (R, G, B) M
    means, M log-scales and M coefficients, as in NVAE. G's mean depends
    linearly on R, B's on R and G.

    edge_threshold: values of 2x-1 above it take the whole upper tail. 0.999
    keeps 8-bit pixel 254 (0.992) a normal bin, so the 256 probabilities sum
    to 1; the official 0.99 gives 254 the whole tail too.
    """

    def __init__(self, params, num_mix=10, num_bits=8, edge_threshold=0.999):
        params = ops.cast(params, 'float32')
        self.num_mix = m = num_mix
        self.max_value = 2.0**num_bits - 1.0
        self.edge_threshold = edge_threshold
        self.logits = params[..., :m]  # B, H, W, M
        rest = ops.reshape(params[..., m:], (-1, params.shape[1], params.shape[2], 3, 3 * m))
        self.means = rest[..., :m]  # B, H, W, 3, M
        self.log_scales = ops.maximum(rest[..., m : 2 * m], -7.0)
        self.coeffs = ops.tanh(rest[..., 2 * m :])

    def _centered(self, x):
        """x minus each component's mean given the preceding colours, [B, H, W, 3, M]."""
        r, g, b = x[..., 0:1], x[..., 1:2], x[..., 2:3]
        means, coeffs = self.means, self.coeffs
        return ops.stack(
            [
                r - means[..., 0, :],
                g - means[..., 1, :] - coeffs[..., 0, :] * r,
                b - means[..., 2, :] - coeffs[..., 1, :] * r - coeffs[..., 2, :] * g,
            ],
            axis=3,
        )

    def log_prob(self, images):
        """log p(images) per pixel, [B, H, W]; images in [0, 1] on the 2^bits grid."""
        x = 2.0 * ops.cast(images, 'float32') - 1.0
        centered = self._centered(x)
        inv_scale = ops.exp(-self.log_scales)
        plus_in = inv_scale * (centered + 1.0 / self.max_value)
        min_in = inv_scale * (centered - 1.0 / self.max_value)
        mid_in = inv_scale * centered
        log_cdf_plus = plus_in - ops.softplus(plus_in)  # log sigmoid(plus_in)
        log_one_minus_cdf_min = -ops.softplus(min_in)
        cdf_delta = ops.sigmoid(plus_in) - ops.sigmoid(min_in)
        # Where the bin mass underflows, use the density at the centre times the bin width.
        log_pdf_mid = mid_in - self.log_scales - 2.0 * ops.softplus(mid_in)
        log_bin = ops.where(
            cdf_delta > 1e-5,
            ops.log(ops.maximum(cdf_delta, 1e-10)),
            log_pdf_mid - np.log(self.max_value / 2.0),
        )
        xs = x[..., None]
        log_probs = ops.where(
            xs < -0.999,
            log_cdf_plus,
            ops.where(xs > self.edge_threshold, log_one_minus_cdf_min, log_bin),
        )
        log_probs = ops.sum(log_probs, axis=3) + ops.log_softmax(self.logits, axis=-1)
        return ops.logsumexp(log_probs, axis=-1)

    def _select(self, values, onehot):
        return ops.sum(values * onehot[..., None, :], axis=-1)

    def sample(self, seed, temperature=1.0):
        """Samples in [0, 1]. Temperature sharpens the component choice and
        multiplies the logistic scale by t (the official code divides by t,
        which adds noise at low temperature)."""
        u = keras.random.uniform(ops.shape(self.logits), 1e-5, 1.0 - 1e-5, seed=seed)
        gumbel = -ops.log(-ops.log(u))
        choice = ops.argmax(self.logits / temperature + gumbel, axis=-1)
        onehot = ops.one_hot(choice, self.num_mix, dtype='float32')
        means = self._select(self.means, onehot)  # B, H, W, 3
        scales = ops.exp(self._select(self.log_scales, onehot)) * temperature
        coeffs = self._select(self.coeffs, onehot)
        u = keras.random.uniform(ops.shape(means), 1e-5, 1.0 - 1e-5, seed=seed)
        return _mix_colours(means + scales * (ops.log(u) - ops.log(1.0 - u)), coeffs)

    def mean(self):
        """Mixture-weighted mean image in [0, 1] (used for FID in the official code)."""
        weights = ops.softmax(self.logits, axis=-1)
        means = self._select(self.means, weights)
        return _mix_colours(means, self._select(self.coeffs, weights))
