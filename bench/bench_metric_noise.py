"""The spread of each metric over evaluation seeds: one trained model, scored by the Evaluator's
own code under an evaluation protocol, once per seed (the seed draws the MNIST binarization of
the scored digits, the importance samples and the generated images). The blessing's tolerances
come from it (docs/blessing.md).

    python -m bench.bench_metric_noise --metadata_path outputs/metadata/nvae-mnist/metadata.sqlite

Scores the model of the latest completed Trainer execution in that ML Metadata store, on the
data it was trained from, with the latest digit classifier (MNIST) as feature network. Prints
and appends to bench/results.jsonl each metric's mean, standard deviation, range and relative
standard deviation over the seeds.
"""

import argparse
import dataclasses
import json
import statistics

from bench.machine import append_result

COMPARED = ('nll_nats', 'neg_elbo_nats', 'fid_mnist_classifier', 'fid_inception_v3')
REPORTED = (*COMPARED, 'precision_mnist_classifier', 'recall_mnist_classifier')


def spread(values: list[float]) -> dict:
    mean = statistics.fmean(values)
    std = statistics.stdev(values)
    return {
        'mean': round(mean, 4),
        'std': round(std, 4),
        'min': round(min(values), 4),
        'max': round(max(values), 4),
        'relative_std': round(std / abs(mean), 5),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--metadata_path', default='outputs/metadata/nvae-mnist/metadata.sqlite')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2, 3, 4])
    parser.add_argument('--eval_protocol', default='quick')
    parser.add_argument('--note', default='')
    parser.add_argument('--no-save', action='store_true')
    args = parser.parse_args(argv)

    from ml_metadata.proto import metadata_store_pb2

    from components.evaluator.executor import Executor, Scoring, load_nvae
    from nvae_tfx.options import EvaluationOptions
    from pipeline import report

    store = report.open_store(args.metadata_path, read_only=True)
    complete = metadata_store_pb2.Execution.COMPLETE

    def latest(node):
        executions = [
            e
            for e in store.get_executions()
            if report.node_id(store, e) == node and e.last_known_state == complete
        ]
        return max(executions, key=lambda e: e.id) if executions else None

    trainer = latest('Trainer')
    inputs = report.inputs_of(store, trainer.id)
    [model] = report.outputs_of(store, trainer.id)['model']
    classifier = latest('DigitClassifierTrainer')
    feature_network = report.outputs_of(store, classifier.id) if classifier else {}
    options = EvaluationOptions(eval_protocol=args.eval_protocol).resolved()
    nvae = load_nvae(model)
    networks = Executor._feature_networks(feature_network, options)
    runs = {}
    for seed in args.seeds:
        seeded = dataclasses.replace(options, eval_seed=seed)
        scoring = Scoring.prepare(
            seeded,
            inputs['examples'][0].uri,
            inputs['transform_graph'][0].uri,
            networks,
            nvae.config.dataset,
        )
        metrics, _ = scoring.score(nvae)
        runs[seed] = {k: metrics[k] for k in REPORTED if k in metrics}
        print(f'seed {seed}:', json.dumps(runs[seed]), flush=True)
    measured = sorted({k for run in runs.values() for k in run})
    result = {
        'benchmark': 'metric_noise',
        'model_uri': model.uri,
        'protocol': {
            k: v
            for k, v in scoring.measured_with.items()
            if k not in ('binarization_seed',) and not k.startswith('readjust_bn')
        },
        'seeds': args.seeds,
        'per_seed': runs,
        'spread': {k: spread([runs[s][k] for s in args.seeds]) for k in measured},
        'note': args.note,
    }
    if not args.no_save:
        result = append_result(result)
    print(json.dumps(result['spread'], indent=1))
    return result


if __name__ == '__main__':
    main()
