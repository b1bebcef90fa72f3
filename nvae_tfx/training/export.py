"""Export: a SavedModel anyone can call without this project's code, plus the Keras model the
Evaluator rebuilds. Signatures:

  sample(num: int32, temperature: float32, seed: int32) -> images [num, H, W, C] in [0, 1]
  reconstruct(images: float32 [N, H, W, C] in [0, 1])  -> images
  log_likelihood(examples: raw serialized tf.Examples, num_samples: int32) -> nats [N]
  log_likelihood_images(images, num_samples)           -> nats [N]
  encode(images, seed: int32) -> mean_GG, sample_GG: every group GG's latent [N, h, w, c]
  decode(z_GG..., keep: bool [G], temperature: float32 [G], seed: int32) -> images, z_GG...

encode gives each group's posterior mean (given the means above it) and a posterior sample (given
the samples above it), flows applied; decode decodes given latents where keep, draws the others
from their conditional prior at their temperature, and returns the images (the decoder's mean,
as reconstruct's) and every latent it decoded. GG is the group's index in decoder order, two
digits, coarsest scale first (docs/serving.md).

log_likelihood applies the Transform graph and, for MNIST with dynamic binarization, draws a
binarization as NVAE's evaluation does; log_likelihood_images takes images as the model sees
them (MNIST: already binary). Both return the importance-weighted bound with num_samples
samples, computed in chunks so memory stays bounded at K = 1000.

sample draws with the model's sampling state, the decoder's BatchNorm statistics readjusted on
prior samples (readjust_bn, before export, with the Evaluator's settings), so the served model
samples as it was evaluated; equal seeds give equal images. The other signatures use the
training statistics, as NVAE evaluates likelihoods.
"""

import dataclasses
import math
import os

import tensorflow as tf

from model_code.nvae import NVAE
from nvae_tfx import datasets
from nvae_tfx.data import records, transformed
from nvae_tfx.options import TrainingOptions
from nvae_tfx.tracing import graph_function
from nvae_tfx.training.checkpoints import all_finite

KERAS_DIR = 'Format-Keras'  # beside TFX's Format-Serving inside the Model artifact
KERAS_FILE = 'nvae.keras'
IW_CHUNK = 50  # samples per forward pass in log_likelihood


def latent_name(group: int) -> str:
    """decode's name of a group's latent, in and out: z_00, z_01, ... in decoder order."""
    return f'z_{group:02d}'


def keras_model_path(model_uri: str) -> str:
    return os.path.join(model_uri, KERAS_DIR, KERAS_FILE)


class NVAEServing(tf.Module):
    def __init__(self, model, tft_output, options: TrainingOptions):
        super().__init__()
        # The SavedModel holds the model's variables (its SeedGenerator states included), not the
        # Keras model: walking a Keras model makes TensorFlow trace and save a default signature
        # for each of its hundreds of layers, most of the export's time otherwise.
        object.__setattr__(self, 'model', model)
        self.model_variables = list(model.variables)
        self.tft_layer = tft_output.transform_features_layer()
        self._raw_spec = tft_output.raw_feature_spec()
        self._dataset, self._binarization = options.dataset, options.binarization
        c = model.config
        shape = (c.image_size, c.image_size, c.in_channels)
        self.sample = graph_function(
            self._sample,
            input_signature=[
                tf.TensorSpec([], tf.int32, name='num'),
                tf.TensorSpec([], tf.float32, name='temperature'),
                tf.TensorSpec([], tf.int32, name='seed'),
            ],
        )
        self.reconstruct = graph_function(
            self._reconstruct,
            input_signature=[tf.TensorSpec([None, *shape], tf.float32, name='images')],
        )
        self.log_likelihood = graph_function(
            self._log_likelihood_examples,
            input_signature=[
                tf.TensorSpec([None], tf.string, name='examples'),
                tf.TensorSpec([], tf.int32, name='num_samples'),
            ],
        )
        self.encode = graph_function(
            self._encode,
            input_signature=[
                tf.TensorSpec([None, *shape], tf.float32, name='images'),
                tf.TensorSpec([], tf.int32, name='seed'),
            ],
        )
        groups = model.num_groups
        self.decode = graph_function(
            self._decode,
            input_signature=[
                [
                    tf.TensorSpec([None, *latent_shape], tf.float32, name=latent_name(g))
                    for g, latent_shape in enumerate(model.latent_shapes())
                ],
                tf.TensorSpec([groups], tf.bool, name='keep'),
                tf.TensorSpec([groups], tf.float32, name='temperature'),
                tf.TensorSpec([], tf.int32, name='seed'),
            ],
        )
        self.log_likelihood_images = graph_function(
            self._log_likelihood_images,
            input_signature=[
                tf.TensorSpec([None, *shape], tf.float32, name='images'),
                tf.TensorSpec([], tf.int32, name='num_samples'),
            ],
        )

    def _sample(self, num, temperature, seed):
        return {'images': self.model.sample(num, temperature, sampling_state=True, seed=seed)}

    def _reconstruct(self, images):
        return {'images': self.model.reconstruct(images)}

    def _encode(self, images, seed):
        means = self.model.encode(images)
        samples = self.model.posterior_sample(images, seed)
        return {
            **{f'mean_{g:02d}': z for g, z in enumerate(means)},
            **{f'sample_{g:02d}': z for g, z in enumerate(samples)},
        }

    def _decode(self, latents, keep, temperature, seed):
        images, decoded = self.model.decode(latents, keep, temperature, seed)
        return {'images': images, **{latent_name(g): z for g, z in enumerate(decoded)}}

    def _log_likelihood_examples(self, examples, num_samples):
        features = self.tft_layer(tf.io.parse_example(examples, self._raw_spec))
        images = datasets.per_step(
            transformed.to_model_images(features[records.IMAGE]),
            self._dataset,
            self._binarization,
            training=False,
        )
        return self.log_likelihood_images(images, num_samples)  # the same traced function

    def _log_likelihood_images(self, images, num_samples):
        """log-mean-exp of importance weights over num_samples, IW_CHUNK per forward pass."""
        batch = tf.shape(images)[0]

        def add_chunk(chunk):
            def body(i, total):
                ll = self.model.log_likelihood(images, num_samples=chunk, chunk_size=chunk)
                return i + 1, tf.reduce_logsumexp(tf.stack([total, ll + math.log(chunk)]), axis=0)

            return body

        total = tf.fill([batch], -float('inf'))
        _, total = tf.while_loop(
            lambda i, t: i < num_samples // IW_CHUNK, add_chunk(IW_CHUNK), (0, total)
        )
        _, total = tf.while_loop(lambda i, t: i < num_samples % IW_CHUNK, add_chunk(1), (0, total))
        return {'log_likelihood': total - tf.math.log(tf.cast(num_samples, tf.float32))}


def single_device_copy(model):
    """The trained model rebuilt outside tf.distribute: a SavedModel cannot hold functions over
    the mirrored variables of a multi-GPU or multi-worker run."""
    copy = NVAE(dataclasses.replace(model.config, sync_batch_norm=False))
    copy.set_weights(model.get_weights())
    return copy


def readjust_bn(model, options: TrainingOptions) -> None:
    """The model's sampling state, with the settings the Evaluator samples with."""
    model.readjust_bn(
        options.readjust_bn_passes,
        options.readjust_bn_batch,
        options.sample_temperature,
        compile_pass=graph_function,  # one traced pass, called N times: a small graph
    )


def export(model, serving_model_dir: str, tft_output, options: TrainingOptions) -> None:
    """Refuses a model without a sampling state or with non-finite weights (the sampling state
    included); otherwise writes both formats."""
    if model.sampling_settings() is None:
        raise ValueError(
            f'Refusing to export to {serving_model_dir}: the model has no sampling state '
            '(readjust_bn has not run).'
        )
    if not all_finite(model):
        raise ValueError(
            f'Refusing to export to {serving_model_dir}: the model has non-finite weights.'
        )
    module = NVAEServing(model, tft_output, options)
    # Functions, not concrete functions: saving traces them anyway (in its own context), so
    # tracing them beforehand would double the export's time; nor does a served model need the
    # gradient functions TensorFlow saves by default.
    tf.saved_model.save(
        module,
        serving_model_dir,
        signatures={
            'serving_default': module.sample,
            'sample': module.sample,
            'reconstruct': module.reconstruct,
            'log_likelihood': module.log_likelihood,
            'log_likelihood_images': module.log_likelihood_images,
            'encode': module.encode,
            'decode': module.decode,
        },
        options=tf.saved_model.SaveOptions(experimental_custom_gradients=False),
    )
    keras_path = keras_model_path(os.path.dirname(serving_model_dir.rstrip('/')))
    tf.io.gfile.makedirs(os.path.dirname(keras_path))
    model.save(keras_path)
