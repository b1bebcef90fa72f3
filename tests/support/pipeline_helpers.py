"""Runs the pipeline with LocalDagRunner in a temporary directory and reads its outputs back."""

import glob
import os

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from tfx import v1 as tfx

from nvae_tfx.data import embedded
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
    user_code='installed',
):
    """Runs the pipeline with LocalDagRunner; returns its ML Metadata path. user_code:
    'installed' (the components import the installed project, as on Airflow and in the image) or
    'module_files' (TFX packages the Transform and Trainer modules as wheels, as run_local does;
    slower, docs/testing.md)."""
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
        user_code=user_code,
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


# The data half of a run: the nodes that run when --no_train is given.
DATA_NODES = {
    'ImageExampleGen',
    'StatisticsGen',
    'ImportSchemaGen',
    'ExampleValidator',
    'ValidationGate',
    'Transform',
    'RunReport',
}


def mnist_reference(images_uint8):
    """NVAE's MNIST layout in NumPy: [0, 1] grey levels padded 28x28 -> 32x32."""
    x = images_uint8.astype(np.float32) / np.float32(255.0)
    return np.pad(x, ((0, 0), (2, 2), (2, 2)))[..., None]


def assert_embedded_digits_transformed(outputs):
    """The data half of a run on the embedded digits: every node complete, the stratified split,
    and each transformed image equal to NVAE's layout of its digit."""
    assert set(outputs) == DATA_NODES
    assert all(state == 'COMPLETE' for state, _ in outputs.values())
    examples = outputs['ImageExampleGen'][1]['examples'][0]
    assert examples.custom_properties['num_examples_train'].int_value == 4500
    assert examples.custom_properties['num_examples_eval'].int_value == 500
    assert examples.custom_properties['num_skipped'].int_value == 0
    assert examples.properties['split_names'].string_value == '["train", "eval"]'

    images, labels = embedded.load()
    split = embedded.stratified_split(labels)
    for name in ('train', 'eval'):
        got = read_transformed(outputs, name)
        index = np.array([int(i.split('-')[1]) for i in decoded_ids(got['id'])])
        assert sorted(index) == sorted(split[name])
        assert got['image'].shape == (len(index), 32, 32, 1)
        # Equal up to one float32 ulp: TF may multiply by 1/255 where NumPy divides.
        np.testing.assert_array_max_ulp(got['image'], mnist_reference(images[index]), maxulp=1)
        np.testing.assert_array_equal(got['label'], labels[index])
