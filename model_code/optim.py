"""Optimiser of NVAE: Adamax with the official epsilon placement and coupled L2,
and a learning rate that warms up linearly then follows a cosine to a floor."""

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable('nvae')
class NVAEAdamax(keras.optimizers.Optimizer):
    """Adamax as in NVAE's thirdparty/adamax.py.

    g <- g + l2 * w (coupled L2, unlike Keras' decoupled weight_decay),
    m <- b1 m + (1 - b1) g, u <- max(b2 u, |g| + eps), w <- w - lr / (1 - b1^t) * m / u.
    Keras' Adamax divides by (u + eps) instead.
    """

    def __init__(
        self,
        learning_rate=1e-2,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-3,
        l2=3e-4,
        name='nvae_adamax',
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.l2 = l2

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._m, self._u = self.add_optimizer_variables(var_list, ['momentum', 'norm'])

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype) + self.l2 * variable
        step = ops.cast(self.iterations + 1, dtype)
        index = self._get_variable_index(variable)
        m, u = self._m[index], self._u[index]
        self.assign_add(m, (gradient - m) * (1.0 - self.beta_1))
        self.assign(u, ops.maximum(self.beta_2 * u, ops.abs(gradient) + self.epsilon))
        self.assign_sub(variable, lr / (1.0 - ops.power(self.beta_1, step)) * m / u)

    def get_config(self):
        return {
            **super().get_config(),
            'beta_1': self.beta_1,
            'beta_2': self.beta_2,
            'epsilon': self.epsilon,
            'l2': self.l2,
        }


@keras.saving.register_keras_serializable('nvae')
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """lr * step / warmup for the first warmup steps, then a cosine from lr to lr_min
    over the remaining steps (the official code steps the cosine once per epoch)."""

    def __init__(self, learning_rate, learning_rate_min, warmup_steps, total_steps):
        self.learning_rate = learning_rate
        self.learning_rate_min = learning_rate_min
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps

    def __call__(self, step):
        step = ops.cast(step, 'float32')
        warmup = self.learning_rate * step / max(self.warmup_steps, 1)
        progress = ops.clip(
            (step - self.warmup_steps) / max(self.total_steps - self.warmup_steps, 1), 0.0, 1.0
        )
        cosine = self.learning_rate_min + 0.5 * (self.learning_rate - self.learning_rate_min) * (
            1.0 + ops.cos(math.pi * progress)
        )
        return ops.where(step < self.warmup_steps, warmup, cosine)

    def get_config(self):
        return {
            'learning_rate': self.learning_rate,
            'learning_rate_min': self.learning_rate_min,
            'warmup_steps': self.warmup_steps,
            'total_steps': self.total_steps,
        }


def learning_rate_schedule(config) -> WarmupCosine:
    """The config's learning rate per step: what the optimizer applies and the model logs."""
    return WarmupCosine(
        config.learning_rate, config.learning_rate_min, config.warmup_steps, config.total_steps
    )


def make_optimizer(config):
    """Adamax on the warm-up/cosine schedule; loss scaling (initial 2^10) for float16."""
    optimizer = NVAEAdamax(
        learning_rate_schedule(config), epsilon=config.adamax_epsilon, l2=config.weight_decay
    )
    if config.mixed_precision == 'mixed_float16':
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer, initial_scale=2.0**10)
    return optimizer
