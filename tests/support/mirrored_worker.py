"""tests/support/trainer_worker.py on a CPU split into two logical devices: the Trainer's
run_fn trains under MirroredStrategy with one replica on each.

  python -m tests.support.mirrored_worker EXAMPLES_URI TRANSFORM_GRAPH_URI OUTPUT_DIR STEPS \
      CONFIG_JSON

Besides what trainer_worker writes: OUTPUT_DIR/replicas.json, how the trained model was
distributed (replicas, synchronized BatchNorm layers, the batch each replica trained on).
"""

import json
import os
import sys

REPLICAS = 2


def main(examples_uri, transform_graph_uri, output_dir, steps, config_json):
    import tensorflow as tf

    # Before TensorFlow's runtime starts, as only then can devices be configured.
    cpu = tf.config.list_physical_devices('CPU')[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * REPLICAS
    )

    from nvae_tfx.training import loop
    from tests.support import trainer_worker

    train = loop.train

    def train_and_record_distribution(model, *args, **kwargs):
        """Records the batch each replica's train_step is traced with (the static batch size:
        the training stream drops incomplete batches) besides how the model is distributed."""
        replica_batches = []
        train_step = model.train_step

        def recording_train_step(data):
            replica_batches.append(int(tf.nest.flatten(data)[0].shape[0]))
            return train_step(data)

        model.train_step = recording_train_step
        summary = train(model, *args, **kwargs)
        strategy = model.distribute_strategy
        record = {
            'replicas': strategy.num_replicas_in_sync,
            'devices': list(strategy.extended.worker_devices),
            'train_step_batches': replica_batches,
            'sync_batch_norm': model.config.sync_batch_norm,
            'synchronized_batch_norms': [bn.synchronized for bn in model._batch_norms()],
        }
        with open(os.path.join(output_dir, 'replicas.json'), 'w') as f:
            json.dump(record, f)
        return summary

    loop.train = train_and_record_distribution
    trainer_worker.main(examples_uri, transform_graph_uri, output_dir, steps, config_json)


if __name__ == '__main__':
    main(*sys.argv[1:])
