"""The model in mixed precision after training, as the Trainer exports it: BatchNorm readjusted
on prior samples, then sampling, reconstruction and likelihoods, all in float32 at the model's
edges whatever precision computes inside."""

import keras
import numpy as np
import pytest
from keras import ops

from model_code.config import get_config
from model_code.nvae import NVAE


@pytest.mark.parametrize('policy', ['mixed_float16', 'mixed_bfloat16'])
def test_readjusted_model_samples_and_scores_in_float32(policy):
    keras.utils.set_random_seed(0)
    model = NVAE(get_config('tiny', mixed_precision=policy))
    assert model.compute_dtype == policy.split('_')[1]
    model.readjust_bn(num_passes=2, batch_size=4, temperature=1.0)
    for bn in model._sampling_batch_norms():
        assert bn.sampling_mean.dtype == bn.sampling_variance.dtype == 'float32'
    bn = model._sampling_batch_norms()[0]
    assert not np.allclose(ops.convert_to_numpy(bn.sampling_mean), 0.0)  # re-estimated

    images = model.sample(3, 1.0, sampling_state=True, seed=1)
    reconstructions = model.reconstruct(ops.round(images))
    nats = model.log_likelihood(ops.round(images), num_samples=2, chunk_size=2)
    for output in (images, reconstructions):
        assert output.dtype == 'float32'
        values = ops.convert_to_numpy(output)
        assert values.shape == (3, 32, 32, 1) and values.min() >= 0.0 and values.max() <= 1.0
    assert nats.dtype == 'float32'
    assert np.all(np.isfinite(ops.convert_to_numpy(nats)))
