"""Runs the pipeline with LocalDagRunner in a temporary directory and reads its outputs back."""

import glob
import os

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from tfx import v1 as tfx

from pipeline import configs, nvae_pipeline, report


def run_pipeline(
    tmp_path,
    source,
    transform=None,
    schema_dir=None,
    name='nvae-test',
    training=None,
    evaluation=None,
    enable_cache=True,
    beam_pipeline_args=configs.DEFAULT_BEAM_ARGS,
):
    metadata_path = str(tmp_path / 'metadata.sqlite')
    pipeline = nvae_pipeline.create_pipeline(
        pipeline_name=name,
        pipeline_root=str(tmp_path / 'root'),
        source=source,
        transform=transform,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            metadata_path
        ),
        beam_pipeline_args=beam_pipeline_args,
        schema_dir=schema_dir,
        training=training,
        evaluation=evaluation,
        serving_dir=str(tmp_path / 'serving'),
        enable_cache=enable_cache,
    )
    tfx.orchestration.LocalDagRunner().run(pipeline)
    return metadata_path


def run_outputs(metadata_path, name='nvae-test'):
    """{node id: (state name, {output key: [artifact]})} of the latest run."""
    store = report.open_store(metadata_path)
    run = report.latest_run(store, name)
    result = {}
    for execution in store.get_executions_by_context(run.id):
        state = report._STATE.Name(execution.last_known_state)
        result[report.node_id(store, execution)] = (state, report.outputs_of(store, execution.id))
    return result


def read_transformed(outputs, split):
    """Transformed examples of one split as {feature: np.ndarray}, parsed with Transform's spec."""
    graph = outputs['Transform'][1]['transform_graph'][0].uri
    examples = outputs['Transform'][1]['transformed_examples'][0].uri
    spec = tft.TFTransformOutput(graph).transformed_feature_spec()
    files = sorted(glob.glob(os.path.join(examples, f'Split-{split}', '*.gz')))
    records = list(tf.data.TFRecordDataset(files, compression_type='GZIP').as_numpy_iterator())
    parsed = tf.io.parse_example(records, spec)
    return {k: v.numpy() for k, v in parsed.items()}


def decoded_ids(ids: np.ndarray):
    return [i.decode() for i in ids]
