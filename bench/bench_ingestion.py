"""Times ExampleGen + Transform (examples/s) on the embedded 5,000 digits, a generated
full-size MNIST IDX set (60,000 + 10,000) and a generated CelebA-layout folder of 178x218
JPEGs, with the in-memory and the multi-processing DirectRunner.

  python -m bench.bench_ingestion                      # everything (about 30 min on 2 cores)
  python -m bench.bench_ingestion --datasets embedded --modes in_memory

Figures are printed and appended, with machine and config, to bench/results.jsonl.
"""

import argparse
import multiprocessing
import os
import tempfile
import time

from nvae_tfx.options import CELEBA_PIXELS, TransformOptions
from pipeline import logging_setup

MODES = {
    'in_memory': ['--direct_running_mode=in_memory', '--direct_num_workers=1'],
    'multi_processing': ['--direct_running_mode=multi_processing', '--direct_num_workers=2'],
}


def _write_face(args):
    from nvae_tfx.data import synthetic

    path, seed = args
    if not os.path.exists(path):
        with open(path, 'wb') as f:
            f.write(synthetic.jpeg_bytes(synthetic.face(seed)))


def prepare(dataset: str, work_dir: str, celeba_images: int):
    """Returns SourceOptions for the dataset, generating its files once under work_dir."""
    from nvae_tfx.data import synthetic
    from nvae_tfx.options import SourceOptions

    if dataset == 'embedded':
        return SourceOptions()
    if dataset == 'mnist_full':
        data_dir = os.path.join(work_dir, 'mnist_full')
        if not os.path.exists(os.path.join(data_dir, 't10k-labels-idx1-ubyte.gz')):
            synthetic.write_mnist_idx(data_dir, n_train=60000, n_test=10000, gz=True)
        return SourceOptions(source='idx', data_dir=data_dir)
    data_dir = os.path.join(work_dir, f'celeba_{celeba_images}')
    image_dir = os.path.join(data_dir, 'img_align_celeba')
    os.makedirs(image_dir, exist_ok=True)
    # CelebA's own proportions: about 80% train, 10% valid, 10% test.
    counts = (celeba_images * 8 // 10, celeba_images // 10)
    counts += (celeba_images - sum(counts),)
    names = [f'{i:06d}.jpg' for i in range(1, celeba_images + 1)]
    with multiprocessing.Pool() as pool:
        pool.map(
            _write_face,
            [(os.path.join(image_dir, n), i + 1) for i, n in enumerate(names)],
            chunksize=256,
        )
    partitions = [p for p, c in enumerate(counts) for _ in range(c)]
    with open(os.path.join(data_dir, 'list_eval_partition.txt'), 'w') as f:
        f.writelines(f'{n} {p}\n' for n, p in zip(names, partitions, strict=True))
    return SourceOptions(dataset='celeba', source='dir', data_dir=data_dir)


def _bytes_per_example(examples_uri: str, count: int) -> float:
    """Size on disk (gzipped TFRecords) of the transformed examples, per example."""
    total = sum(
        os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(examples_uri) for f in files
    )
    return round(total / count, 1)


def run_once(source, beam_args, root: str, transform=None):
    """Runs the ingestion pipeline uncached; returns its wall time, the seconds spent in each
    component, the example counts and the transformed bytes per example."""
    from tfx import v1 as tfx

    from pipeline import nvae_pipeline, report
    from pipeline.run_spec import OutputPaths, RunSpec

    metadata_path = os.path.join(root, 'metadata.sqlite')
    spec = RunSpec.create(
        source,
        OutputPaths(os.path.join(root, 'root'), os.path.join(root, 'serving'), metadata_path),
        transform=transform,
        beam_args=beam_args,
        name='nvae-bench',
    )
    pipeline = nvae_pipeline.create_pipeline(
        spec,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            metadata_path
        ),
        enable_cache=False,
    )
    start = time.time()
    tfx.orchestration.LocalDagRunner().run(pipeline)
    wall = time.time() - start
    store = report.open_store(metadata_path)
    seconds, counts, transformed_uri = {}, {}, None
    for execution in store.get_executions_by_context(report.latest_run(store, 'nvae-bench').id):
        node = report.node_id(store, execution)
        seconds[node] = (
            execution.last_update_time_since_epoch - execution.create_time_since_epoch
        ) / 1000
        if node == 'Transform':
            transformed_uri = report.outputs_of(store, execution.id)['transformed_examples'][0].uri
        if node == 'ImageExampleGen':
            props = report.custom_properties(report.outputs_of(store, execution.id)['examples'][0])
            counts = {
                k[len('num_examples_') :]: v
                for k, v in props.items()
                if k.startswith('num_examples_')
            }
    return wall, seconds, counts, _bytes_per_example(transformed_uri, sum(counts.values()))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument('--datasets', default='embedded,mnist_full,celeba')
    p.add_argument('--modes', default='in_memory,multi_processing')
    p.add_argument('--celeba_images', type=int, default=20000)
    p.add_argument(
        '--celeba_pixels',
        default=TransformOptions.celeba_pixels,
        choices=CELEBA_PIXELS,
        help='how Transform stores CelebA pixels',
    )
    p.add_argument('--work_dir', default=os.path.join(tempfile.gettempdir(), 'nvae-bench-data'))
    args = p.parse_args()
    logging_setup.configure(verbose=False)
    from bench.machine import append_result

    for dataset in args.datasets.split(','):
        source = prepare(dataset, args.work_dir, args.celeba_images)
        for mode in args.modes.split(','):
            transform = TransformOptions(dataset=source.dataset, celeba_pixels=args.celeba_pixels)
            with tempfile.TemporaryDirectory() as root:
                wall, seconds, counts, size = run_once(source, MODES[mode], root, transform)
            n = sum(counts.values())
            ingest = seconds['ImageExampleGen'] + seconds['Transform']
            record = append_result(
                {
                    'benchmark': 'ingestion',
                    'dataset': dataset,
                    'beam_mode': mode,
                    'beam_args': MODES[mode],
                    'transform_config': transform.to_custom_config(),
                    'examples': counts,
                    'transformed_bytes_per_example': size,
                    'seconds_per_component': seconds,
                    'examplegen_plus_transform_s': round(ingest, 1),
                    'examples_per_s': round(n / ingest, 1),
                    'pipeline_wall_s': round(wall, 1),
                }
            )
            print(
                f'{dataset:<11} {mode:<17} {n:>7} examples  '
                f'ExampleGen {seconds["ImageExampleGen"]:6.1f}s'
                f'  Transform {seconds["Transform"]:6.1f}s  -> {record["examples_per_s"]:8.1f} '
                f'examples/s  {size:.0f} B/example  (pipeline {wall:.0f}s)',
                flush=True,
            )


if __name__ == '__main__':
    main()
