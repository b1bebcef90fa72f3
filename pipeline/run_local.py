"""Runs the NVAE pipeline on this machine: LocalDagRunner with SQLite ML Metadata.

  python pipeline/run_local.py                        # embedded MNIST digits (offline)
  python pipeline/run_local.py --source=idx --data_dir=~/mnist
  python pipeline/run_local.py --dataset=celeba --source=dir --data_dir=~/celeba \\
      -- --direct_running_mode=multi_processing --direct_num_workers=0

Everything after a bare '--' is passed to Beam unchanged (any runner's flags).
"""
import argparse
import os
import sys

if os.path.dirname(os.path.abspath(__file__)) == os.path.abspath(sys.path[0]):
  sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from pipeline import configs, logging_setup  # noqa: E402


def parse_args(argv):
  own, beam_args = (argv[:argv.index('--')], argv[argv.index('--') + 1:]) if '--' in argv else (
      argv, None)
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument('--dataset', choices=['mnist', 'celeba'], default='mnist')
  p.add_argument('--source', help='mnist: embedded (default) | idx | tfds; celeba: dir (default) '
                 '| tfds')
  p.add_argument('--data_dir', help='directory with the IDX files, the CelebA folder or a '
                 'prepared TFDS data_dir')
  p.add_argument('--on_corrupt', choices=['fail', 'skip'], default='fail',
                 help='unreadable images: stop with an error (default) or skip, log and count')
  p.add_argument('--binarization', choices=['dynamic', 'static'], default=configs.BINARIZATION)
  p.add_argument('--binarization_seed', type=int, default=configs.BINARIZATION_SEED)
  p.add_argument('--image_size', type=int, default=configs.CELEBA_IMAGE_SIZE)
  p.add_argument('--celeba_pixels', choices=['uint8', 'float'], default=configs.CELEBA_PIXELS)
  p.add_argument('--pipeline_root', help='default: outputs/pipelines/<pipeline name>')
  p.add_argument('--metadata_path', help='SQLite ML Metadata file; default: outputs/metadata/...')
  p.add_argument('--no_cache', action='store_true', help='re-run every component')
  p.add_argument('--verbose', action='store_true', help='show all TFX/Beam/TensorFlow logs')
  args = p.parse_args(own)
  args.source = args.source or ('embedded' if args.dataset == 'mnist' else 'dir')
  args.beam_args = beam_args if beam_args is not None else list(configs.DEFAULT_BEAM_ARGS)
  return args


def main(argv=None):
  args = parse_args(sys.argv[1:] if argv is None else argv)
  logging_setup.configure(args.verbose)
  from tfx import v1 as tfx

  from components.example_gen.errors import DataError
  from components.example_gen.options import SourceOptions
  from pipeline import nvae_pipeline, report

  name = configs.pipeline_name(args.dataset)
  metadata_path = args.metadata_path or configs.metadata_path(args.dataset)
  try:
    source = SourceOptions(dataset=args.dataset, source=args.source,
                           data_dir=args.data_dir and os.path.expanduser(args.data_dir),
                           on_corrupt=args.on_corrupt)
    pipeline = nvae_pipeline.create_pipeline(
        pipeline_name=name,
        pipeline_root=args.pipeline_root or configs.pipeline_root(args.dataset),
        source=source,
        transform_custom_config=nvae_pipeline.transform_config(
            args.dataset, args.binarization, args.binarization_seed, args.image_size,
            args.celeba_pixels),
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            metadata_path),
        beam_pipeline_args=args.beam_args,
        enable_cache=not args.no_cache)
  except (DataError, ValueError) as e:
    sys.exit(f'error: {e}')
  print(f'Running pipeline {name} (ML Metadata: {metadata_path})', flush=True)
  tfx.orchestration.LocalDagRunner().run(pipeline)
  print(report.run_summary(metadata_path, name))


if __name__ == '__main__':
  main()
