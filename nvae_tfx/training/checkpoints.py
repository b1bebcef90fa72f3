"""Training state on disk: every model and optimizer variable in one file, replaced atomically,
so a killed Trainer resumes from the newest complete checkpoint and a diverged one can step back
to the last finite state."""

import io

import keras
import numpy as np
import tensorflow as tf
from absl import logging

STATE_FILE = 'training_state.npz'


def _variables(model):
    return list(model.weights) + list(model.optimizer.variables)


def step(model) -> int:
    """Optimizer steps applied so far (the variable is mirrored under a distribution strategy)."""
    return int(keras.ops.convert_to_numpy(model.optimizer.iterations))


def all_finite(model) -> bool:
    return all(
        np.isfinite(keras.ops.convert_to_numpy(v)).all()
        for v in model.weights
        if v.dtype.startswith('float')
    )


class TrainingState:
    def __init__(self, directory: str, writer: bool = True):
        """writer: False on all but one worker of a multi-worker run; the others go through the
        same steps (reading distributed variables may need every worker) but write nothing."""
        self.directory = directory
        self.writer = writer
        self.path = f'{directory.rstrip("/")}/{STATE_FILE}'

    def exists(self) -> bool:
        return tf.io.gfile.exists(self.path)

    def save(self, model) -> bool:
        """Saves if every weight is finite (a non-finite state is never a restore point)."""
        if not all_finite(model):
            logging.warning('Not checkpointing step %d: the weights are not finite.', step(model))
            return False
        values = [keras.ops.convert_to_numpy(v) for v in _variables(model)]
        if not self.writer:
            return True
        buffer = io.BytesIO()
        np.savez(buffer, *values)
        tf.io.gfile.makedirs(self.directory)
        tmp = self.path + '.tmp'
        with tf.io.gfile.GFile(tmp, 'wb') as f:
            f.write(buffer.getvalue())
        tf.io.gfile.rename(tmp, self.path, overwrite=True)
        return True

    def restore(self, model) -> int:
        """Loads the saved state into a built, compiled model; returns the restored step."""
        variables = _variables(model)
        with tf.io.gfile.GFile(self.path, 'rb') as f:
            saved = np.load(io.BytesIO(f.read()))
            values = [saved[f'arr_{i}'] for i in range(len(saved.files))]
        if len(values) != len(variables) or any(
            tuple(v.shape) != a.shape for v, a in zip(variables, values, strict=True)
        ):
            raise ValueError(
                f'{self.path}: checkpoint does not match this model and optimizer '
                '(was the configuration changed?)'
            )
        for variable, value in zip(variables, values, strict=True):
            variable.assign(value)
        return step(model)


class StepWatcher(keras.callbacks.Callback):
    """Base of callbacks that act when the optimizer's step reaches a target. The step advances by
    at most one per batch, so the last value read plus the batches since bound it from above: the
    device is read only when that bound reaches the target, not every step."""

    def on_train_begin(self, logs=None):
        self._bound = step(self.model)

    def step_if_reached(self, target: int) -> int | None:
        """Call once per batch: the applied step when it may have reached `target`, else None."""
        self._bound += 1
        if self._bound < target:
            return None
        self._bound = step(self.model)
        return self._bound


class Checkpointer(StepWatcher):
    """Saves the training state every `every_steps` optimizer steps and at every epoch end."""

    def __init__(self, state: TrainingState, every_steps: int):
        super().__init__()
        self.state = state
        self.every_steps = every_steps

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._due = self._next_due(self._bound)

    def _next_due(self, done: int) -> int:
        return (done // self.every_steps + 1) * self.every_steps if self.every_steps else 0

    def on_train_batch_end(self, batch, logs=None):
        if not self.every_steps:
            return
        done = self.step_if_reached(self._due)
        if done is not None and done >= self._due:
            self.state.save(self.model)
            self._due = self._next_due(done)

    def on_epoch_end(self, epoch, logs=None):
        self.state.save(self.model)
