"""The default pipeline end to end, and what the Evaluator's settings cost.

  python -m bench.bench_pipeline                   # = python -m pipeline.run_local, from scratch
  python -m bench.bench_pipeline -- --preset=tiny --train_steps=20   # other run_local flags
  python -m bench.bench_pipeline --eval_costs_only # only part 2, on the last benchmark run

1. Runs run_local.py with a fresh pipeline root and ML Metadata store (outputs/bench/pipeline),
   timing every executor inside the LocalDagRunner: orchestration overhead is the pipeline's
   wall time minus the time spent in executors (target: under 10%).
2. With that run's model, digit classifier and eval images: importance-weighted NLL at K=100
   and K=1000 (seconds per eval example, on one of the Evaluator's batches of 50, after the
   function is traced) and FID at 1,000 and 10,000 samples (seconds).

Figures are printed and appended, with machine and config, to bench/results.jsonl.
"""

import argparse
import glob
import os
import shutil
import sys
import time

from bench import machine
from pipeline import cli, configs, logging_setup

WORK_DIR = os.path.join(configs.OUTPUT_ROOT, 'bench', 'pipeline')


def run_pipeline(run_local_args):
    """{node: executor seconds}, wall seconds and the run's metadata path."""
    from tfx.orchestration.portable import beam_executor_operator, python_executor_operator

    from pipeline import run_local

    executor_s = {}

    def timed(run_executor):
        def wrapper(self, execution_info, *args, **kwargs):
            start = time.perf_counter()
            try:
                return run_executor(self, execution_info, *args, **kwargs)
            finally:
                node = execution_info.pipeline_node.node_info.id
                executor_s[node] = executor_s.get(node, 0.0) + time.perf_counter() - start

        return wrapper

    for operator in (
        python_executor_operator.PythonExecutorOperator,
        beam_executor_operator.BeamExecutorOperator,
    ):
        operator.run_executor = timed(operator.run_executor)
    shutil.rmtree(WORK_DIR, ignore_errors=True)
    metadata_path = os.path.join(WORK_DIR, 'metadata.sqlite')
    start = time.perf_counter()
    run_local.main(
        [
            f'--pipeline_root={WORK_DIR}/root',
            f'--metadata_path={metadata_path}',
            f'--serving_dir={WORK_DIR}/serving',
            *run_local_args,
        ]
    )
    return executor_s, time.perf_counter() - start, metadata_path


def _single(pattern):
    [path] = glob.glob(os.path.join(WORK_DIR, 'root', pattern))
    return path


def eval_costs(k_values, fid_sizes):
    """Seconds for the Evaluator's two expensive parts at several settings."""
    import keras
    import numpy as np
    import tensorflow as tf

    import model_code.nvae  # noqa: F401  (registers the NVAE classes)
    from nvae_tfx import datasets
    from nvae_tfx.data import records, transformed
    from nvae_tfx.evaluation import feature_networks, generative_metrics
    from nvae_tfx.training import export

    model = keras.saving.load_model(export.keras_model_path(_single('Trainer/model/*')))
    data = transformed.read_transformed_split(
        _single('Transform/transformed_examples/*'), _single('Transform/transform_graph/*'), 'eval'
    )
    real = np.asarray(transformed.to_model_images(data[records.IMAGE]))
    network = feature_networks.load_digit_classifier(
        _single('DigitClassifierTrainer/feature_network/*')
    )
    images = datasets.fixed_binarize(real, 0)
    results = {}
    batch = 50  # the Evaluator's
    for k in k_values:
        iw = generative_metrics.iw_log_likelihood(model, k, batch)
        x = tf.constant(images[:batch])
        start = time.perf_counter()
        iw(x)  # traces: the graph holds one forward pass per chunk of samples
        first = time.perf_counter() - start
        start = time.perf_counter()
        nll = -float(np.mean(keras.ops.convert_to_numpy(iw(x))))
        seconds = time.perf_counter() - start
        results[f'nll_k{k}'] = {
            'examples': batch,
            's_per_example': round(seconds / batch, 4),
            'first_call_s': round(first, 1),
            'nll_nats': round(nll, 3),
        }
        print(
            f'NLL K={k}: {seconds / batch:.3f} s per example (batch of {batch}; the first call, '
            f'with tracing, {first:.1f} s), {nll:.2f} nats'
        )
    reference = generative_metrics.features_by_network([network], np.array_split(real, 2))
    for size in fid_sizes:
        start = time.perf_counter()
        generated = generative_metrics.samples(model, size, 1.0, batch_size=500, seed=0)
        sampled = time.perf_counter() - start
        fid = generative_metrics.sample_quality(
            generative_metrics.features_by_network([network], np.array_split(generated, 4)),
            reference,
            [network],
            seed=0,
        )
        total = time.perf_counter() - start
        results[f'fid_{size}'] = {
            's': round(total, 1),
            'sampling_s': round(sampled, 1),
            'real_images': len(real),
            'fid': round(fid[f'fid_{network.name}'], 3),
        }
        print(
            f'FID at {size} samples: {total:.1f} s ({sampled:.1f} s sampling) '
            f'vs {len(real)} real images: {fid[f"fid_{network.name}"]:.2f}'
        )
    return results


def main():
    own, run_local_args = cli.split_beam_args(sys.argv[1:])
    run_local_args = run_local_args or []
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument('--eval_costs_only', action='store_true')
    args = p.parse_args(own)
    logging_setup.configure()
    configs.tensorflow_environment()

    if not args.eval_costs_only:
        executor_s, wall_s, metadata_path = run_pipeline(run_local_args)
        inside = sum(executor_s.values())
        record = machine.append_result(
            {
                'benchmark': 'pipeline_end_to_end',
                'run_local_args': run_local_args,
                'wall_s': round(wall_s, 1),
                'executor_s': {k: round(v, 1) for k, v in executor_s.items()},
                'orchestration_overhead_s': round(wall_s - inside, 1),
                'orchestration_overhead_fraction': round((wall_s - inside) / wall_s, 4),
                'metrics': _evaluation_metrics(metadata_path),
            }
        )
        print('\nExecutor time per component:')
        for node, seconds in sorted(executor_s.items(), key=lambda kv: -kv[1]):
            print(f'  {node:<28} {seconds:8.1f} s')
        print(
            f'Pipeline wall time {wall_s:.1f} s; orchestration overhead {wall_s - inside:.1f} s '
            f'({record["orchestration_overhead_fraction"]:.1%})'
        )
    costs = eval_costs((100, 1000), (1000, 10000))
    machine.append_result(
        {'benchmark': 'evaluation_cost', 'model': _single('Trainer/model/*'), **costs}
    )


def _evaluation_metrics(metadata_path):
    from pipeline import report

    store = report.open_store(metadata_path, read_only=True)
    [evaluation] = store.get_artifacts_by_type('ModelEvaluation')
    return report.custom_properties(evaluation)


if __name__ == '__main__':
    main()
