"""Runs the NVAE pipeline on this machine: LocalDagRunner with SQLite ML Metadata.

  python -m pipeline.run_local                        # embedded MNIST digits (offline)
  python -m pipeline.run_local --source=idx --data_dir=~/mnist
  python -m pipeline.run_local --dataset=celeba --source=dir --data_dir=~/celeba \\
      -- --direct_running_mode=multi_processing --direct_num_workers=0

Everything after a bare '--' is passed to Beam unchanged (any runner's flags).
"""

import dataclasses
import json
import os
import sys

from nvae_tfx.options import setting
from pipeline import cli, configs, logging_setup, preflight, run_lock
from pipeline.run_spec import OutputPaths, RunSpec


@dataclasses.dataclass(frozen=True)
class LocalRun:
    """How run_local runs the pipeline."""

    no_cache: bool = setting(False, 're-run every component')
    wait: bool = setting(
        False, 'if another run is using the same outputs, wait for it instead of stopping'
    )
    verbose: bool = setting(False, 'show all TFX/Beam/TensorFlow logs')
    print_config: bool = setting(
        False,
        'print the resolved configuration (preset, schedule, evaluation protocol, paths, Beam '
        'args) as JSON and exit before anything runs',
    )


def local_paths(dataset: str, given: cli.LocalOutputs) -> OutputPaths:
    """The outputs given, else under outputs/ in this checkout."""
    return OutputPaths(
        pipeline_root=given.pipeline_root or configs.pipeline_root(dataset),
        serving_dir=given.serving_dir or configs.serving_dir(dataset),
        metadata_path=given.metadata_path or configs.metadata_path(dataset),
    )


def parse(argv) -> tuple[RunSpec, LocalRun]:
    """The run specification and run_local's settings from its flags (ValueError if bad)."""
    parser = cli.parser(__doc__, cli.LocalOutputs, LocalRun)
    return cli.parse(parser, argv, local_paths, cli.LocalOutputs, LocalRun)


def main(argv=None):
    try:  # the settings and the data files, before anything heavy starts
        spec, run = parse(sys.argv[1:] if argv is None else argv)
        if run.print_config:
            print(json.dumps(spec.as_dict(enable_cache=not run.no_cache), indent=1))
            return
        preflight.check_files(spec)
    except ValueError as e:
        sys.exit(f'error: {e}')
    paths = spec.paths
    try:
        with run_lock.hold([paths.metadata_path, paths.pipeline_root, paths.serving_dir], run.wait):
            _run(spec, run)
    except run_lock.Busy as e:  # outputs in use
        sys.exit(f'error: {e}')
    except KeyboardInterrupt:
        sys.exit('error: interrupted')
    except Exception as e:
        if run.verbose:
            raise
        sys.exit(f'error: {logging_setup.failure_line(e)} (--verbose shows the traceback)')


def _run(spec: RunSpec, run: LocalRun) -> None:
    logging_setup.configure(run.verbose)
    configs.tensorflow_environment()
    from tfx import v1 as tfx
    from tfx.orchestration.portable import tfx_runner

    from pipeline import nvae_pipeline, report

    metadata_path = spec.paths.metadata_path
    pipeline = nvae_pipeline.create_pipeline(
        spec,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            metadata_path
        ),
        enable_cache=not run.no_cache,
    )
    print(f'Pipeline {spec.name} (ML Metadata: {metadata_path})', flush=True)
    runs_before = set()
    if os.path.exists(metadata_path):
        store = report.open_store(metadata_path)
        runs_before = {r.id for r, _ in report.pipeline_runs(store)}
        for execution in run_lock.cancel_abandoned_executions(store, spec.name):
            print(
                f'{report.node_id(store, execution)} execution {execution.id} was left running '
                'by a run that did not finish; marked CANCELED',
                flush=True,
            )
    # Compiling packages the module files into wheels; setuptools prints every step.
    with logging_setup.captured_output(show=run.verbose):
        compiled = tfx_runner._make_pipeline_proto(pipeline)
    try:
        tfx.orchestration.LocalDagRunner().run_with_ir(compiled)
    except Exception as e:
        try:
            _print_report(metadata_path, runs_before, logging_setup.failure_line(e))
        except Exception as unreported:  # the run's own error must still end the run
            print(f'warning: no report: {logging_setup.failure_line(unreported)}', file=sys.stderr)
        raise
    print(report.run_summary(metadata_path, spec.name), flush=True)
    _print_report(metadata_path, runs_before)


def _print_report(metadata_path: str, runs_before: set, failure: str = '') -> None:
    """Prints where this run's report is (writing it from ML Metadata where the RunReport
    component did not run); a failed run's message is first recorded on its failed component."""
    from pipeline import report
    from pipeline.run_report import record, writer

    store = report.open_store(metadata_path)
    runs = [run for run, _ in report.pipeline_runs(store) if run.id not in runs_before]
    if not runs:
        print('No report: the run recorded nothing in ML Metadata.', flush=True)
        return
    if failure:
        record.record_failure(store, runs[-1], failure)
    print(f'Report: {writer.of_run(store, runs[-1], metadata_path)}', flush=True)


if __name__ == '__main__':
    main()
