"""The Evaluator's numbers, computed with model_code, and the protocol they were measured with.

Likelihoods use BatchNorm in inference mode with the training statistics, as NVAE evaluates;
samples for FID and precision/recall use the model's sampling state, the statistics the Trainer
readjusted on prior samples (NVAE.readjust_bn), which the pushed SavedModel samples with too.

FID and precision/recall compare generated images with real reference images through feature
networks. Images are streamed: only their features stay in memory (float32; for 50,000 images
410 MB per side with Inception's 2,048 dimensions, 26 MB with the digit classifier's 128), and
FID's Gaussian statistics accumulate batch by batch in float64 (O(d^2)). The reference features
are computed once per evaluation and shared by every model scored.
"""

import contextlib
import math
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from nvae_tfx.evaluation import fid, precision_recall
from nvae_tfx.options import EvaluationOptions
from nvae_tfx.tracing import graph_function

GRID_SAMPLES = 100  # samples.png: a 10 x 10 grid


def iw_log_likelihood(model, num_iw_samples: int, batch_size: int):
    """A traced function: images [batch_size, ...] -> importance-weighted log p(x) per image."""
    # At most ~1,000 images per forward pass: memory stays bounded for any K (1,000 included).
    chunk = min(num_iw_samples, max(1, 1000 // batch_size))
    return graph_function(
        lambda x: model.log_likelihood(x, num_samples=num_iw_samples, chunk_size=chunk)
    )


def likelihoods(model, images: np.ndarray, num_iw_samples: int, batch_size: int) -> dict:
    """Mean negative ELBO and importance-weighted NLL (nats), and both in bits/dim."""
    iw = iw_log_likelihood(model, num_iw_samples, batch_size)
    elbo = graph_function(model.negative_elbo)
    neg_elbo, log_px = [], []
    for start in range(0, len(images), batch_size):
        x = tf.constant(images[start : start + batch_size])
        neg_elbo.append(keras.ops.convert_to_numpy(elbo(x)))
        log_px.append(keras.ops.convert_to_numpy(iw(x)))
    neg_elbo, nll = (
        float(np.mean(np.concatenate(neg_elbo))),
        -float(np.mean(np.concatenate(log_px))),
    )
    return {
        'neg_elbo_nats': neg_elbo,
        'nll_nats': nll,
        'neg_elbo_bits_per_dim': float(model.bits_per_dim(neg_elbo)),
        'nll_bits_per_dim': float(model.bits_per_dim(nll)),
    }


def sample_batches(
    model, num: int, temperature: float, batch_size: int, mean_image: bool, seed: int
):
    """num images drawn with the model's sampling state from `seed` at `temperature`, a batch at
    a time (numpy); the SavedModel's sample signature given num=batch_size and this seed draws
    the first batch. mean_image: the decoder's mean image (the mixture's mean for colour; MNIST
    is always the Bernoulli mean)."""
    model.reseed(seed)
    draw = graph_function(
        lambda n: model.sample(n, temperature, mean_image=mean_image, sampling_state=True)
    )
    for start in range(0, num, batch_size):
        yield keras.ops.convert_to_numpy(draw(min(batch_size, num - start)))


def samples(
    model, num: int, temperature: float, batch_size: int, seed: int, mean_image: bool = False
):
    return np.concatenate(
        list(sample_batches(model, num, temperature, batch_size, mean_image, seed))
    )


def sampling_state(model) -> dict:
    """The BatchNorm readjustment the model samples with, to be recorded beside its metrics."""
    settings = model.sampling_settings()
    if settings is None:
        raise ValueError('the model has no sampling state (its BatchNorm was never readjusted)')
    return {f'readjust_bn_{name}': value for name, value in settings.items()}


class Features(NamedTuple):
    """One image set seen through one feature network."""

    statistics: fid.GaussianStatistics  # FID's
    features: np.ndarray  # [n, d] float32, for precision/recall


def features_by_network(networks: Sequence, batches: Iterable) -> dict[str, Features]:
    """{network name: Features} of image batches read once."""
    streams = {n.name: fid.StreamingStatistics() for n in networks}
    kept = {n.name: [] for n in networks}
    for images in batches:
        for network in networks:
            features = network.features(images)
            streams[network.name].update(features)
            kept[network.name].append(features)
    return {
        name: Features(stream.result(), np.concatenate(kept[name]))
        for name, stream in streams.items()
    }


def sample_quality(
    generated: dict[str, Features], reference: dict[str, Features], networks: Sequence, seed: int
) -> dict:
    """FID (all images) and k-NN precision/recall per feature network; keys name the network.
    Precision/recall compare equal numbers of generated and real images, as Kynkäänniemi et al.
    do (the k-th neighbour radii shrink as a set grows): all of the smaller set and a seeded
    random choice from the larger. Non-finite features (from non-finite samples) give NaN
    metrics, which no blessing passes, rather than an error inside the linear algebra."""
    metrics = {}
    rng = np.random.RandomState(seed)
    for network in networks:
        g, r = generated[network.name], reference[network.name]
        if not np.isfinite(g.features).all():
            metrics.update(
                {f'{m}_{network.name}': math.nan for m in ('fid', 'precision', 'recall')}
            )
            continue
        n = min(len(g.features), len(r.features))
        pr = precision_recall.precision_recall(
            _subset(r.features, n, rng), _subset(g.features, n, rng)
        )
        metrics[f'fid_{network.name}'] = fid.frechet_distance(r.statistics, g.statistics)
        metrics[f'precision_{network.name}'] = float(pr.precision)
        metrics[f'recall_{network.name}'] = float(pr.recall)
    return metrics


def _subset(features: np.ndarray, n: int, rng: np.random.RandomState) -> np.ndarray:
    if len(features) == n:
        return features
    return features[np.sort(rng.choice(len(features), n, replace=False))]


def _sample_quality_at(model, temperature, reference, networks, options, batch_size) -> dict:
    """FID and precision/recall of the decoder's mean images drawn at `temperature`, and the
    number of non-finite ones."""
    counter = NonFiniteCounter()
    generated = features_by_network(
        networks,
        map(
            counter,
            sample_batches(
                model, options.fid_samples, temperature, batch_size, True, options.eval_seed
            ),
        ),
    )
    return {
        **sample_quality(generated, reference, networks, options.eval_seed),
        'non_finite_samples': counter.count,
    }


@contextlib.contextmanager
def readjusted_at(model, temperature: float, seed: int):
    """The model sampling after BatchNorm readjustment at `temperature` (its own passes and
    batch, from `seed`), as NVAE samples at a temperature; its sampling state is restored after."""
    saved = [keras.ops.convert_to_numpy(v) for v in model.sampling_state_variables()]
    settings = model.sampling_settings()
    model.reseed(seed)
    model.readjust_bn(
        settings['passes'], settings['batch'], temperature, compile_pass=graph_function
    )
    try:
        yield
    finally:
        for variable, value in zip(model.sampling_state_variables(), saved, strict=True):
            variable.assign(value)


def evaluate(
    model,
    nll_images: np.ndarray,
    reference: dict[str, Features],
    networks: Sequence,
    options: EvaluationOptions,
    batch_size: int = 50,
):
    """(metrics, {temperature: samples for its grid}) of one model. nll_images are what the
    likelihoods score (binarized MNIST); reference the real images' features per network
    (features_by_network), against which the decoder's mean images are compared, as the
    official FID does. Sample quality at options.sample_temperature uses the model's own
    sampling state; at each further temperature (options.extra_temperatures()) the model is
    readjusted there first, and the metrics' names end in _t<temperature>."""
    # Every model draws from the same seed: models scored side by side share the draws of
    # their posterior samples and of their prior samples, so that noise is paired.
    model.reseed(options.eval_seed)
    metrics = {
        **sampling_state(model),
        **likelihoods(model, nll_images, options.iw_samples, batch_size),
    }
    if networks:
        metrics.update(
            _sample_quality_at(
                model, options.sample_temperature, reference, networks, options, batch_size
            )
        )
    grids = {
        options.sample_temperature: samples(
            model, GRID_SAMPLES, options.sample_temperature, batch_size, options.eval_seed
        )
    }
    for temperature in options.extra_temperatures():
        with readjusted_at(model, temperature, options.eval_seed):
            if networks:
                at = _sample_quality_at(
                    model, temperature, reference, networks, options, batch_size
                )
                metrics.update({f'{k}_t{temperature:g}': v for k, v in at.items()})
            grids[temperature] = samples(
                model, GRID_SAMPLES, temperature, batch_size, options.eval_seed
            )
    return metrics, grids


class NonFiniteCounter:
    """Passes image batches through, counting the images with a non-finite pixel."""

    def __init__(self):
        self.count = 0

    def __call__(self, images: np.ndarray) -> np.ndarray:
        self.count += int((~np.isfinite(images.reshape(len(images), -1))).any(axis=1).sum())
        return images


def protocol(
    options: EvaluationOptions,
    dataset: str,
    num_scored: int,
    reference: dict[str, Features],
    networks: Sequence,
) -> dict:
    """How the metrics were measured, to be recorded beside them: the images scored and K; the
    generated and real images behind FID and precision/recall; the temperature of sampling; each
    feature network's facts (its accuracy, its weights). The BatchNorm readjustment is each
    model's own (sampling_state), recorded by evaluate."""
    record = {
        'eval_protocol': options.eval_protocol,
        'eval_split': options.eval_split,
        'num_eval_examples': num_scored,
        'num_iw_samples': options.iw_samples,
        'sample_temperature': options.sample_temperature,
        # Each after BatchNorm readjustment there (the model's passes and batch).
        'sample_temperatures': ','.join(
            f'{t:g}' for t in (options.sample_temperature, *options.extra_temperatures())
        ),
        # MNIST's grid shows Bernoulli means; colour grids show samples of the mixture.
        'samples_png_images': 'mean' if dataset == 'mnist' else 'sample',
    }
    if dataset == 'mnist':
        record['binarization_seed'] = (
            options.eval_seed
        )  # one seeded binarization of the scored digits
    if networks:
        num_real = len(next(iter(reference.values())).features)
        record.update(
            fid_num_samples=options.fid_samples,
            fid_images='mean',  # the decoder's mean image, as the official FID
            fid_reference_split=options.fid_reference_split,
            fid_reference_examples=num_real,
            precision_recall_samples=min(options.fid_samples, num_real),
            precision_recall_k=precision_recall.K,
        )
    for network in networks:
        for key, value in network.info.items():
            if key != 'name':
                record[f'{network.name}_{key}'] = value
    return record
