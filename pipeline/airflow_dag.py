"""The NVAE pipeline as a scheduled Airflow 2.x DAG (AirflowDagRunner), one task per component.

Airflow's dags_folder must contain this file (README, "Airflow"); pipeline/.airflowignore keeps
the scheduler away from the other modules here. The pipeline takes run_local.py's flags from
the environment variable NVAE_PIPELINE_ARGS (e.g. "--source=idx --data_dir=/data/mnist
--train_steps=2000 -- --direct_running_mode=multi_processing"); schedule, start date and retries
come from configs.AirflowOptions, each overridable as NVAE_AIRFLOW_<FIELD>.

The scheduler re-parses this file every few seconds, so parsing only builds the DAG: no data is
read (ExampleGen validates its source when it runs) and nothing is packaged (components import
the installed project). Two properties of Airflow's launcher shape the pipeline: it ignores
tfx.dsl.Cond (Pusher is gated by model_blessing on every runner), and it crashes registering
the Evaluator when the latest blessed model is the candidate itself, which a cached Trainer
produces; so this DAG runs without the cache, as scheduled retraining on fresh data would.
"""

import datetime
import os
import shlex

from pipeline import cli, configs

configs.tensorflow_environment()
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from tfx.orchestration import metadata  # noqa: E402
from tfx.orchestration.airflow.airflow_dag_runner import (  # noqa: E402
    AirflowDagRunner,
    AirflowPipelineConfig,
)

from pipeline import nvae_pipeline  # noqa: E402
from pipeline.run_spec import OutputPaths  # noqa: E402


def airflow_paths(dataset: str, given: cli.LocalOutputs) -> OutputPaths:
    """Kept apart from run_local.py's: the two runners record executions differently."""
    root = configs.airflow_root(dataset)
    return OutputPaths(
        pipeline_root=given.pipeline_root or os.path.join(root, 'pipeline'),
        serving_dir=given.serving_dir or os.path.join(root, 'serving'),
        metadata_path=given.metadata_path or os.path.join(root, 'metadata.sqlite'),
    )


def build_dag(env=os.environ):
    # The same run specification, and so the same checks of the settings, as every runner;
    # the data itself is checked by ExampleGen when it runs.
    spec, _ = cli.parse(
        cli.parser(__doc__, cli.LocalOutputs),
        shlex.split(env.get('NVAE_PIPELINE_ARGS', '')),
        airflow_paths,
        cli.LocalOutputs,
    )
    options = configs.AirflowOptions.from_env(env)
    pipeline = nvae_pipeline.create_pipeline(
        spec,
        metadata_connection_config=metadata.sqlite_metadata_connection_config(
            spec.paths.metadata_path
        ),
        enable_cache=False,
        user_code='installed',
        # Uncached, every run trains a new candidate; and Airflow's resolver would hand the
        # strategy every model the Trainer ever made as the candidate.
        baseline_excludes_candidate=False,
    )
    start = datetime.datetime.fromisoformat(options.start_date)
    return AirflowDagRunner(
        AirflowPipelineConfig(
            airflow_dag_config={
                'schedule': options.schedule,
                'start_date': start.replace(tzinfo=start.tzinfo or datetime.timezone.utc),
                # A paused or new deployment trains once, not once per missed interval.
                'catchup': False,
                'max_active_runs': 1,  # runs share the pipeline root and the baseline
                'default_args': {
                    'retries': options.retries,
                    'retry_delay': datetime.timedelta(minutes=options.retry_delay_minutes),
                },
            }
        )
    ).run(pipeline)


DAG = build_dag()
