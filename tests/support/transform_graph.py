"""A real Transform graph, as the Transform component writes it, for tests that train or serve
without running the pipeline."""

import os

from nvae_tfx.data.synthetic import digits, face, jpeg_bytes
from nvae_tfx.datasets import CELEBA_SHAPE
from pipeline import configs


def write_transform_graph(out_dir: str, options=None) -> str:
    """A real Transform graph of the dataset's schema and the project's preprocessing_fn
    (TransformOptions, default: MNIST's), as the Transform component writes it, from one image;
    returns out_dir."""
    import apache_beam as beam
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io
    from tfx.utils import io_utils

    from components.transform import preprocessing
    from nvae_tfx.options import TransformOptions

    options = options or TransformOptions().resolved()
    schema = io_utils.SchemaReader().read(
        os.path.join(configs.SCHEMA_ROOT, options.dataset, 'schema.pbtxt')
    )
    metadata = dataset_metadata.DatasetMetadata(schema)
    config = options.to_custom_config()
    if options.dataset == 'mnist':
        image = {'image_raw': [digits(1, seed=0)[0][0].tobytes()], 'label': [0]}
        h, w, c = 28, 28, 1
    else:
        image = {'image_encoded': [jpeg_bytes(face(0))]}
        h, w, c = CELEBA_SHAPE
    raw = {**image, 'id': [b'0'], 'height': [h], 'width': [w], 'channels': [c]}
    with tft_beam.Context(temp_dir=os.path.join(out_dir, 'tmp')):
        with beam.Pipeline() as p:
            transform_fn = (p | beam.Create([raw]), metadata) | tft_beam.AnalyzeDataset(
                lambda inputs: preprocessing.preprocessing_fn(inputs, config)
            )
            _ = transform_fn | tft_beam.WriteTransformFn(out_dir)
    metadata_io.write_metadata(
        metadata, os.path.join(out_dir, tft.TFTransformOutput.RAW_METADATA_DIR)
    )
    return out_dir
