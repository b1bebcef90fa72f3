"""Every default of the pipeline in one place; runners and tests import from here."""
import os

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUTPUT_ROOT = os.path.join(PROJECT_ROOT, 'outputs')

SCHEMA_ROOT = os.path.join(PROJECT_ROOT, 'schemas')
TRANSFORM_MODULE = os.path.join(PROJECT_ROOT, 'components', 'transform', 'preprocessing.py')

# In-memory DirectRunner: fastest for the embedded 5,000 digits, where worker start-up would
# dominate. Bigger data: pass e.g. --direct_running_mode=multi_processing --direct_num_workers=0
# or another runner's flags (README, "Scaling Beam").
DEFAULT_BEAM_ARGS = ('--direct_running_mode=in_memory', '--direct_num_workers=1')

# Transform defaults (see components/transform/preprocessing.py for their meaning).
BINARIZATION = 'dynamic'
BINARIZATION_SEED = 0
CELEBA_IMAGE_SIZE = 64
# Measured in bench/results.jsonl: uint8 values as int64 varints materialise in well under half
# the bytes of [0, 1] floats, and the Trainer divides by 255 for free.
CELEBA_PIXELS = 'uint8'


def pipeline_name(dataset: str) -> str:
  return f'nvae-{dataset}'  # lower-case and hyphens: valid on every orchestrator (KFP v2 too)


def pipeline_root(dataset: str) -> str:
  return os.path.join(OUTPUT_ROOT, 'pipelines', pipeline_name(dataset))


def metadata_path(dataset: str) -> str:
  return os.path.join(OUTPUT_ROOT, 'metadata', pipeline_name(dataset), 'metadata.sqlite')


def schema_dir(dataset: str) -> str:
  return os.path.join(SCHEMA_ROOT, dataset)
