"""Runs the pipeline with LocalDagRunner in a temporary directory and reads its outputs back."""

import glob
import os

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from tfx import v1 as tfx

from pipeline import configs, nvae_pipeline, report
from pipeline.run_spec import OutputPaths, RunSpec


def run_spec(tmp_path, source, name='nvae-test', beam_args=configs.DEFAULT_BEAM_ARGS, **options):
    """The run specification of options (transform, training, evaluation) with outputs and ML
    Metadata under tmp_path."""
    return RunSpec.create(
        source,
        OutputPaths(
            pipeline_root=str(tmp_path / 'root'),
            serving_dir=str(tmp_path / 'serving'),
            metadata_path=str(tmp_path / 'metadata.sqlite'),
        ),
        beam_args=beam_args,
        name=name,
        **options,
    )


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
    spec = run_spec(
        tmp_path,
        source,
        name,
        beam_pipeline_args,
        transform=transform,
        training=training,
        evaluation=evaluation,
    )
    pipeline = nvae_pipeline.create_pipeline(
        spec,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            spec.paths.metadata_path
        ),
        schema_dir=schema_dir,
        enable_cache=enable_cache,
    )
    tfx.orchestration.LocalDagRunner().run(pipeline)
    return spec.paths.metadata_path


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
