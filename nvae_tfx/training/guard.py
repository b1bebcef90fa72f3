"""NaN/Inf guard. Non-finite steps never reach the weights: the optimizer is wrapped in Keras'
LossScaleOptimizer, which applies an update only when every gradient is finite. This callback
counts those skipped steps (the optimizer's step counter did not advance) and rolls back what
the forward pass itself changed (BatchNorm moving statistics, power-iteration vectors, the KL
schedule's step), steps back to the last finite checkpoint when skips persist, and fails the
Trainer when divergence recurs."""

import keras
import tensorflow as tf
from absl import logging

from nvae_tfx.training import checkpoints


class DivergenceError(RuntimeError):
    pass


class NonFiniteGuard(keras.callbacks.Callback):
    def __init__(self, state: checkpoints.TrainingState, patience: int = 20, max_restores: int = 2):
        super().__init__()
        self.state = state
        self.patience = patience
        self.max_restores = max_restores
        self.skipped = 0
        self.restores = 0
        self._consecutive = 0
        self._last_step = None
        self._state_before = []

    def on_train_batch_begin(self, batch, logs=None):
        self._last_step = checkpoints.step(self.model)
        self._state_before = [tf.identity(v.value) for v in self.model.non_trainable_variables]

    def on_train_batch_end(self, batch, logs=None):
        if checkpoints.step(self.model) != self._last_step:
            self._consecutive = 0
            return
        for variable, value in zip(
            self.model.non_trainable_variables, self._state_before, strict=True
        ):
            variable.assign(value)
        self.skipped += 1
        self._consecutive += 1
        logging.warning(
            'Non-finite loss or gradient at step %d: update skipped (%d so far).',
            self._last_step,
            self.skipped,
        )
        if self._consecutive < self.patience:
            return
        if self.restores >= self.max_restores or not self.state.exists():
            raise DivergenceError(
                f'Training diverged: {self._consecutive} consecutive non-finite steps at step '
                f'{self._last_step} after {self.restores} restore(s) of the last good checkpoint. '
                'Lower the learning rate or raise weight_decay_norm (see README).'
            )
        step = self.state.restore(self.model).step
        self.restores += 1
        self._consecutive = 0
        logging.warning('Persistent divergence: restored the last good checkpoint (step %d).', step)
