"""NaN/Inf guard. Non-finite steps never reach the weights: the optimizer is wrapped in Keras'
LossScaleOptimizer, which applies an update only when every gradient is finite. This callback
counts those skipped steps (the optimizer's step counter did not advance), steps back to the
last finite checkpoint when they persist, and fails the Trainer when divergence recurs."""
import keras
from absl import logging

from components.training.checkpoints import TrainingState


class DivergenceError(RuntimeError):
  pass


class NonFiniteGuard(keras.callbacks.Callback):

  def __init__(self, state: TrainingState, patience: int = 20, max_restores: int = 2):
    super().__init__()
    self.state = state
    self.patience = patience
    self.max_restores = max_restores
    self.skipped = 0
    self.restores = 0
    self._consecutive = 0
    self._last_step = None

  def on_train_batch_begin(self, batch, logs=None):
    self._last_step = int(self.model.optimizer.iterations)

  def on_train_batch_end(self, batch, logs=None):
    if int(self.model.optimizer.iterations) != self._last_step:
      self._consecutive = 0
      return
    self.skipped += 1
    self._consecutive += 1
    logging.warning('Non-finite loss or gradient at step %d: update skipped (%d so far).',
                    self._last_step, self.skipped)
    if self._consecutive < self.patience:
      return
    if self.restores >= self.max_restores or not self.state.exists():
      raise DivergenceError(
          f'Training diverged: {self._consecutive} consecutive non-finite steps at step '
          f'{self._last_step} after {self.restores} restore(s) of the last good checkpoint. '
          'Lower the learning rate or raise weight_decay_norm (see README).')
    step = self.state.restore(self.model)
    self.restores += 1
    self._consecutive = 0
    logging.warning('Persistent divergence: restored the last good checkpoint (step %d).', step)
