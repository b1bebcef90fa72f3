"""The Trainer's loop without TFX: resume after a kill, the NaN guard, refusing to export."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf

from components.trainer import trainer_module
from nvae_tfx.options import TrainingOptions
from nvae_tfx.training import checkpoints, export, guard, loop

STEPS_PER_EPOCH = 5


def tiny(train_steps, **options):
    """The tiny preset's training options on 32x32 digits, batches of 8."""
    return TrainingOptions(
        preset='tiny',
        train_steps=train_steps,
        batch_size=8,
        steps_per_epoch=STEPS_PER_EPOCH,
        jit_compile='false',
        **options,
    )


def tiny_model(options):
    return loop.build_model(options.model_config(image_size=32), options.jit_compile)


def digits_dataset(nan_from_batch=None):
    x = (np.random.RandomState(0).rand(64, 32, 32, 1) < 0.3).astype(np.float32)
    ds = tf.data.Dataset.from_tensor_slices(x).repeat().batch(8)
    if nan_from_batch is None:
        return ds
    # Every batch from nan_from_batch on holds a NaN pixel: its loss and gradients are NaN.
    return ds.enumerate().map(
        lambda i, b: tf.where(
            i >= nan_from_batch, tf.tensor_scatter_nd_update(b, [[0, 16, 16, 0]], [np.nan]), b
        )
    )


def test_resume_after_kill(tmp_path):
    """A training process killed after a checkpoint resumes there instead of starting over."""
    state_dir = tmp_path / 'state'
    script = textwrap.dedent(f"""
      import sys; sys.path.insert(0, {os.getcwd()!r})
      from tests.test_training_loop import tiny, tiny_model, digits_dataset
      from nvae_tfx.training import checkpoints, loop
      options = tiny(10000, checkpoint_every_steps=3)
      loop.train(tiny_model(options), digits_dataset(), options,
                 checkpoints.TrainingState({str(state_dir)!r}), {str(tmp_path / 'logs1')!r})
  """)
    proc = subprocess.Popen([sys.executable, '-c', script])
    state_file = state_dir / checkpoints.STATE_FILE
    deadline = time.time() + 600
    while not state_file.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert state_file.exists(), 'no checkpoint was written before the kill'

    options = tiny(12)
    summary = loop.train(
        tiny_model(options),
        digits_dataset(),
        options,
        checkpoints.TrainingState(str(state_dir)),
        str(tmp_path / 'logs2'),
    )
    # Checkpoints come every 3 steps and at every epoch end; the kill may follow either.
    resumed = summary['resumed_from_step']
    assert resumed >= 3 and (resumed % 3 == 0 or resumed % STEPS_PER_EPOCH == 0)
    assert summary['steps'] == max(12, summary['resumed_from_step'])
    assert json.load(open(tmp_path / 'logs2' / 'training_summary.json')) == summary


def test_non_finite_steps_are_skipped_counted_and_divergence_fails(tmp_path):
    options = tiny(30, checkpoint_every_steps=2)
    model = tiny_model(options)
    state = checkpoints.TrainingState(str(tmp_path / 'state'))
    with pytest.raises(
        guard.DivergenceError,
        match='consecutive non-finite steps .* after 2 '
        r'restore\(s\)',
    ):
        loop.train(
            model,
            digits_dataset(nan_from_batch=6),
            options,
            state,
            str(tmp_path / 'logs'),
            nan_patience=3,
        )
    # Only the 6 finite batches were applied; the weights stayed finite throughout.
    assert int(model.optimizer.iterations) == 6
    assert checkpoints.all_finite(model)


def test_isolated_nan_batch_is_skipped(tmp_path):
    x = (np.random.RandomState(0).rand(64, 32, 32, 1) < 0.3).astype(np.float32)
    ds = (
        tf.data.Dataset.from_tensor_slices(x)
        .repeat()
        .batch(8)
        .enumerate()
        .map(lambda i, b: tf.where(i == 3, b * np.nan, b))
    )
    options = tiny(10)
    model = tiny_model(options)
    summary = loop.train(
        model,
        ds,
        options,
        checkpoints.TrainingState(str(tmp_path / 'state')),
        str(tmp_path / 'logs'),
    )
    assert summary['skipped_non_finite_steps'] == 1 and summary['steps'] == 10
    assert checkpoints.all_finite(model)


@pytest.mark.parametrize('broken', ['weights', 'sampling_state', 'no_sampling_state'])
def test_model_is_not_exported_without_a_finite_sampling_state(tmp_path, broken):
    options = tiny(10)
    model = tiny_model(options)
    if broken != 'no_sampling_state':
        model.readjust_bn(0, 1, 1.0)
    bn = model.decoder_cells[0].branch.bn_out
    weight = {'weights': model.trainable_weights[0], 'sampling_state': bn.sampling_mean}.get(broken)
    if weight is not None:
        weight.assign(np.full(weight.shape, np.nan, np.float32))
    message = 'no sampling state' if broken == 'no_sampling_state' else 'non-finite weights'
    with pytest.raises(ValueError, match=message):
        export.export(
            model,
            str(tmp_path / 'Format-Serving'),
            tft_output=None,
            options=options,
        )
    assert not os.path.exists(tmp_path / 'Format-Serving')


def test_checkpoint_dir_is_stable_across_executions():
    def fn_args(run_id, steps=100):
        return SimpleNamespace(
            train_files=['/r/Transform/transformed_examples/6/Split-train/*'],
            transform_output='/r/Transform/transform_graph/6',
            custom_config={'preset': 'tiny'},
            train_steps=steps,
            model_run_dir=f'/r/Trainer/model_run/{run_id}',
        )

    first = trainer_module.checkpoint_dir(fn_args(7))
    assert first.startswith('/r/Trainer/checkpoints/')
    assert trainer_module.checkpoint_dir(fn_args(12)) == first
    assert trainer_module.checkpoint_dir(fn_args(12, steps=200)) != first


def test_warm_start_takes_the_base_models_weights_and_restarts_the_schedule(tmp_path):
    options = tiny(2)
    base = tiny_model(options)
    base.fit(digits_dataset(), steps_per_epoch=2, epochs=1, verbose=0)
    path = str(tmp_path / 'nvae.keras')
    base.save(path)
    model = tiny_model(options)
    loop.warm_start(model, path)
    assert int(model.global_step.numpy()) == 0 and int(base.global_step.numpy()) == 2
    for ours, theirs in zip(model.weights, base.weights, strict=True):
        if ours is not model.global_step:
            np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    wider = tiny_model(tiny(2, overrides={'num_channels_enc': '16'}))
    with pytest.raises(ValueError, match=f'{path}: its weights do not fit this model'):
        loop.warm_start(wider, path)
