"""The training loop around model.fit: resume, checkpoints, the NaN guard, TensorBoard and a
summary file."""

import math
import time

import keras
import tensorflow as tf
from absl import logging

from model_code.nvae import NVAE
from model_code.optim import make_optimizer
from nvae_tfx import strict_json
from nvae_tfx.options import JIT_COMPILE, TrainingOptions
from nvae_tfx.training import checkpoints, guard, monitoring, progress


def build_model(config, jit_compile: str):
    """NVAE compiled with Adamax; every step goes through a LossScaleOptimizer so that non-finite
    gradients skip the update (float32 uses scale 1, float16 NVAE's 2^10).
    jit_compile: one of JIT_COMPILE, 'auto' for XLA where Keras supports it."""
    if jit_compile not in JIT_COMPILE:
        raise ValueError(f'jit_compile must be one of {JIT_COMPILE}, got {jit_compile!r}')
    model = NVAE(config)
    optimizer = make_optimizer(config)
    if not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer, initial_scale=1.0)
    model.compile(
        optimizer=optimizer, jit_compile={'true': True, 'false': False}.get(jit_compile, 'auto')
    )
    optimizer.build(model.trainable_variables)
    guard.roll_back_skipped_steps(model)
    return model


def warm_start(model, base_model) -> None:
    """Starts `model` from the weights of a saved NVAE (NVAE.save; a Model artifact's Keras
    file), whose preset and overrides must build the same variables. This run's schedule starts
    over (its step counter stays 0); the optimizer state is not carried over."""
    base = keras.saving.load_model(base_model)
    ours, theirs = model.weights, base.weights
    if [tuple(v.shape) for v in ours] != [tuple(v.shape) for v in theirs]:
        raise ValueError(
            f'{base_model}: its weights do not fit this model (a different preset, overrides or '
            'image size); warm start needs the same architecture'
        )
    for variable, value in zip(ours, theirs, strict=True):
        if variable is not model.global_step:
            variable.assign(value)


class SeparateValidationDraws(keras.callbacks.Callback):
    """Validation draws its posterior samples from a stream of its own, restarted every time,
    and leaves the training stream where it was: validation losses are comparable from epoch to
    epoch, and a resumed run, which does not repeat the validations before its checkpoint,
    draws the noise an uninterrupted run draws."""

    def on_test_begin(self, logs=None):
        self._training_draws = keras.ops.convert_to_numpy(self.model.seed_generator.state)
        self.model.reseed(self.model.config.seed + VALIDATION_SEED_OFFSET)

    def on_test_end(self, logs=None):
        self.model.seed_generator.state.assign(self._training_draws)


VALIDATION_SEED_OFFSET = 1  # validation's stream: another seed than training's


class StopAtStep(checkpoints.StepWatcher):
    """Ends training after exactly `total_steps` applied updates (skipped steps do not count)."""

    def __init__(self, total_steps: int):
        super().__init__()
        self.total_steps = total_steps

    def on_train_batch_end(self, batch, logs=None):
        done = self.step_if_reached(self.total_steps)
        if done is not None and done >= self.total_steps:
            self.model.stop_training = True


def train(
    model,
    train_data,
    options: TrainingOptions,
    state: checkpoints.TrainingState,
    log_dir: str,
    eval_ds=None,
    eval_images=None,
    nan_patience: int = 20,
    chief: bool = True,
) -> dict:
    """Trains until options.train_steps updates, resuming from `state` if it holds a checkpoint
    of this model code and configuration; evaluates eval_ds (finite, the same batches every
    time) after every epoch where it is given.

    A resumed run trains as an uninterrupted one would, bit for bit: it continues the data
    stream and the model's random stream from the checkpoint, validation and the epoch images
    draw from streams of their own, and a run resumed inside an epoch first finishes that epoch,
    so that epochs (validation, epoch-end checkpoints) end at the same batches.
    train_data: first_batch -> the training stream from its first_batch-th batch on, the same
    batches an uninterrupted run would get there (a resumed run continues the stream).
    nan_patience: consecutive non-finite steps before stepping back to the last checkpoint.
    chief: False on all but one worker of a multi-worker run: no logs, images or summary."""
    total_steps, steps_per_epoch = options.train_steps, options.steps_per_epoch
    start = checkpoints.Position(0, 0)
    if state.exists():
        stale = state.written_by_other_code(model)
        if stale:
            logging.warning('Not resuming %s: %s; training starts at step 0.', state.path, stale)
        else:
            start = state.restore(model)
            logging.info(
                'Resuming from the checkpoint at step %d of %d, batch %d (%s).',
                start.step,
                total_steps,
                start.batches,
                state.path,
            )
    start_step = start.step
    non_finite = guard.NonFiniteGuard(state, patience=nan_patience)
    checkpointer = checkpoints.Checkpointer(state, options.checkpoint_every_steps, start.batches)
    callbacks = [StopAtStep(total_steps), checkpointer, non_finite]
    if chief:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=log_dir, update_freq='epoch'))
        callbacks.append(progress.TrainingProgress(total_steps, steps_per_epoch))
    if chief and eval_images is not None:
        callbacks.append(
            monitoring.EpochImages(log_dir, eval_images, temperature=options.sample_temperature)
        )
    if eval_ds is not None:
        callbacks.append(SeparateValidationDraws())
    started = time.time()
    history = {}

    def fit(first_batch, epoch_steps, epochs, initial_epoch):
        logs = model.fit(
            train_data(first_batch),
            steps_per_epoch=epoch_steps,
            epochs=epochs,
            initial_epoch=initial_epoch,
            validation_data=eval_ds,
            callbacks=callbacks,
            verbose=0,  # progress.TrainingProgress reports instead
        ).history
        history.update({k: v for k, v in logs.items() if v})

    # Epochs are counted in batches, as Keras counts them: epoch e is batches e*n .. (e+1)*n-1.
    epoch, into_epoch = divmod(start.batches, steps_per_epoch)
    remaining = start_step < total_steps
    if remaining and into_epoch:
        fit(start.batches, steps_per_epoch - into_epoch, epoch + 1, epoch)
        epoch += 1
        remaining = checkpoints.step(model) < total_steps
    if remaining:
        # One spare epoch: steps skipped as non-finite do not count towards total_steps.
        fit(
            checkpointer.batches,
            steps_per_epoch,
            math.ceil(total_steps / steps_per_epoch) + 1,
            epoch,
        )
    steps = checkpoints.step(model)
    if steps < total_steps:
        raise guard.DivergenceError(
            f'Only {steps} of {total_steps} steps could be applied; {non_finite.skipped} were '
            'skipped as non-finite. Lower the learning rate or raise weight_decay_norm.'
        )
    summary = {
        'steps': steps,
        'resumed_from_step': start_step,
        'resumed_from_batch': start.batches,
        'skipped_non_finite_steps': non_finite.skipped,
        'restores': non_finite.restores,
        'seconds': round(time.time() - started, 1),
        'final': {k: float(v[-1]) for k, v in history.items() if v},
    }
    if not chief:
        return summary
    tf.io.gfile.makedirs(log_dir)
    with tf.io.gfile.GFile(f'{log_dir.rstrip("/")}/training_summary.json', 'w') as f:
        f.write(strict_json.dumps(summary, indent=1))  # a NaN loss as 'nan', still JSON
    return summary
