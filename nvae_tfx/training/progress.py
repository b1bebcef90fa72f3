"""The Trainer's progress for a person watching: a bar redrawn in place on a terminal, one line
per epoch otherwise (logs, CI), each with the steps applied, the losses and the time left.

Counts are of applied updates, the measure of --train_steps: a step skipped as non-finite does
not count, and the extra epoch that makes up for skipped steps says so instead of "epoch 7/6".
"""

import math
import sys
import time

import keras

from nvae_tfx.durations import format_duration
from nvae_tfx.training import checkpoints

# The losses shown, when the model logs them: the objective and its two terms.
SHOWN = ('loss', 'recon', 'kl', 'val_loss')
REDRAW_SECONDS = 0.5


class TrainingProgress(keras.callbacks.Callback):
    def __init__(self, total_steps: int, steps_per_epoch: int, stream=None, interactive=None):
        """interactive: draw a bar (default: when the stream is a terminal)."""
        super().__init__()
        self.total_steps = total_steps
        self.steps_per_epoch = steps_per_epoch
        self.epochs = math.ceil(total_steps / steps_per_epoch)
        self.stream = stream or sys.stdout
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self._first_step = None  # (step, time) after the first update: tracing excluded
        self._drawn = 0.0
        self._epoch = 0
        self._announced = False

    def on_train_begin(self, logs=None):
        # A resumed run may fit twice (the rest of its epoch, then whole epochs): say it once.
        step = checkpoints.step(self.model)
        if step and not self._announced:
            self._write(f'resumed at step {step} of {self.total_steps}\n')
        self._announced = True

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        # The step lives on the device: it is read after the first update, then only to redraw
        # the bar (at most every REDRAW_SECONDS) and at epoch ends, never once per step.
        now = time.time()
        if self._first_step is None:
            self._first_step = (checkpoints.step(self.model), now)
        elif self.interactive and now - self._drawn >= REDRAW_SECONDS:
            self._drawn = now
            line = self._line(checkpoints.step(self.model), logs, bar=True)
            self._write('\r' + line + '\x1b[K')

    def on_epoch_end(self, epoch, logs=None):
        line = self._line(checkpoints.step(self.model), logs, bar=False)
        # On a terminal the epoch's line replaces its bar; the next epoch draws a new one below.
        self._write('\r' + line + '\x1b[K\n' if self.interactive else line + '\n')

    def _epoch_label(self) -> str:
        number = self._epoch + 1
        if number > self.epochs:  # only runs when steps were skipped as non-finite
            return f'extra epoch {number - self.epochs} (making up skipped steps)'
        return f'epoch {number}/{self.epochs}'

    def _line(self, step: int, logs, bar: bool) -> str:
        parts = [self._epoch_label(), f'step {step}/{self.total_steps}']
        if bar:
            filled = round(20 * min(step, self.total_steps) / self.total_steps)
            parts.insert(0, '[' + '#' * filled + '.' * (20 - filled) + ']')
        logs = logs or {}
        parts += [f'{k} {float(logs[k]):.2f}' for k in SHOWN if k in logs]
        parts.append(self._time_left(step))
        return '  '.join(parts)

    def _time_left(self, step: int) -> str:
        if self._first_step is None or step <= self._first_step[0]:
            return 'time left: estimating'
        first, since = self._first_step
        per_step = (time.time() - since) / (step - first)
        left = max(0, self.total_steps - step) * per_step
        return f'{per_step:.2f} s/step, {format_duration(left)} left'

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()
