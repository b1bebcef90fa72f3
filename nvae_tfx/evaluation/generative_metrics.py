"""The Evaluator's numbers, computed with model_code on images in memory.

Likelihoods use BatchNorm in inference mode with the training statistics, as NVAE evaluates;
samples for FID and precision/recall use the model's sampling state, the statistics the Trainer
readjusted on prior samples (NVAE.readjust_bn), which the pushed SavedModel samples with too.
"""

import math
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from nvae_tfx.evaluation import fid, precision_recall


def iw_log_likelihood(model, num_iw_samples: int, batch_size: int):
    """A traced function: images [batch_size, ...] -> importance-weighted log p(x) per image."""
    # At most ~1,000 images per forward pass: memory stays bounded for any K (1,000 included).
    chunk = min(num_iw_samples, max(1, 1000 // batch_size))
    return tf.function(
        lambda x: model.log_likelihood(x, num_samples=num_iw_samples, chunk_size=chunk)
    )


def likelihoods(model, images: np.ndarray, num_iw_samples: int, batch_size: int) -> dict:
    """Mean negative ELBO and importance-weighted NLL (nats), and both in bits/dim."""
    iw = iw_log_likelihood(model, num_iw_samples, batch_size)
    elbo = tf.function(model.negative_elbo)
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


def samples(model, num: int, temperature: float, batch_size: int, seed: int) -> np.ndarray:
    """num images drawn with the model's sampling state from `seed`, batch_size at a time. The
    SavedModel's sample signature given num=batch_size and this seed draws the first batch."""
    model.reseed(seed)
    draw = tf.function(lambda n: model.sample(n, temperature, sampling_state=True))
    out = [
        keras.ops.convert_to_numpy(draw(min(batch_size, num - i)))
        for i in range(0, num, batch_size)
    ]
    return np.concatenate(out)


def sampling_state(model) -> dict:
    """The BatchNorm readjustment the model samples with, to be recorded beside its metrics."""
    settings = model.sampling_settings()
    if settings is None:
        raise ValueError('the model has no sampling state (its BatchNorm was never readjusted)')
    return {f'readjust_bn_{name}': value for name, value in settings.items()}


def sample_quality(generated: np.ndarray, real: np.ndarray, networks: Sequence) -> dict:
    """FID and k-NN precision/recall per feature network; keys name the network."""
    metrics = {}
    for network in networks:
        g = network.features_of(np.array_split(generated, max(1, len(generated) // 250)))
        r = network.features_of(np.array_split(real, max(1, len(real) // 250)))
        pr = precision_recall.precision_recall(r, g)
        metrics[f'fid_{network.name}'] = fid.fid_from_features(r, g)
        metrics[f'precision_{network.name}'] = float(pr.precision)
        metrics[f'recall_{network.name}'] = float(pr.recall)
        for key, value in network.info.items():
            if isinstance(value, (int, float)):
                metrics[f'{network.name}_{key}'] = float(value)
    return metrics


def evaluate(
    model,
    nll_images: np.ndarray,
    real_images: np.ndarray,
    networks: Sequence,
    *,
    num_iw_samples: int,
    fid_num_samples: int,
    temperature: float,
    seed: int,
    batch_size: int = 50,
):
    """(metrics, generated images) of one model. nll_images are what the likelihood scores
    (binarized MNIST), real_images the reference for sample quality (grey MNIST, as the decoder's
    mean is grey)."""
    recorded = sampling_state(model)
    metrics = likelihoods(model, nll_images, num_iw_samples, batch_size)
    generated = samples(model, fid_num_samples, temperature, batch_size, seed)
    metrics.update(sample_quality(generated, real_images, networks))
    metrics.update(
        {
            'num_eval_examples': len(nll_images),
            'num_iw_samples': num_iw_samples,
            'fid_num_samples': fid_num_samples,
            'sample_temperature': temperature,
            **recorded,
        }
    )
    return metrics, generated


def is_finite(metrics: dict) -> bool:
    return all(math.isfinite(v) for v in metrics.values() if isinstance(v, (int, float)))
