"""NaN/Inf guard. Non-finite steps never reach the weights: the optimizer is wrapped in Keras'
LossScaleOptimizer, which applies an update only when every gradient is finite, and the training
step rolls back, on the device, what the forward pass of a skipped step changed (BatchNorm moving
statistics, power-iteration vectors, the KL schedule's step). A callback reads the optimizer's
step counter every `patience` batches and at epoch end (never every step: on an accelerator a
per-step read idles it), reports the skipped steps, steps back to the last finite checkpoint when
no update was applied for `patience` batches in a row, and fails the Trainer when divergence
recurs."""

import keras
import tensorflow as tf
from absl import logging

from nvae_tfx.training import checkpoints


class DivergenceError(RuntimeError):
    pass


def roll_back_skipped_steps(model):
    """Wraps the compiled model's training step: where the optimizer skipped the update, the
    non-trainable state returns to its value before the step (decided on the device)."""
    train_step = model.train_step

    def guarded_train_step(data):
        state = model.non_trainable_variables
        before = [tf.identity(v.value) for v in state]
        step_before = tf.identity(model.optimizer.iterations.value)
        logs = train_step(data)
        applied = model.optimizer.iterations.value > step_before
        for variable, value in zip(state, before, strict=True):
            variable.assign(tf.where(applied, variable.value, value))
        return logs

    model.train_step = guarded_train_step


class NonFiniteGuard(keras.callbacks.Callback):
    def __init__(self, state: checkpoints.TrainingState, patience: int = 20, max_restores: int = 2):
        super().__init__()
        self.state = state
        self.patience = patience
        self.max_restores = max_restores
        self.skipped = 0
        self.restores = 0
        # Batches without an applied update, counted over whole check windows only: a lower
        # bound of the consecutive skips, so a restore comes at most one window late, never early.
        self._consecutive = 0
        self._batches = 0
        self._last_step = None

    def on_train_begin(self, logs=None):
        self._last_step = checkpoints.step(self.model)

    def on_train_batch_end(self, batch, logs=None):
        self._batches += 1
        if self._batches >= self.patience:
            self._check()

    def on_epoch_end(self, epoch, logs=None):
        self._check()

    def on_train_end(self, logs=None):
        self._check()

    def _check(self):
        if not self._batches:
            return
        step = checkpoints.step(self.model)
        applied = step - self._last_step
        skipped = self._batches - applied
        self._batches, self._last_step = 0, step
        if not skipped:
            self._consecutive = 0
            return
        self.skipped += skipped
        logging.warning(
            'Non-finite loss or gradient: %d update(s) skipped before step %d (%d so far).',
            skipped,
            step,
            self.skipped,
        )
        self._consecutive = 0 if applied else self._consecutive + skipped
        if self._consecutive < self.patience:
            return
        if self.restores >= self.max_restores or not self.state.exists():
            raise DivergenceError(
                f'Training diverged: {self._consecutive} consecutive non-finite steps at step '
                f'{step} after {self.restores} restore(s) of the last good checkpoint. '
                'Lower the learning rate or raise weight_decay_norm (see README).'
            )
        self._last_step = self.state.restore(self.model).step
        self.restores += 1
        self._consecutive = 0
        logging.warning(
            'Persistent divergence: restored the last good checkpoint (step %d).', self._last_step
        )
