"""Runs the NVAE pipeline on this machine: LocalDagRunner with SQLite ML Metadata.

  python -m pipeline.run_local                        # embedded MNIST digits (offline)
  python -m pipeline.run_local --source=idx --data_dir=~/mnist
  python -m pipeline.run_local --dataset=celeba --source=dir --data_dir=~/celeba \\
      -- --direct_running_mode=multi_processing --direct_num_workers=0

Everything after a bare '--' is passed to Beam unchanged (any runner's flags).
"""

import os
import sys

from pipeline import cli, configs, logging_setup, preflight, run_lock


def parse_args(argv):
    p = cli.pipeline_parser(__doc__)
    p.add_argument('--metadata_path', help='SQLite ML Metadata file; default: outputs/metadata/...')
    p.add_argument('--no_cache', action='store_true', help='re-run every component')
    p.add_argument(
        '--wait',
        action='store_true',
        help='if another run is using the same outputs, wait for it instead of stopping',
    )
    p.add_argument('--verbose', action='store_true', help='show all TFX/Beam/TensorFlow logs')
    p.add_argument(
        '--print_config',
        action='store_true',
        help='print the resolved configuration (preset, schedule, evaluation protocol, Beam '
        'args) as JSON and exit before anything runs',
    )
    return cli.parse(p, argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        preflight.check_settings(args)
    except ValueError as e:
        sys.exit(f'error: {e}')
    name = configs.pipeline_name(args.dataset)
    metadata_path = os.path.abspath(args.metadata_path or configs.metadata_path(args.dataset))
    pipeline_root = args.pipeline_root or configs.pipeline_root(args.dataset)
    serving_dir = cli.local_path(args.serving_dir or configs.serving_dir(args.dataset))
    if args.print_config:
        cli.print_config(
            args,
            pipeline_root=pipeline_root,
            metadata_path=metadata_path,
            serving_dir=serving_dir,
            enable_cache=not args.no_cache,
        )
        return
    try:
        preflight.check_files(args)
    except ValueError as e:
        sys.exit(f'error: {e}')
    try:
        with run_lock.hold([metadata_path, pipeline_root, serving_dir], wait=args.wait):
            _run(args, name, metadata_path, pipeline_root, serving_dir)
    except run_lock.Busy as e:
        sys.exit(f'error: {e}')
    except KeyboardInterrupt:
        sys.exit('error: interrupted')
    except Exception as e:
        if args.verbose:
            raise
        sys.exit(f'error: {logging_setup.failure_line(e)} (--verbose shows the traceback)')


def _run(args, name: str, metadata_path: str, pipeline_root: str, serving_dir: str) -> None:
    logging_setup.configure(args.verbose)
    configs.tensorflow_environment()
    from tfx import v1 as tfx
    from tfx.orchestration.portable import tfx_runner

    from pipeline import nvae_pipeline, report

    connection = tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata_path)
    pipeline = nvae_pipeline.create_pipeline(
        pipeline_name=name,
        pipeline_root=pipeline_root,
        source=cli.source_options(args),
        transform=cli.transform_options(args),
        metadata_connection_config=connection,
        beam_pipeline_args=args.beam_args,
        enable_cache=not args.no_cache,
        training=cli.training_options(args),
        evaluation=cli.evaluation_options(args),
        serving_dir=serving_dir,
    )
    print(f'Pipeline {name} (ML Metadata: {metadata_path})', flush=True)
    runs_before = set()
    if os.path.exists(metadata_path):
        store = report.open_store(metadata_path)
        runs_before = {run.id for run, _ in report.pipeline_runs(store)}
        for execution in run_lock.cancel_abandoned_executions(store, name):
            print(
                f'{report.node_id(store, execution)} execution {execution.id} was left running '
                'by a run that did not finish; marked CANCELED',
                flush=True,
            )
    # Compiling packages the module files into wheels; setuptools prints every step.
    with logging_setup.captured_output(show=args.verbose):
        compiled = tfx_runner._make_pipeline_proto(pipeline)
    try:
        tfx.orchestration.LocalDagRunner().run_with_ir(compiled)
    except Exception as e:
        try:
            _print_report(metadata_path, runs_before, logging_setup.failure_line(e))
        except Exception as unreported:  # the run's own error must still end the run
            print(f'warning: no report: {logging_setup.failure_line(unreported)}', file=sys.stderr)
        raise
    print(report.run_summary(metadata_path, name), flush=True)
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
