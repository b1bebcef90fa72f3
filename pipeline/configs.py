"""Every default of the pipeline in one place; runners and tests import from here."""

import dataclasses
import glob
import hashlib
import os

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUTPUT_ROOT = os.path.join(PROJECT_ROOT, 'outputs')

SCHEMA_ROOT = os.path.join(PROJECT_ROOT, 'schemas')
TRANSFORM_MODULE = os.path.join(PROJECT_ROOT, 'components', 'transform', 'preprocessing.py')
TRAINER_MODULE = os.path.join(PROJECT_ROOT, 'components', 'trainer', 'trainer_module.py')
# Transform and Trainer import the library (and the Trainer model_code) as installed packages,
# not from their module files: TFX hashes only a module file's own directory, and nothing at all
# where the module is imported from the installed project (Airflow, the container image). The hash
# of this code goes into their custom_config, so that editing it invalidates their cache.
LIBRARY_CODE = 'nvae_tfx/**/*.py'
# Transform's share of model_code: the MNIST crop, which nvae_tfx/datasets.py takes from it.
TRANSFORM_CODE = ('components/transform/*.py', LIBRARY_CODE, 'model_code/config.py')
TRAINER_CODE = ('components/trainer/*.py', LIBRARY_CODE, 'model_code/*.py')
# Where the installed project's functions are, for runners that import rather than package them.
TRANSFORM_FN = 'components.transform.preprocessing.preprocessing_fn'
TRAINER_FN = 'components.trainer.trainer_module.run_fn'
IMAGE_PROJECT_ROOT = '/pipeline'  # where the Dockerfile puts this project inside the image
# Relative to the project root, inside the image: the Dockerfile links the embedded digits'
# directory here, because ExampleGen's driver fingerprints its input_base in the container,
# not on the machine that compiled the pipeline.
IMAGE_EMBEDDED_DATA = 'data/embedded'

# In-memory DirectRunner: fastest for the embedded 5,000 digits, where worker start-up would
# dominate. Bigger data: pass e.g. --direct_running_mode=multi_processing --direct_num_workers=0
# or another runner's flags (README, "Scaling Beam").
DEFAULT_BEAM_ARGS = ('--direct_running_mode=in_memory', '--direct_num_workers=1')

# Transform defaults (see components/transform/preprocessing.py for their meaning).
BINARIZATION = 'dynamic'
BINARIZATION_SEED = 0
CELEBA_IMAGE_SIZE = 64
# Measured (bench/results.jsonl): uint8 values in int64 features materialise in 14.1 KB per
# 64x64x3 example against 18.6 KB for [0, 1] floats, losslessly (BUILD_NOTES.md).
CELEBA_PIXELS = 'uint8'


def pipeline_name(dataset: str) -> str:
    return f'nvae-{dataset}'  # lower-case and hyphens: valid on every orchestrator (KFP v2 too)


def serving_dir(dataset: str) -> str:
    """Where Pusher writes blessed models, one numbered version directory each."""
    return os.path.join(OUTPUT_ROOT, 'serving', pipeline_name(dataset))


def pipeline_root(dataset: str) -> str:
    return os.path.join(OUTPUT_ROOT, 'pipelines', pipeline_name(dataset))


def metadata_path(dataset: str) -> str:
    return os.path.join(OUTPUT_ROOT, 'metadata', pipeline_name(dataset), 'metadata.sqlite')


def schema_dir(dataset: str) -> str:
    return os.path.join(SCHEMA_ROOT, dataset)


@dataclasses.dataclass(frozen=True)
class TrainingOptions:
    """What the Trainer runs; preset and overrides are model_code's (model_code/config.py)."""

    preset: str = 'cpu'
    overrides: dict[str, str] = dataclasses.field(default_factory=dict)
    train_steps: int = (
        450  # about 12 minutes of the cpu preset on 2 cores (bench/bench_pipeline.py)
    )
    batch_size: int = 64
    steps_per_epoch: int = 75  # about one pass over the embedded 4,500 training digits
    eval_steps: int = 5
    checkpoint_every_steps: int = 200
    mixed_precision: str = 'float32'
    jit_compile: str = 'auto'
    sample_temperature: float = 1.0

    def custom_config(self, dataset: str, binarization: str) -> dict:
        config = {k: v for k, v in dataclasses.asdict(self).items() if k != 'train_steps'}
        return {
            **config,
            'dataset': dataset,
            'binarization': binarization,
            'code_fingerprint': code_fingerprint(TRAINER_CODE),
        }


def code_fingerprint(patterns) -> str:
    digest = hashlib.sha256()
    for pattern in patterns:
        for path in sorted(glob.glob(os.path.join(PROJECT_ROOT, pattern), recursive=True)):
            digest.update(path[len(PROJECT_ROOT) :].encode())
            with open(path, 'rb') as f:
                digest.update(f.read())
    return digest.hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class EvaluationOptions:
    """What GenerativeEvaluator measures and when it blesses (components/evaluator/)."""

    split: str = 'eval'
    num_eval_examples: int = 500
    num_iw_samples: int = 50  # the paper uses 1000 (--iw_samples=1000); recorded with every result
    fid_num_samples: int = 1000
    sample_temperature: float = 1.0
    readjust_bn_passes: int = 100
    digit_classifier: bool = True  # MNIST: train the feature network for FID (cached across runs)
    digit_classifier_epochs: int = 10
    inception_weights: str = ''  # a local Inception-v3 no-top weights file enables *_inception_v3
    max_nll: float | None = None  # blessing thresholds; None: not checked
    max_fid: float | None = None
    max_regression: float = 0.01  # a candidate may be at most 1% worse than the last blessed model
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class AirflowOptions:
    """When the Airflow DAG (pipeline/airflow_dag.py) runs. Each field can be set in the
    scheduler's and workers' environment as NVAE_AIRFLOW_<FIELD>, e.g. NVAE_AIRFLOW_SCHEDULE=@daily
    (NVAE_AIRFLOW_SCHEDULE=none: only triggered runs)."""

    schedule: str | None = '@weekly'
    start_date: str = '2026-01-01'  # ISO date, UTC
    retries: int = 1
    retry_delay_minutes: int = 10

    @classmethod
    def from_env(cls, env) -> 'AirflowOptions':
        values = {}
        for field in dataclasses.fields(cls):
            text = env.get(f'NVAE_AIRFLOW_{field.name.upper()}')
            if text is None:
                continue
            if field.name == 'schedule':
                values[field.name] = None if text.lower() == 'none' else text
            else:
                values[field.name] = int(text) if field.type is int else text
        return cls(**values)


def airflow_root(dataset: str) -> str:
    """Default pipeline root, ML Metadata and serving directory of the Airflow deployment, kept
    apart from run_local.py's: the two runners record executions differently."""
    return os.path.join(OUTPUT_ROOT, 'airflow', pipeline_name(dataset))


def tensorflow_environment() -> None:
    """Environment defaults for TensorFlow; call before it is imported.

    TensorFlow enables its oneDNN kernels by default only on CPUs with AVX-512 VNNI/BF16/AMX; on
    AVX2 machines they make NVAE's convolution back-propagation about twice as fast
    (bench/bench_train_step.py).
    """
    os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '1')
