"""Runs the NVAE pipeline on this machine: LocalDagRunner with SQLite ML Metadata.

  python -m pipeline.run_local                        # embedded MNIST digits (offline)
  python -m pipeline.run_local --source=idx --data_dir=~/mnist
  python -m pipeline.run_local --dataset=celeba --source=dir --data_dir=~/celeba \\
      -- --direct_running_mode=multi_processing --direct_num_workers=0

Everything after a bare '--' is passed to Beam unchanged (any runner's flags).
"""

import os
import sys

from pipeline import cli, configs, logging_setup


def parse_args(argv):
    p = cli.pipeline_parser(__doc__)
    p.add_argument('--metadata_path', help='SQLite ML Metadata file; default: outputs/metadata/...')
    p.add_argument('--no_cache', action='store_true', help='re-run every component')
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
    name = configs.pipeline_name(args.dataset)
    metadata_path = args.metadata_path or configs.metadata_path(args.dataset)
    pipeline_root = args.pipeline_root or configs.pipeline_root(args.dataset)
    serving_dir = os.path.abspath(args.serving_dir or configs.serving_dir(args.dataset))
    if args.print_config:
        cli.print_config(
            args,
            pipeline_root=pipeline_root,
            metadata_path=metadata_path,
            serving_dir=serving_dir,
            enable_cache=not args.no_cache,
        )
        return
    logging_setup.configure(args.verbose)
    configs.tensorflow_environment()
    from tfx import v1 as tfx

    from nvae_tfx.data.errors import DataError
    from pipeline import nvae_pipeline, report

    try:
        pipeline = nvae_pipeline.create_pipeline(
            pipeline_name=name,
            pipeline_root=pipeline_root,
            source=cli.source_options(args),
            transform=cli.transform_options(args),
            metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
                metadata_path
            ),
            beam_pipeline_args=args.beam_args,
            enable_cache=not args.no_cache,
            training=cli.training_options(args),
            evaluation=cli.evaluation_options(args),
            serving_dir=serving_dir,
        )
    except (DataError, ValueError) as e:
        sys.exit(f'error: {e}')
    print(f'Running pipeline {name} (ML Metadata: {metadata_path})', flush=True)
    tfx.orchestration.LocalDagRunner().run(pipeline)
    print(report.run_summary(metadata_path, name))


if __name__ == '__main__':
    main()
