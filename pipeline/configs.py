"""What the runners share: paths, names, Beam defaults, the Airflow schedule. The components'
settings and their defaults are typed options in nvae_tfx/options.py."""

import dataclasses
import os

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUTPUT_ROOT = os.path.join(PROJECT_ROOT, 'outputs')

SCHEMA_ROOT = os.path.join(PROJECT_ROOT, 'schemas')
TRANSFORM_MODULE = os.path.join(PROJECT_ROOT, 'components', 'transform', 'preprocessing.py')
TRAINER_MODULE = os.path.join(PROJECT_ROOT, 'components', 'trainer', 'trainer_module.py')
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
