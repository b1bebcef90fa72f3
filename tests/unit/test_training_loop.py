"""The Trainer's loop without TFX: exact resume, the NaN guard, checkpoints, warm start, refusing
to export."""

import dataclasses
import logging
import os
import shutil
from types import SimpleNamespace

import keras
import numpy as np
import pytest
import tensorflow as tf

import model_code
from components.trainer import trainer_module
from nvae_tfx.data import records, transformed
from nvae_tfx.options import CHECKPOINT_ROOT
from nvae_tfx.training import checkpoints, export, guard, loop
from tests.support.tiny_training import (
    digits_dataset,
    from_start,
    tiny,
    tiny_model,
)


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
            from_start(digits_dataset(nan_from_batch=6)),
            options,
            state,
            str(tmp_path / 'logs'),
            nan_patience=3,
        )
    # Only the 6 finite batches were applied; the weights stayed finite throughout.
    assert int(model.optimizer.iterations) == 6
    assert checkpoints.all_finite(model)


def test_isolated_nan_batch_is_skipped_and_reported_without_per_step_reads(
    tmp_path, caplog, monkeypatch
):
    x = (np.random.RandomState(0).rand(64, 32, 32, 1) < 0.3).astype(np.float32)
    ds = (
        tf.data.Dataset.from_tensor_slices(x)
        .repeat()
        .batch(8)
        .enumerate()
        .map(lambda i, b: tf.where(i == 3, b * np.nan, b))
    )
    # One epoch of the 20 steps (and the extra one that makes up the skipped step): epoch-end
    # callbacks read the step once each, which is not what this test counts.
    options = dataclasses.replace(tiny(20), steps_per_epoch=20)
    model = tiny_model(options)
    state_before = [v.numpy() for v in model.non_trainable_variables]
    reads = []
    read_step = checkpoints.step
    monkeypatch.setattr(checkpoints, 'step', lambda m: reads.append(1) or read_step(m))
    summary = loop.train(
        model,
        from_start(ds),
        options,
        checkpoints.TrainingState(str(tmp_path / 'state')),
        str(tmp_path / 'logs'),
    )
    assert summary['skipped_non_finite_steps'] == 1 and summary['steps'] == 20
    assert 'update(s) skipped' in caplog.text
    assert checkpoints.all_finite(model)
    # The skipped step's forward pass left no trace in the state (moving statistics, power
    # iteration vectors, KL schedule step), while the applied steps changed it.
    assert model.global_step.numpy() == 20
    assert all(np.isfinite(v.numpy()).all() for v in model.non_trainable_variables)
    assert any(
        not np.array_equal(v.numpy(), b)
        for v, b in zip(model.non_trainable_variables, state_before, strict=True)
    )
    # The step counter is read from the device at train begin, per check window, at checkpoints,
    # at epoch ends and near the end: far fewer times than the 21 batches run.
    assert len(reads) <= 12, len(reads)


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


def write_records(directory, records_by_file):
    os.makedirs(directory)
    for i, shard in enumerate(records_by_file):
        with tf.io.TFRecordWriter(f'{directory}/part-{i}.gz', options='GZIP') as writer:
            for record in shard:
                writer.write(record)
    return [f'{directory}/*']


def test_the_checkpoint_directory_belongs_to_the_training_not_the_run(tmp_path):
    """The same training (options, steps, data) in another execution or another job, whose
    Transform wrote the same examples into other files, in another order and with their
    features serialized in another order, resumes from the same checkpoint directory under the
    pipeline root; other data or steps do not."""

    def example(i, order=('id', 'image')):
        # Serialized messages concatenated merge: one feature each, in the order given.
        features = {'id': [str(i).encode()], 'image': [bytes([i]) * 4]}
        return b''.join(
            tf.train.Example(
                features=tf.train.Features(
                    feature={k: tf.train.Feature(bytes_list=tf.train.BytesList(value=features[k]))}
                )
            ).SerializeToString()
            for k in order
        )

    examples = [example(i) for i in range(10)]
    reordered = [example(i, order=('image', 'id')) for i in range(10)]
    assert reordered[0] != examples[0]
    assert tf.train.Example.FromString(reordered[0]) == tf.train.Example.FromString(examples[0])

    def fn_args(files, job, base_model=None):
        return SimpleNamespace(
            train_files=files,
            custom_config={CHECKPOINT_ROOT: 'gs://b/root/Trainer/checkpoints'},
            model_run_dir=f'gs://b/root/0/{job}/Trainer_1/model_run',
            base_model=base_model,
        )

    options = tiny(100)
    first_job = write_records(tmp_path / 'job1', [examples[:6], examples[6:]])
    other_job = write_records(tmp_path / 'job2', [reordered[::-1]])
    other_data = write_records(tmp_path / 'job3', [examples[:9] + [example(99)]])
    first = trainer_module.checkpoint_dir(fn_args(first_job, 'job1'), options)
    assert first.startswith('gs://b/root/Trainer/checkpoints/')
    assert trainer_module.checkpoint_dir(fn_args(other_job, 'job2'), options) == first
    assert trainer_module.checkpoint_dir(fn_args(other_data, 'job3'), options) != first
    assert trainer_module.checkpoint_dir(fn_args(first_job, 'job1'), tiny(200)) != first
    assert (
        trainer_module.checkpoint_dir(fn_args(first_job, 'job1', base_model='gs://b/m/1'), options)
        != first
    )


class InMemoryAccessor:
    """Stands in for TFX's data accessor: transformed examples from an array, read as the
    accessor reads them (batched, in order, num_epochs passes; None for endless)."""

    def __init__(self, images):
        self.images = images

    def tf_dataset_factory(self, file_pattern, reading, schema):
        ds = tf.data.Dataset.from_tensor_slices({records.IMAGE: self.images})
        assert not reading.shuffle
        return ds.repeat(reading.num_epochs).batch(reading.batch_size)


def digit_stream(options, n=20):
    """training_stream over n grey 32x32 images (binarized per use) without TFX."""
    grey = np.random.RandomState(1).rand(n, 32, 32, 1).astype(np.float32)
    output = SimpleNamespace(transformed_metadata=SimpleNamespace(schema=None))
    return lambda first_batch: transformed.training_stream(
        InMemoryAccessor(grey), 'unused', output, options, seed=3, first_batch=first_batch
    )


def test_training_stream_continues_at_any_batch():
    keras.utils.set_random_seed(0)  # a global seed, as the Trainer sets
    stream = digit_stream(tiny(10))  # 20 images, batches of 8: batches straddle epochs
    full = [b.numpy() for b in stream(0).take(12)]
    assert all(b.shape == (8, 32, 32, 1) and set(np.unique(b)) == {0.0, 1.0} for b in full)
    for first in (1, 2, 5, 9):  # within the first epoch, at and across epoch boundaries
        resumed = [b.numpy() for b in stream(first).take(3)]
        for expected, got in zip(full[first : first + 3], resumed, strict=True):
            np.testing.assert_array_equal(got, expected)
    # Epochs differ: another order, another binarization of the same images.
    epoch_0, epoch_2 = np.concatenate(full[:2]), np.concatenate(full[5:7])  # 16 images each
    assert not np.array_equal(epoch_0, epoch_2)


def test_a_run_resumed_inside_an_epoch_trains_exactly_as_an_uninterrupted_one(tmp_path):
    """Killed after the checkpoint at step 6, inside the second epoch of 5 steps, with epoch-end
    validation and epoch images drawing random numbers: the resumed run finishes that epoch at
    step 10, as the uninterrupted run does, and ends with the same weights, bit for bit, and
    the same validation losses."""
    options = tiny(12, checkpoint_every_steps=3)
    stream = digit_stream(options)
    grey = np.random.RandomState(2).rand(16, 32, 32, 1).astype(np.float32)
    validation = (grey > 0.5).astype(np.float32)

    def train(name, data, state_dir):
        keras.utils.set_random_seed(0)  # the same initial weights for every run
        model = tiny_model(options)
        state = checkpoints.TrainingState(str(tmp_path / state_dir))
        summary = loop.train(
            model,
            data,
            options,
            state,
            str(tmp_path / f'logs-{name}'),
            eval_ds=tf.data.Dataset.from_tensor_slices(validation).batch(8),
            eval_images=validation,
        )
        return model, summary

    whole, whole_summary = train('whole', stream, 'whole')
    # The first run dies reading its 8th batch, after the checkpoint at step 6 (batch 6).
    dies = tf.data.Dataset.from_tensors(tf.fill([8, 32, 32, 1], np.nan)).map(
        lambda b: tf.debugging.check_numerics(b, 'killed')
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match='killed'):
        train('part', lambda first: stream(first).take(7 - first).concatenate(dies), 'parts')
    resumed, summary = train('resumed', stream, 'parts')
    assert summary['resumed_from_step'] == summary['resumed_from_batch'] == 6
    assert summary['steps'] == whole_summary['steps'] == 12
    for a, b in zip(whole.weights, resumed.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(b), np.asarray(a), err_msg=a.path)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(resumed.seed_generator.state),
        keras.ops.convert_to_numpy(whole.seed_generator.state),
    )
    # The last epoch (steps 10-12) is whole in both runs: its validation loss is the same.
    assert summary['final']['val_loss'] == whole_summary['final']['val_loss']


def test_checkpoints_at_epoch_ends_only(tmp_path, monkeypatch):
    saved = []
    monkeypatch.setattr(
        checkpoints.TrainingState, 'save', lambda self, model, batches: saved.append(batches)
    )
    options = tiny(12, checkpoint_every_steps=0)
    loop.train(
        tiny_model(options),
        from_start(digits_dataset()),
        options,
        checkpoints.TrainingState(str(tmp_path / 'state')),
        str(tmp_path / 'logs'),
    )
    assert saved == [5, 10, 12]  # two epoch ends, and the last (stopped) epoch's end


def test_checkpoint_of_other_model_code_is_not_resumed(tmp_path, monkeypatch, caplog):
    options = tiny(1)
    model = tiny_model(options)
    state = checkpoints.TrainingState(str(tmp_path / 'state'))
    assert state.save(model, batches=3)
    assert state.written_by_other_code(model) == ''
    # The same code under another configuration, then other code under this one.
    other_config = loop.build_model(
        dataclasses.replace(model.config, seed=model.config.seed + 1), 'false'
    )
    assert 'other model code or configuration' in state.written_by_other_code(other_config)
    code = tmp_path / 'model_code'
    shutil.copytree(os.path.dirname(model_code.__file__), code)
    with open(code / 'nvae.py', 'a') as f:
        f.write('\nCHANGED = True\n')
    monkeypatch.setattr(model_code, '__file__', str(code / '__init__.py'))
    reason = state.written_by_other_code(model)
    assert 'other model code or configuration' in reason

    with caplog.at_level(logging.WARNING, logger='absl'):
        summary = loop.train(
            model, from_start(digits_dataset()), options, state, str(tmp_path / 'logs')
        )
    [line] = [r.getMessage() for r in caplog.records if 'Not resuming' in r.getMessage()]
    assert line == f'Not resuming {state.path}: {reason}; training starts at step 0.'
    assert summary['resumed_from_step'] == 0 and summary['steps'] == 1
    # The new run's checkpoint replaced the stale one and is resumable by this code.
    assert state.written_by_other_code(model) == ''


def test_warm_start_takes_the_base_models_weights_and_restarts_the_schedule(tmp_path):
    options = tiny(2)
    base = tiny_model(options)
    # A trained base: weights away from any initialisation, its schedule two steps in.
    for variable in base.trainable_variables:
        variable.assign(variable + 0.25)
    base.global_step.assign(2)
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
