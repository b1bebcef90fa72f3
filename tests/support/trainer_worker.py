"""One training worker, as each replica of a distributed TFX Trainer runs it: TFX's Trainer
executor calls the project's run_fn; the cluster comes from TF_CONFIG.

  python -m tests.support.trainer_worker EXAMPLES_URI TRANSFORM_GRAPH_URI OUTPUT_DIR STEPS \
      CONFIG_JSON

Writes the model (chief only, as run_fn decides) under OUTPUT_DIR/model and, for the test, every
worker's final weights to OUTPUT_DIR/weights-<task>.npz.
"""

import json
import os
import sys

import numpy as np


def main(examples_uri, transform_graph_uri, output_dir, steps, config_json):
    from absl import logging
    from tfx.components.trainer import executor
    from tfx.proto import trainer_pb2
    from tfx.types import standard_artifacts
    from tfx.utils import proto_utils

    from nvae_tfx.options import CHECKPOINT_ROOT
    from nvae_tfx.training import loop

    logging.set_verbosity(logging.INFO)  # the strategy and devices run_fn chose
    task = json.loads(os.environ.get('TF_CONFIG', '{}')).get('task', {})
    task_name = f'{task.get("type", "single")}-{task.get("index", 0)}'

    train = loop.train

    def train_and_record_weights(model, *args, **kwargs):
        summary = train(model, *args, **kwargs)
        np.savez(
            os.path.join(output_dir, f'weights-{task_name}.npz'),
            *[np.asarray(v.numpy()) for v in model.trainable_variables],
        )
        return summary

    loop.train = train_and_record_weights

    def artifact(kind, uri, **properties):
        a = kind()
        a.uri = uri
        for key, value in properties.items():
            setattr(a, key, value)
        return a

    examples = artifact(standard_artifacts.Examples, examples_uri, split_names='["train", "eval"]')
    inputs = {
        'examples': [examples],
        'transform_graph': [artifact(standard_artifacts.TransformGraph, transform_graph_uri)],
    }
    outputs = {
        'model': [artifact(standard_artifacts.Model, os.path.join(output_dir, 'model'))],
        'model_run': [
            artifact(standard_artifacts.ModelRun, os.path.join(output_dir, 'model_run', task_name))
        ],
    }
    exec_properties = {
        'train_args': proto_utils.proto_to_json(trainer_pb2.TrainArgs(num_steps=int(steps))),
        'eval_args': proto_utils.proto_to_json(trainer_pb2.EvalArgs(num_steps=1)),
        'run_fn': 'components.trainer.trainer_module.run_fn',
        # The pipeline adds where checkpoints live: one directory for the training's workers.
        'custom_config': json.dumps(
            {**json.loads(config_json), CHECKPOINT_ROOT: os.path.join(output_dir, 'checkpoints')}
        ),
    }
    executor.GenericExecutor().Do(inputs, outputs, exec_properties)


if __name__ == '__main__':
    main(*sys.argv[1:])
