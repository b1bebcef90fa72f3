"""The Trainer's run_fn (module_file; alone in its directory so that only Trainer edits, not
Transform edits, change its cache key). The work is in nvae_tfx/training/.

custom_config:
  dataset: 'mnist' | 'celeba'; binarization: 'dynamic' | 'static' (MNIST)
  preset: a model_code preset ('tiny', 'cpu', 'paper_mnist', 'paper_celeba64');
  overrides: {field: value}
  batch_size, steps_per_epoch, checkpoint_every_steps, eval_steps, mixed_precision,
  jit_compile, sample_temperature, code_fingerprint (busts the cache when project code changes)
"""

import hashlib
import json
import os

import keras
import tensorflow as tf
import tensorflow_transform as tft
from absl import logging

from nvae_tfx.data import transformed
from nvae_tfx.training import checkpoints, export, loop, runtime


def checkpoint_dir(fn_args) -> str:
    """Stable across re-runs of the same training (new execution ids, same inputs and config):
    <pipeline_root>/Trainer/checkpoints/<key>."""
    key = hashlib.sha256(
        json.dumps(
            [
                sorted(fn_args.train_files),
                fn_args.transform_output,
                fn_args.custom_config,
                fn_args.train_steps,
            ],
            sort_keys=True,
        ).encode()
    ).hexdigest()[:16]
    trainer_root = os.path.dirname(os.path.dirname(fn_args.model_run_dir.rstrip('/')))
    return os.path.join(trainer_root, 'checkpoints', key)


def run_fn(fn_args):
    cfg = fn_args.custom_config
    dataset, binarization = cfg['dataset'], cfg.get('binarization', 'dynamic')
    batch_size = int(cfg['batch_size'])
    total_steps = int(fn_args.train_steps)
    # The precision goes into the model's config, not Keras' global policy: LocalDagRunner runs
    # other components (e.g. the digit classifier) in this same process.
    strategy, precision = runtime.configure(cfg.get('mixed_precision', 'float32'))
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    image_shape = tft_output.transformed_feature_spec()['image'].shape

    def images(files, training, repeat=True, batch=batch_size):
        return transformed.image_dataset(
            fn_args.data_accessor, files, tft_output, batch, dataset, binarization, training, repeat
        )

    config = loop.scaled_config(
        cfg.get('preset', 'cpu'),
        cfg.get('overrides', {}),
        total_steps,
        dataset=dataset,
        image_size=int(image_shape[0]),
        batch_size=batch_size,
        mixed_precision=precision,
        sync_batch_norm=strategy.num_replicas_in_sync > 1,
    )
    # One seed for weights, model noise and per-step binarization: re-runs are reproducible and
    # every worker of a multi-worker run reads the same data stream before sharding.
    keras.utils.set_random_seed(config.seed)
    eval_images = next(iter(images(fn_args.eval_files, training=False, batch=64))).numpy()
    with strategy.scope():
        model = loop.build_model(config, cfg.get('jit_compile', 'auto'))
    logging.info(
        'NVAE preset %s: %d parameters, %d steps of batch %d.',
        cfg.get('preset', 'cpu'),
        model.num_parameters(),
        total_steps,
        batch_size,
    )
    chief = runtime.is_chief()
    state = checkpoints.TrainingState(checkpoint_dir(fn_args), writer=chief)
    summary = loop.train(
        model,
        images(fn_args.train_files, training=True),
        total_steps,
        int(cfg.get('steps_per_epoch', 100)),
        state,
        fn_args.model_run_dir,
        eval_ds=images(fn_args.eval_files, training=False),
        eval_steps=int(cfg.get('eval_steps', 5)),
        eval_images=eval_images,
        checkpoint_every=int(cfg.get('checkpoint_every_steps', 200)),
        sample_temperature=float(cfg.get('sample_temperature', 1.0)),
        chief=chief,
    )
    logging.info('Training finished: %s', summary)
    if chief:
        if strategy.num_replicas_in_sync > 1:
            model = export.single_device_copy(model)
        export.export(model, fn_args.serving_model_dir, tft_output, dataset, binarization)
        tf.io.gfile.rmtree(state.directory)  # the exported model supersedes the checkpoint
    else:
        tf.io.gfile.makedirs(fn_args.serving_model_dir)  # TFX checks the directory exists
    runtime.wait_for_all_workers(strategy)
