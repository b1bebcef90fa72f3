"""Training state on disk: every model and optimizer variable in one file, replaced atomically,
so a killed Trainer resumes from the newest complete checkpoint and a diverged one can step back
to the last finite state. With the variables the file holds how many batches of the data stream
were consumed (where a resumed run continues the stream) and a fingerprint of the model code and
configuration that wrote it (a checkpoint of other code is not resumed)."""

import dataclasses
import hashlib
import io
import json
import pathlib
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf
from absl import logging

import model_code

STATE_FILE = 'training_state.npz'
_FINGERPRINT, _BATCHES = 'fingerprint', 'batches_consumed'


class Position(NamedTuple):
    step: int  # optimizer updates applied
    batches: int  # batches of the training stream consumed (skipped non-finite steps included)


def fingerprint(config) -> str:
    """Hash of every source file of model_code and of the model configuration: what decides
    whether saved variables mean the same thing to this code."""
    digest = hashlib.sha256(json.dumps(dataclasses.asdict(config), sort_keys=True).encode())
    for source in sorted(pathlib.Path(model_code.__file__).parent.glob('*.py')):
        digest.update(source.name.encode() + b'\0' + source.read_bytes())
    return digest.hexdigest()[:16]


def training_key(options: dict, train_steps: int, data: str, base_model: str | None) -> str:
    """Which training a checkpoint belongs to, the same for every run and job that would train
    the same model: its options (TrainingOptions.to_custom_config), steps, training data (its
    content, not where a run wrote it) and, for a warm start, the model it starts from. Not the
    code: a checkpoint of other model code is refused when read (written_by_other_code), while
    edits elsewhere (evaluation, logging) leave the training to resume."""
    identity = {'options': options, 'train_steps': train_steps, 'data': data}
    if base_model:
        identity['base_model'] = base_model
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def _variables(model):
    # variables, not weights: the seed generators' states too, so that a resumed run draws the
    # model noise the uninterrupted run would have drawn.
    return list(model.variables) + list(model.optimizer.variables)


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

    def save(self, model, batches: int) -> bool:
        """Saves if every weight is finite (a non-finite state is never a restore point);
        batches: how many batches of the training stream have been consumed."""
        if not all_finite(model):
            logging.warning('Not checkpointing step %d: the weights are not finite.', step(model))
            return False
        values = [keras.ops.convert_to_numpy(v) for v in _variables(model)]
        if not self.writer:
            return True
        buffer = io.BytesIO()
        np.savez(
            buffer,
            *values,
            **{_FINGERPRINT: fingerprint(model.config), _BATCHES: np.int64(batches)},
        )
        tf.io.gfile.makedirs(self.directory)
        tmp = self.path + '.tmp'
        with tf.io.gfile.GFile(tmp, 'wb') as f:
            f.write(buffer.getvalue())
        tf.io.gfile.rename(tmp, self.path, overwrite=True)
        return True

    def _load(self):
        with tf.io.gfile.GFile(self.path, 'rb') as f:
            return np.load(io.BytesIO(f.read()))

    def written_by_other_code(self, model) -> str:
        """Why the checkpoint cannot be resumed by this model code and configuration, or ''."""
        saved = self._load()
        if _FINGERPRINT not in saved.files:
            return 'it was written without a code fingerprint'
        theirs, ours = str(saved[_FINGERPRINT]), fingerprint(model.config)
        if theirs != ours:
            return (
                f'it was written by other model code or configuration '
                f'(fingerprint {theirs}, this run {ours})'
            )
        return ''

    def restore(self, model) -> Position:
        """Loads the saved state into a built, compiled model; returns where it was saved."""
        variables = _variables(model)
        saved = self._load()
        count = sum(name.startswith('arr_') for name in saved.files)
        values = [saved[f'arr_{i}'] for i in range(count)]
        if len(values) != len(variables) or any(
            tuple(v.shape) != a.shape for v, a in zip(variables, values, strict=True)
        ):
            raise ValueError(
                f'{self.path}: checkpoint does not match this model and optimizer '
                '(was the configuration changed?)'
            )
        for variable, value in zip(variables, values, strict=True):
            variable.assign(value)
        return Position(step(model), int(saved[_BATCHES]))


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
    """Saves the training state every `every_steps` optimizer steps and at every epoch end,
    counting the batches consumed from `first_batch` on."""

    def __init__(self, state: TrainingState, every_steps: int, first_batch: int = 0):
        super().__init__()
        self.state = state
        self.every_steps = every_steps
        self.batches = first_batch

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._due = self._next_due(self._bound)

    def _next_due(self, done: int) -> int:
        return (done // self.every_steps + 1) * self.every_steps if self.every_steps else 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1
        if not self.every_steps:
            return
        done = self.step_if_reached(self._due)
        if done is not None and done >= self._due:
            self.state.save(self.model, self.batches)
            self._due = self._next_due(done)

    def on_epoch_end(self, epoch, logs=None):
        self.state.save(self.model, self.batches)
