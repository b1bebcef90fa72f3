"""The training loop around model.fit: resume, checkpoints, the NaN guard, TensorBoard and a
summary file, with the NVAE schedule scaled to the number of steps asked for."""

import json
import math
import sys
import time

import keras
import tensorflow as tf
from absl import logging

from model_code import config as nvae_config
from model_code.nvae import NVAE
from model_code.optim import make_optimizer
from nvae_tfx.training import checkpoints, guard, monitoring


def scaled_config(preset: str, overrides: dict, total_steps: int, **fields):
    """The preset with its LR warm-up kept at the same fraction of training as in the official
    run (e.g. 5 of 400 epochs for MNIST); KL annealing is already a fraction (30%)."""
    base = nvae_config.get_config(preset, overrides, **fields)
    warmup = max(1, round(total_steps * base.warmup_steps / base.total_steps))
    return nvae_config.get_config(
        preset, overrides, total_steps=total_steps, warmup_steps=warmup, **fields
    )


def build_model(config, jit_compile: str = 'auto'):
    """NVAE compiled with Adamax; every step goes through a LossScaleOptimizer so that non-finite
    gradients skip the update (float32 uses scale 1, float16 NVAE's 2^10).
    jit_compile: 'auto' (XLA where Keras supports it), 'true' or 'false'."""
    choices = {'auto': 'auto', 'true': True, 'false': False}
    if str(jit_compile).lower() not in choices:
        raise ValueError(f'jit_compile must be one of {sorted(choices)}, got {jit_compile!r}')
    jit_compile = choices[str(jit_compile).lower()]
    model = NVAE(config)
    optimizer = make_optimizer(config)
    if not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer, initial_scale=1.0)
    model.compile(optimizer=optimizer, jit_compile=jit_compile)
    optimizer.build(model.trainable_variables)
    return model


class StopAtStep(keras.callbacks.Callback):
    """Ends training after exactly `total_steps` applied updates (skipped steps do not count)."""

    def __init__(self, total_steps: int):
        super().__init__()
        self.total_steps = total_steps

    def on_train_batch_end(self, batch, logs=None):
        if checkpoints.step(self.model) >= self.total_steps:
            self.model.stop_training = True


def train(
    model,
    train_ds,
    total_steps: int,
    steps_per_epoch: int,
    state: checkpoints.TrainingState,
    log_dir: str,
    eval_ds=None,
    eval_steps: int = 0,
    eval_images=None,
    checkpoint_every: int = 0,
    sample_temperature: float = 1.0,
    nan_patience: int = 20,
    chief: bool = True,
) -> dict:
    """Trains until total_steps updates, resuming from `state` if it holds a checkpoint.
    nan_patience: consecutive non-finite steps before stepping back to the last checkpoint.
    chief: False on all but one worker of a multi-worker run: no logs, images or summary."""
    start_step = state.restore(model) if state.exists() else 0
    if start_step:
        logging.info(
            'Resuming from the checkpoint at step %d of %d (%s).',
            start_step,
            total_steps,
            state.path,
        )
    non_finite = guard.NonFiniteGuard(state, patience=nan_patience)
    callbacks = [
        StopAtStep(total_steps),
        checkpoints.Checkpointer(state, checkpoint_every),
        non_finite,
    ]
    if chief:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=log_dir, update_freq='epoch'))
    if chief and eval_images is not None:
        callbacks.append(
            monitoring.EpochImages(log_dir, eval_images, temperature=sample_temperature)
        )
    started = time.time()
    history = {}
    if start_step < total_steps:
        history = model.fit(
            train_ds,
            steps_per_epoch=steps_per_epoch,
            # One spare epoch: steps skipped as non-finite do not count towards total_steps.
            epochs=math.ceil(total_steps / steps_per_epoch) + 1,
            initial_epoch=start_step // steps_per_epoch,
            validation_data=eval_ds,
            validation_steps=eval_steps or None,
            callbacks=callbacks,
            verbose=1 if sys.stdout.isatty() else 2,
        ).history
    steps = checkpoints.step(model)
    if steps < total_steps:
        raise guard.DivergenceError(
            f'Only {steps} of {total_steps} steps could be applied; {non_finite.skipped} were '
            'skipped as non-finite. Lower the learning rate or raise weight_decay_norm.'
        )
    summary = {
        'steps': steps,
        'resumed_from_step': start_step,
        'skipped_non_finite_steps': non_finite.skipped,
        'restores': non_finite.restores,
        'seconds': round(time.time() - started, 1),
        'final': {k: float(v[-1]) for k, v in history.items() if v},
    }
    if not chief:
        return summary
    tf.io.gfile.makedirs(log_dir)
    with tf.io.gfile.GFile(f'{log_dir.rstrip("/")}/training_summary.json', 'w') as f:
        f.write(json.dumps(summary, indent=1))
    return summary
