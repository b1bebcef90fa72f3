"""The Vertex jobs the tests run on the local harness (tests/conftest.py's `gcs` and `image`): their
bucket, their flags (the fewest steps and samples that still train, score, bless and push),
compiled by run_kubeflow as a user compiles them."""

import json
import os

import tensorflow as tf

from nvae_tfx.evaluation import feature_networks
from pipeline import configs, run_kubeflow

BUCKET = 'nvae-vertex'
IMAGE = 'local/nvae-tfx:test'


# The fewest steps and samples that still train, score (NLL, FID, precision/recall), bless and push;
# checkpoints at epoch ends only.
TINY = (
    '--preset=tiny --train_steps=4 --batch_size=8 --steps_per_epoch=2 --checkpoint_every_steps=0 '
    '--jit_compile=false --eval_examples=16 --iw_samples=2 --fid_samples=24 '
    '--readjust_bn_passes=1 --gpus=0'
).split()


# The resolver of the last blessed model compiles into two tasks: blessings, then their models.
MODEL_RESOLVER = 'latest_blessed_model_resolver-model-resolver'


# The jobs tests/extended runs: the default MNIST job, and CelebA with its data and
# Inception weights on Cloud Storage.
MNIST_FLAGS = ('--digit_classifier_epochs=1',)
CELEBA_WEIGHTS = f'gs://{BUCKET}/weights/{feature_networks.INCEPTION_WEIGHTS_FILE}'
CELEBA_FLAGS = (
    '--dataset=celeba',
    '--source=dir',
    f'--data_dir=gs://{BUCKET}/data/celeba',
    '--image_size=32',
    '--batch_size=4',
    '--eval_split=test',
    '--fid_samples=8',
    f'--inception_weights={CELEBA_WEIGHTS}',
)


def compile_job(directory, name, *flags) -> str:
    """Compiles the job with run_kubeflow; returns the job file."""
    job_file = os.path.join(directory, f'{name}.json')
    run_kubeflow.main(
        [f'--pipeline_root=gs://{BUCKET}/{name}', f'--image={IMAGE}', f'--output={job_file}']
        + TINY
        + list(flags)
        # Beam in the test's processes as in local runs: a worker process per CPU costs more
        # in start-up than it gains on tiny data.
        + ['--', *configs.DEFAULT_BEAM_ARGS]
    )
    return job_file


def compile_and_run(launcher, directory, name, *flags):
    """Compiles the job and runs it; every task must succeed."""
    run = launcher.run(compile_job(directory, name, *flags), log=print)
    assert {n: t.state for n, t in run.tasks.items() if t.state != 'SUCCEEDED'} == {}
    return run


def read_json(uri):
    with tf.io.gfile.GFile(uri) as f:
        return json.load(f)
