"""The Trainer's run_fn (module_file; alone in its directory so that only Trainer edits, not
Transform edits, change its cache key). Its custom_config is a TrainingOptions
(nvae_tfx/options.py); the work is in nvae_tfx/training/.
"""

import contextlib
import os

import keras
import tensorflow as tf
import tensorflow_transform as tft
from absl import logging

from nvae_tfx import leases
from nvae_tfx.data import records, transformed
from nvae_tfx.options import CHECKPOINT_ROOT, TrainingOptions
from nvae_tfx.training import checkpoints, export, loop, runtime


def checkpoint_dir(fn_args, options: TrainingOptions) -> str:
    """<checkpoint root under the pipeline root>/<training key>: the same for every rerun and
    resubmitted job of the same training, whatever its execution or job id."""
    key = checkpoints.training_key(
        options.to_custom_config(),
        options.train_steps,
        transformed.content_fingerprint(fn_args.train_files),
        fn_args.base_model,
    )
    return f'{fn_args.custom_config[CHECKPOINT_ROOT].rstrip("/")}/{key}'


@contextlib.contextmanager
def _nothing():
    yield


def run_fn(fn_args):
    options = TrainingOptions.from_custom_config(
        fn_args.custom_config, train_steps=fn_args.train_steps, eval_steps=fn_args.eval_steps
    )
    strategy = runtime.configure(options.mixed_precision)
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    image_shape = tft_output.transformed_feature_spec()[records.IMAGE].shape

    # The precision goes into the model's config, not Keras' global policy: LocalDagRunner runs
    # other components (e.g. the digit classifier) in this same process.
    config = options.model_config(
        image_size=int(image_shape[0]),
        mixed_precision=options.mixed_precision,
        sync_batch_norm=strategy.num_replicas_in_sync > 1,
    )
    # One seed for weights, model noise and per-step binarization: re-runs are reproducible and
    # every worker of a multi-worker run reads the same data stream before sharding.
    keras.utils.set_random_seed(config.seed)
    validation = transformed.validation_images(
        fn_args.data_accessor,
        fn_args.eval_files,
        tft_output,
        options,
        count=options.eval_steps * options.batch_size,
        seed=config.seed,
    )
    with strategy.scope():
        model = loop.build_model(config, options.jit_compile)
    logging.info(
        'NVAE preset %s: %d parameters, %d steps of batch %d.',
        options.preset,
        model.num_parameters(),
        options.train_steps,
        options.batch_size,
    )
    if fn_args.base_model:
        # Pusher's and the resolver's Model artifacts hold the Keras file beside Format-Serving.
        base = export.keras_model_path(os.path.dirname(fn_args.base_model.rstrip('/')))
        loop.warm_start(model, base)
        logging.info('Warm start from the last blessed model, %s.', base)
    elif options.warm_start:
        logging.info('Warm start: no blessed model yet; training from scratch.')
    chief = runtime.is_chief()
    state = checkpoints.TrainingState(checkpoint_dir(fn_args, options), writer=chief)
    # The chief holds the checkpoint directory while it trains: another Trainer of the same
    # training (a second job, a rerun elsewhere) waits for it, or fails, rather than both
    # writing, and one deleting, the same checkpoint.
    with leases.Lease(state.directory, note=fn_args.model_run_dir) if chief else _nothing():
        summary = loop.train(
            model,
            lambda first_batch: transformed.training_stream(
                fn_args.data_accessor,
                fn_args.train_files,
                tft_output,
                options,
                seed=config.seed,
                first_batch=first_batch,
            ),
            options,
            state,
            fn_args.model_run_dir,
            eval_ds=tf.data.Dataset.from_tensor_slices(validation).batch(options.batch_size),
            eval_images=validation[:64],
            chief=chief,
        )
        logging.info('Training finished: %s', summary)
        if chief:
            if strategy.num_replicas_in_sync > 1:
                model = export.single_device_copy(model)
            export.readjust_bn(model, options)
            export.export(model, fn_args.serving_model_dir, tft_output, options)
            tf.io.gfile.rmtree(state.directory)  # the exported model supersedes the checkpoint
        else:
            tf.io.gfile.makedirs(fn_args.serving_model_dir)  # TFX checks the directory exists
    runtime.wait_for_all_workers(strategy)
