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
  p.add_argument('--preset', default=configs.TrainingOptions.preset,
                 help='NVAE preset: tiny | cpu (default) | paper_mnist | paper_celeba64')
  p.add_argument('--set', action='append', default=[], metavar='FIELD=VALUE',
                 help='override a model_code config field, e.g. --set num_channels_enc=32')
  p.add_argument('--train_steps', type=int, default=configs.TrainingOptions.train_steps)
  p.add_argument('--batch_size', type=int, default=configs.TrainingOptions.batch_size)
  p.add_argument('--steps_per_epoch', type=int, default=configs.TrainingOptions.steps_per_epoch)
  p.add_argument('--mixed_precision', default='float32',
                 choices=['float32', 'mixed_float16', 'mixed_bfloat16'], help='GPU only')
  p.add_argument('--no_train', action='store_true', help='stop after Transform')
  defaults = configs.EvaluationOptions()
  p.add_argument('--eval_split', default=defaults.split, help="'eval' or 'test' (CelebA)")
  p.add_argument('--eval_examples', type=int, default=defaults.num_eval_examples)
  p.add_argument('--iw_samples', type=int, default=defaults.num_iw_samples,
                 help='importance samples K for the NLL bound (the paper: 1000)')
  p.add_argument('--fid_samples', type=int, default=defaults.fid_num_samples)
  p.add_argument('--sample_temperature', type=float, default=defaults.sample_temperature)
  p.add_argument('--readjust_bn_passes', type=int, default=defaults.readjust_bn_passes)
  p.add_argument('--no_digit_classifier', action='store_true',
                 help='MNIST: no FID/precision/recall on the trained digit classifier')
  p.add_argument('--inception_weights', default='',
                 help='Inception-v3 no-top weights file (.h5): adds *_inception_v3 metrics')
  p.add_argument('--max_nll', type=float, default=defaults.max_nll,
                 help='blessing threshold in nats (default: none)')
  p.add_argument('--max_fid', type=float, default=defaults.max_fid,
                 help='blessing threshold on the first feature network (default: none)')
  p.add_argument('--max_regression', type=float, default=defaults.max_regression,
                 help='allowed fraction by which NLL/FID may be worse than the last blessed')
  p.add_argument('--serving_dir', help='Pusher destination; default outputs/serving/...')
  p.add_argument('--pipeline_root', help='default: outputs/pipelines/<pipeline name>')
  p.add_argument('--metadata_path', help='SQLite ML Metadata file; default: outputs/metadata/...')
  p.add_argument('--no_cache', action='store_true', help='re-run every component')
  p.add_argument('--verbose', action='store_true', help='show all TFX/Beam/TensorFlow logs')
  args = p.parse_args(own)
  args.source = args.source or ('embedded' if args.dataset == 'mnist' else 'dir')
  args.beam_args = beam_args if beam_args is not None else list(configs.DEFAULT_BEAM_ARGS)
  bad = [item for item in args.set if '=' not in item]
  if bad:
    p.error(f'--set expects FIELD=VALUE, got {bad[0]!r}')
  return args


def training_options(args):
  if args.no_train:
    return None
  return configs.TrainingOptions(
      preset=args.preset, overrides=dict(item.split('=', 1) for item in args.set),
      train_steps=args.train_steps, batch_size=args.batch_size,
      steps_per_epoch=args.steps_per_epoch, mixed_precision=args.mixed_precision)


def evaluation_options(args):
  return configs.EvaluationOptions(
      split=args.eval_split, num_eval_examples=args.eval_examples,
      num_iw_samples=args.iw_samples, fid_num_samples=args.fid_samples,
      sample_temperature=args.sample_temperature, readjust_bn_passes=args.readjust_bn_passes,
      digit_classifier=not args.no_digit_classifier,
      inception_weights=args.inception_weights and os.path.abspath(args.inception_weights),
      max_nll=args.max_nll, max_fid=args.max_fid, max_regression=args.max_regression)


def main(argv=None):
  args = parse_args(sys.argv[1:] if argv is None else argv)
  logging_setup.configure(args.verbose)
  # TensorFlow enables its oneDNN kernels by default only on CPUs with AVX-512 VNNI/BF16/AMX;
  # on AVX2 machines they make NVAE's convolution back-propagation about twice as fast
  # (bench/bench_train_step.py). Must be set before TensorFlow is imported.
  os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '1')
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
        enable_cache=not args.no_cache,
        training=training_options(args),
        evaluation=evaluation_options(args),
        serving_dir=args.serving_dir)
  except (DataError, ValueError) as e:
    sys.exit(f'error: {e}')
  print(f'Running pipeline {name} (ML Metadata: {metadata_path})', flush=True)
  tfx.orchestration.LocalDagRunner().run(pipeline)
  print(report.run_summary(metadata_path, name))


if __name__ == '__main__':
  main()
