"""create_pipeline(): the runner-agnostic NVAE pipeline definition.

ImageExampleGen -> StatisticsGen -> ImportSchemaGen -> ExampleValidator -> ValidationGate
-> Transform. Runners (run_local.py, ...) only choose where and how it runs.
"""
import os
from typing import Dict, Optional, Sequence

from tfx import v1 as tfx

from components.example_gen.component import ImageExampleGen
from components.example_gen.options import SourceOptions
from components.validation_gate import ValidationGate
from pipeline import configs


def transform_config(dataset: str, binarization: str = configs.BINARIZATION,
                     binarization_seed: int = configs.BINARIZATION_SEED,
                     image_size: int = configs.CELEBA_IMAGE_SIZE,
                     celeba_pixels: str = configs.CELEBA_PIXELS) -> Dict:
  if dataset == 'mnist':
    return {'dataset': dataset, 'binarization': binarization, 'binarization_seed': binarization_seed}
  return {'dataset': dataset, 'image_size': image_size, 'celeba_pixels': celeba_pixels}


def create_pipeline(
    pipeline_name: str,
    pipeline_root: str,
    source: SourceOptions,
    transform_custom_config: Optional[Dict] = None,
    metadata_connection_config=None,
    beam_pipeline_args: Sequence[str] = configs.DEFAULT_BEAM_ARGS,
    enable_cache: bool = True,
    schema_dir: Optional[str] = None,
) -> tfx.dsl.Pipeline:
  example_gen = ImageExampleGen(source)
  statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs['examples'])
  schema_gen = tfx.components.ImportSchemaGen(
      schema_file=os.path.join(schema_dir or configs.schema_dir(source.dataset), 'schema.pbtxt'))
  example_validator = tfx.components.ExampleValidator(
      statistics=statistics_gen.outputs['statistics'], schema=schema_gen.outputs['schema'])
  validation_gate = ValidationGate(
      anomalies=example_validator.outputs['anomalies'], schema=schema_gen.outputs['schema'])
  transform = tfx.components.Transform(
      examples=example_gen.outputs['examples'],
      schema=validation_gate.outputs['validated_schema'],
      module_file=configs.TRANSFORM_MODULE,
      custom_config=transform_custom_config or transform_config(source.dataset),
      # Per-pixel statistics of images are large and say little; ingestion stats suffice.
      disable_statistics=True)

  return tfx.dsl.Pipeline(
      pipeline_name=pipeline_name,
      pipeline_root=pipeline_root,
      components=[example_gen, statistics_gen, schema_gen, example_validator, validation_gate,
                  transform],
      enable_cache=enable_cache,
      metadata_connection_config=metadata_connection_config,
      beam_pipeline_args=list(beam_pipeline_args))
