"""NVAE: a deep hierarchical VAE (Vahdat & Kautz, 2020) as a Keras 3 model.

Data flow (channels-last):
  x in [0,1] -> 2x-1 -> stem -> pre-process cells -> encoder tower; the
  features in front of each encoder combiner are kept for the decoder ->
  enc0 -> q(z_0). Decoder: trainable h0 -> per group: cells, prior
  p(z_g | z_<g), posterior q(z_g | x, z_<g) as a residual on the prior,
  combiner(state, z_g); an up cell between scales -> post-process cells ->
  output head (Bernoulli logits or mixture-of-logistics parameters).

Training goes through the stock `fit`: `call` returns the decoder logits and
per-group KL; `compute_loss` adds KL warm-up/balancing and the spectral and
BN penalties, advances the step counter and refines the power-iteration
vectors. Both are non-trainable variables, so every backend's train step
carries them. With spectral normalization instead of the spectral penalty
(config.normalization), a training-mode `call` refines each conv's vector
before the forward pass, which divides every kernel by the new estimate.
"""

import dataclasses
import math

import keras
import numpy as np
from keras import ops
from keras.src.backend.common.stateless_scope import get_stateless_scope  # not public (3.12)
from keras.src.losses.loss import scale_loss_for_distribution  # not in the public API (3.12)

from model_code import schedules
from model_code.config import MNIST_CROP, NVAEConfig, get_config
from model_code.distributions import Bernoulli, DiscretizedMixLogistic, Normal
from model_code.flows import PairedFlow
from model_code.layers import Cell, Conv2D, DecoderCombiner, ELUConv, EncoderCombiner
from model_code.optim import learning_rate_schedule
from model_code.regularizers import SpectralRegularizer, batch_norm_penalty

CHANNEL_MULT = 2
DECODER_EXPANSION = 6
POSTPROCESS_EXPANSION = 3


def _split(params):
    """Head output [..., 2L] -> (mu, log_sigma), float32."""
    return ops.split(ops.cast(params, 'float32'), 2, axis=-1)


class SeedStream(keras.random.SeedGenerator):
    """The seeds keras.random.SeedGenerator(seed) draws, [seed, 0], [seed, 1], ..., without its
    variable: seed may be a traced tensor, and concurrent calls (a serving signature) share no
    state."""

    def __init__(self, seed, dtype):  # no super().__init__: it would create the variable
        self._seed = ops.cast(ops.reshape(seed, (1,)), dtype)
        self._dtype = dtype
        self._drawn = 0

    def next(self, ordered=True):
        self._drawn += 1
        return ops.concatenate([self._seed, ops.full((1,), self._drawn - 1, self._dtype)])


@keras.saving.register_keras_serializable('nvae')
class NVAE(keras.Model):
    def __init__(self, config=None, **kwargs):
        if config is None:
            config = get_config('cpu')
        elif isinstance(config, dict):
            config = NVAEConfig(**config).validate()
        super().__init__(dtype=config.mixed_precision, **kwargs)
        self.config = config
        self.groups_per_scale = config.groups_per_scale
        self.num_groups = sum(self.groups_per_scale)
        self._build_encoder()
        self._build_decoder()
        if config.sync_batch_norm and keras.backend.backend() != 'tensorflow':
            raise ValueError('sync_batch_norm needs the TensorFlow backend')
        for bn in self._batch_norms():
            bn.synchronized = config.sync_batch_norm
        self.spectral = None  # spectral_norm: no penalty
        if config.normalization == 'spectral_reg':
            self.spectral = SpectralRegularizer(
                [conv.matrix_shape for conv in self._convs()], dtype='float32'
            )
        else:
            for conv in self._convs():
                conv.use_spectral_norm()
        self.global_step = self.add_weight(
            shape=(), dtype='int32', initializer='zeros', trainable=False, name='global_step'
        )
        self.seed_generator = keras.random.SeedGenerator(config.seed)
        # The settings the sampling state was made with (readjust_bn); passes -1: not made yet.
        self.readjust_record = {
            name: self.add_weight(
                shape=(), dtype=dtype, initializer=init, trainable=False, name=f'readjust_{name}'
            )
            for name, dtype, init in (
                ('passes', 'int32', keras.initializers.Constant(-1)),
                ('batch', 'int32', 'zeros'),
                ('temperature', 'float32', 'zeros'),
            )
        }
        self.kl_alphas = schedules.balance_alphas(self.groups_per_scale)
        self.lr_schedule = learning_rate_schedule(config)
        self._build_trackers()
        self.built = True

    # ------------------------------------------------------------------ build

    def _channels(self, base, downsamplings):
        return base * CHANNEL_MULT**downsamplings

    def _build_encoder(self):
        c, dtype = self.config, self.dtype_policy
        self.stem = Conv2D(c.in_channels, c.num_channels_enc, 3, dtype=dtype)
        self.preprocess, level = [], 0
        for _ in range(c.num_preprocess_blocks):
            for i in range(c.num_preprocess_cells):
                down = i == c.num_preprocess_cells - 1
                self.preprocess.append(
                    Cell(
                        self._channels(c.num_channels_enc, level),
                        'down' if down else 'normal',
                        use_se=c.use_se,
                        dtype=dtype,
                    )
                )
                level += down
        # Flat lists; group g owns cells [g * n, (g + 1) * n). Every group but the
        # last has a combiner where the decoder reads the encoder features.
        self.encoder_cells, self.encoder_combiners, self.encoder_downs = [], [], []
        for scale, groups in enumerate(self.groups_per_scale):
            enc = self._channels(c.num_channels_enc, level)
            dec = self._channels(c.num_channels_dec, level)
            for _ in range(groups):
                self.encoder_cells += [
                    Cell(enc, use_se=c.use_se, dtype=dtype) for _ in range(c.num_cell_per_cond_enc)
                ]
                if len(self.encoder_combiners) < self.num_groups - 1:
                    self.encoder_combiners.append(EncoderCombiner(enc, dec, dtype=dtype))
            if scale < len(self.groups_per_scale) - 1:
                self.encoder_downs.append(Cell(enc, 'down', use_se=c.use_se, dtype=dtype))
                level += 1
        self.top_level = level
        top = self._channels(c.num_channels_enc, level)
        self.enc0 = Conv2D(top, top, 1, dtype=dtype)

    def _build_decoder(self):
        c, dtype = self.config, self.dtype_policy
        level, latent = self.top_level, c.num_latent_per_group
        size = c.image_size // 2**level
        self.h0 = self.add_weight(
            shape=(size, size, self._channels(c.num_channels_dec, level)),
            initializer=keras.initializers.RandomUniform(0.0, 1.0),
            name='h0',
        )
        self.z0_shape = (size, size, latent)
        self.decoder_cells, self.decoder_combiners, self.decoder_ups = [], [], []
        self.prior_heads, self.posterior_heads, self.flows = [], [], []
        for scale, groups in enumerate(reversed(self.groups_per_scale)):
            enc = self._channels(c.num_channels_enc, level)
            dec = self._channels(c.num_channels_dec, level)
            for _ in range(groups):
                if self.decoder_combiners:  # every group but the first
                    self.decoder_cells += [
                        Cell(dec, expansion=DECODER_EXPANSION, use_se=c.use_se, dtype=dtype)
                        for _ in range(c.num_cell_per_cond_dec)
                    ]
                    self.prior_heads.append(ELUConv(dec, 2 * latent, 1, dtype=dtype))
                self.posterior_heads.append(Conv2D(enc, 2 * latent, 3, dtype=dtype))
                self.flows += [PairedFlow(latent, dtype=dtype) for _ in range(c.num_nf)]
                self.decoder_combiners.append(DecoderCombiner(dec, latent, dtype=dtype))
            if scale < len(self.groups_per_scale) - 1:
                self.decoder_ups.append(
                    Cell(dec, 'up', expansion=DECODER_EXPANSION, use_se=c.use_se, dtype=dtype)
                )
                level -= 1
        self.postprocess = []
        for _ in range(c.num_postprocess_blocks):
            for i in range(c.num_postprocess_cells):
                up = i == 0
                self.postprocess.append(
                    Cell(
                        self._channels(c.num_channels_dec, level),
                        'up' if up else 'normal',
                        expansion=POSTPROCESS_EXPANSION,
                        use_se=c.use_se,
                        dtype=dtype,
                    )
                )
                level -= up
        self.head = ELUConv(c.num_channels_dec, c.out_channels, 3, dtype=dtype)

    def _build_trackers(self):
        mean = keras.metrics.Mean
        self.trackers = {
            name: mean(name=name)
            for name in ('recon', 'kl', 'spectral_loss', 'bn_loss', 'beta', 'lr')
        }
        self.kl_group_trackers = [mean(name=f'kl_{g:02d}') for g in range(self.num_groups)]

    def _convs(self):
        return [
            layer for layer in self._flatten_layers(include_self=False) if isinstance(layer, Conv2D)
        ]

    def _batch_norms(self):
        return [
            layer
            for layer in self._flatten_layers(include_self=False)
            if isinstance(layer, keras.layers.BatchNormalization)
        ]

    def _sampling_batch_norms(self):
        """The decoder's BatchNorms: those sampling runs, which keep a sampling state."""
        return [bn for bn in self._batch_norms() if getattr(bn, 'sampling_state', False)]

    def num_parameters(self):
        """Trainable scalars; equals the official count of nn.Parameters."""
        return int(sum(np.prod(w.shape) for w in self.trainable_weights))

    def get_config(self):
        return {'config': dataclasses.asdict(self.config), 'name': self.name}

    def make_train_function(self, force=False):
        # Create the optimizer slots before tracing: created inside the first
        # traced step they make the TensorFlow backend trace the whole step twice.
        if not self.optimizer.built:
            self.optimizer.build(self.trainable_variables)
        return super().make_train_function(force)

    # ---------------------------------------------------------------- forward

    def _prepare(self, x):
        """Float images in [0, 1], reduced to num_x_bits as the official pre-processing."""
        x = ops.cast(x, 'float32')
        bits = self.config.num_x_bits
        if bits < 8:
            x = ops.floor(x * 255.0 / 2 ** (8 - bits)) / (2**bits - 1)
        return x

    def _encoder_features(self, x, training):
        """Top encoder features and, in decoder order, (combiner, features it reads)."""
        s = self.stem(ops.cast(2.0 * x - 1.0, self.compute_dtype))
        for cell in self.preprocess:
            s = cell(s, training=training)
        taps, n, group = [], self.config.num_cell_per_cond_enc, 0
        for scale, groups in enumerate(self.groups_per_scale):
            for _ in range(groups):
                for cell in self.encoder_cells[group * n : (group + 1) * n]:
                    s = cell(s, training=training)
                if group < self.num_groups - 1:
                    taps.append((self.encoder_combiners[group], s))
                group += 1
            if scale < len(self.encoder_downs):
                s = self.encoder_downs[scale](s, training=training)
        return s, taps[::-1]

    def _decode(self, batch_size, latent, training, sampling_state=False):
        """Runs the decoder; latent(group, state) supplies z for each group. sampling_state:
        BatchNorm on the statistics of prior samples (readjust_bn) instead of training's."""
        s = ops.broadcast_to(
            ops.cast(self.h0, self.compute_dtype)[None], (batch_size,) + tuple(self.h0.shape)
        )
        bn = dict(training=training, sampling_state=sampling_state)
        n, group = self.config.num_cell_per_cond_dec, 0
        for scale, groups in enumerate(reversed(self.groups_per_scale)):
            for _ in range(groups):
                if group > 0:
                    for cell in self.decoder_cells[(group - 1) * n : group * n]:
                        s = cell(s, **bn)
                s = self.decoder_combiners[group](s, latent(group, s))
                group += 1
            if scale < len(self.decoder_ups):
                s = self.decoder_ups[scale](s, **bn)
        for cell in self.postprocess:
            s = cell(s, **bn)
        return ops.cast(self.head(s), 'float32')

    def _posterior_pass(self, x, training, use_mean=False, seeds=None):
        """Encodes x and decodes from posterior samples (or means).

        Returns logits, per-group KL [B, G], log q(z|x) [B], log p(z) [B] and
        the latents per group (the posterior means when use_mean). seeds: the
        stream the samples are drawn from; None: the model's own.
        """
        seeds = self.seed_generator if seeds is None else seeds
        top, taps = self._encoder_features(x, training)
        top = ops.elu(self.enc0(ops.elu(top)))
        kls, latents = [], []
        log_q = log_p = 0.0
        num_nf = self.config.num_nf

        def latent(group, s):
            nonlocal log_q, log_p
            if group == 0:
                q = Normal(*_split(self.posterior_heads[0](top)))
                p = Normal(ops.zeros_like(q.mu), ops.zeros_like(q.mu))
            else:
                mu_p, log_sigma_p = _split(self.prior_heads[group - 1](s))
                combiner, features = taps[group - 1]
                mu_q, log_sigma_q = _split(self.posterior_heads[group](combiner(features, s)))
                if self.config.res_dist:  # the clamps apply to the sums
                    mu_q, log_sigma_q = mu_p + mu_q, log_sigma_p + log_sigma_q
                q, p = Normal(mu_q, log_sigma_q), Normal(mu_p, log_sigma_p)
            z = q.mu if use_mean else q.sample(seeds)
            log_q_z = q.log_prob(z)  # shift-only flows have log det 0
            for flow in self.flows[group * num_nf : (group + 1) * num_nf]:
                z = flow(z)
            log_p_z = p.log_prob(z)
            kl = log_q_z - log_p_z if num_nf else q.kl(p)
            kls.append(ops.sum(kl, axis=(1, 2, 3)))
            log_q = log_q + ops.sum(log_q_z, axis=(1, 2, 3))
            log_p = log_p + ops.sum(log_p_z, axis=(1, 2, 3))
            latents.append(z)
            return z

        logits = self._decode(ops.shape(x)[0], latent, training)
        return logits, ops.stack(kls, axis=1), log_q, log_p, latents

    def call(self, x, training=False):
        if training and self.spectral is None:
            # Spectral norm: one power iteration per training step, before the kernels are
            # used, as the Keras wrappers do.
            for conv in self._convs():
                conv.refine_spectral_norm()
        logits, kl, log_q, log_p, _ = self._posterior_pass(self._prepare(x), training)
        return {'logits': logits, 'kl': kl, 'log_q': log_q, 'log_p': log_p}

    # ------------------------------------------------------------- objective

    def output_distribution(self, logits):
        c = self.config
        if c.dataset == 'mnist':
            return Bernoulli(logits)
        return DiscretizedMixLogistic(logits, c.num_mix, c.num_x_bits, c.dml_edge_threshold)

    def reconstruction_loss(self, x, logits):
        """-log p(x|z) per example in nats (MNIST: the central 28x28 only)."""
        log_prob = self.output_distribution(logits).log_prob(self._prepare(x))
        if self.config.dataset == 'mnist':
            m = (self.config.image_size - MNIST_CROP) // 2
            log_prob = log_prob[:, m : m + MNIST_CROP, m : m + MNIST_CROP]
        return -ops.sum(ops.reshape(log_prob, (ops.shape(log_prob)[0], -1)), axis=1)

    @property
    def num_dims(self):
        """Dimensions counted by bits/dim: 784 for MNIST, 3HW for colour."""
        if self.config.dataset == 'mnist':
            return MNIST_CROP * MNIST_CROP
        return 3 * self.config.image_size**2

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        recon = self.reconstruction_loss(x, y_pred['logits'])
        kl = y_pred['kl']
        kl_total = ops.sum(kl, axis=1)
        for tracker, value in zip(
            self.kl_group_trackers, ops.unstack(ops.mean(kl, axis=0)), strict=True
        ):
            tracker.update_state(value)
        self.trackers['recon'].update_state(ops.mean(recon))
        self.trackers['kl'].update_state(ops.mean(kl_total))
        if not training:
            return ops.mean(recon + kl_total)  # the negative ELBO
        c, step = self.config, self.global_step
        beta = schedules.kl_coefficient(step, c)
        kl_term = schedules.balanced_kl(kl, self.kl_alphas, beta)
        spectral = 0.0  # spectral norm: the kernels are normalised, not penalised
        if self.spectral is not None:
            # 10x more power iterations the first time, from random vectors.
            iterations = ops.where(step == 0, 10 * c.num_power_iter, c.num_power_iter)
            spectral = self.spectral(
                [conv.kernel_matrix() for conv in self._convs()], num_iterations=iterations
            )
        bn = batch_norm_penalty(self._batch_norms())
        self.trackers['spectral_loss'].update_state(spectral)
        self.trackers['bn_loss'].update_state(bn)
        self.trackers['beta'].update_state(beta)
        self.trackers['lr'].update_state(self.lr_schedule(step))
        step.assign_add(1)
        loss = ops.mean(recon + beta * kl_term) + c.weight_decay_norm * (spectral + bn)
        # Each replica's share of the global mean, as Keras' own losses return it: gradients are
        # summed over replicas (a no-op without tf.distribute and on other backends).
        return scale_loss_for_distribution(loss)

    # --------------------------------------------------- sampling, evaluation

    def sample(
        self,
        num_samples,
        temperature=1.0,
        training=False,
        mean_image=False,
        sampling_state=False,
        seed=None,
    ):
        """Images from the prior in [0, 1]: Bernoulli means (MNIST) or DML samples.

        Every group's standard deviation is multiplied by the temperature (the
        top group's sigma is 1.01 t); for colour the mixture is sampled at it too.
        mean_image: colour images are the mixture's mean instead of a sample
        from it, as the official FID scores them (sampling's pixel noise costs
        FID). sampling_state: the decoder's BatchNorm uses the statistics that
        readjust_bn estimated on prior samples, as NVAE samples after
        readjustment; otherwise the training statistics. seed: draws as the
        model's own stream after reseed(seed), without advancing it; None: the
        model's stream.
        """
        seeds = self.seed_generator if seed is None else self.seed_stream(seed)

        def latent(group, s):
            return self._prior(group, s, num_samples, temperature).sample(seeds)

        logits = self._decode(num_samples, latent, training, sampling_state)
        dist = self.output_distribution(logits)
        if self.config.dataset == 'mnist' or mean_image:
            return dist.mean()
        return dist.sample(seeds, temperature)

    def _prior(self, group, state, batch_size, temperature):
        """p(z_group | z_<group) at a temperature: N(0, 1.01 t) for the top group, else the
        prior head's reading of the decoder state the groups above left."""
        if group == 0:
            zeros = ops.zeros((batch_size,) + self.z0_shape)
            return Normal(zeros, zeros, temperature)
        return Normal(*_split(self.prior_heads[group - 1](state)), temperature)

    def readjust_bn(self, num_passes=500, batch_size=16, temperature=1.0, compile_pass=None):
        """Makes the sampling state (the official --readjust_bn): the decoder's BatchNorm
        statistics, starting from the training statistics, re-estimated on num_passes batches of
        prior samples at `temperature` in training mode. The training statistics, which
        likelihoods and reconstructions use, are left as they are; the settings are recorded
        (sampling_settings). compile_pass wraps the one-pass function (tf.function on
        TensorFlow: one traced pass, run num_passes times)."""
        for bn in self._sampling_batch_norms():
            bn.reset_sampling_state()

        def one_pass():
            self.sample(batch_size, temperature, training=True, sampling_state=True)

        run = compile_pass(one_pass) if compile_pass else one_pass
        for _ in range(num_passes):
            run()
        for name, value in (
            ('passes', num_passes),
            ('batch', batch_size),
            ('temperature', temperature),
        ):
            self.readjust_record[name].assign(value)

    def sampling_state_variables(self):
        """The variables readjust_bn sets: the decoder's sampling statistics and the record."""
        return [
            v
            for bn in self._sampling_batch_norms()
            for v in (bn.sampling_mean, bn.sampling_variance)
        ] + list(self.readjust_record.values())

    def sampling_settings(self):
        """{'passes', 'batch', 'temperature'} of readjust_bn, or None if it has not run."""
        values = {k: ops.convert_to_numpy(v).item() for k, v in self.readjust_record.items()}
        return None if values['passes'] < 0 else values

    def seed_stream(self, seed):
        return SeedStream(seed, self.seed_generator.state.dtype)

    def reseed(self, seed):
        """Restarts the model's random stream where keras.random.SeedGenerator(seed) starts
        (seed may be a traced integer tensor): equal seeds, equal draws."""
        state = self.seed_generator.state
        seed = ops.cast(ops.reshape(seed, (1,)), state.dtype)
        state.assign(ops.concatenate([seed, ops.zeros((1,), state.dtype)]))

    def encode(self, x):
        """Posterior means per group (decoder order), each conditioned on the
        means of the groups above it; flows, if any, are applied to them."""
        return self._posterior_pass(self._prepare(x), training=False, use_mean=True)[4]

    def posterior_sample(self, x, seed):
        """One sample of every group's latent from the posterior (decoder order), each group
        drawn given the samples of the groups above it, flows applied; equal seeds give equal
        samples."""
        seeds = self.seed_stream(seed)
        return self._posterior_pass(self._prepare(x), training=False, seeds=seeds)[4]

    def latent_shapes(self):
        """[h, w, channels] of every group's latent, decoder order (coarsest scale first)."""
        size, channels = self.z0_shape[0], self.z0_shape[-1]
        return [
            (size * 2**scale, size * 2**scale, channels)
            for scale, groups in enumerate(reversed(self.groups_per_scale))
            for _ in range(groups)
        ]

    def decode(self, latents, keep, temperature, seed):
        """Images in [0, 1] from latents (decoder order, as encode gives them), and the latents
        decoded.

        Group g decodes latents[g] where keep[g]; elsewhere a draw from its conditional prior
        p(z_g | z_<g) at temperature[g], given the groups above as decoded (temperature is
        unused where kept). Every group's draw is made whether kept or not, so a seed draws the
        same noise whichever groups are kept. The images are the decoder's mean, as
        reconstruct's: decoding encode(x) with every group kept reconstructs x. BatchNorm uses
        the training statistics, as reconstruct and the likelihoods do; decoding with no group
        kept therefore equals sample(mean_image=True) without the sampling state.
        """
        seeds = self.seed_stream(seed)
        batch_size = ops.shape(latents[0])[0]
        decoded = []

        def latent(group, s):
            drawn = self._prior(group, s, batch_size, temperature[group]).sample(seeds)
            decoded.append(ops.where(keep[group], ops.cast(latents[group], 'float32'), drawn))
            return decoded[-1]

        logits = self._decode(batch_size, latent, training=False)
        return self.output_distribution(logits).mean(), decoded

    def reconstruct(self, x):
        """Decoder mean image in [0, 1] given the posterior means."""
        logits = self._posterior_pass(self._prepare(x), training=False, use_mean=True)[0]
        return self.output_distribution(logits).mean()

    def _log_weights(self, x):
        """log p(x|z) + log p(z) - log q(z|x) for one posterior sample, and the KL, per example."""
        out = self(x, training=False)
        recon = self.reconstruction_loss(x, out['logits'])
        return -recon - out['log_q'] + out['log_p'], recon + ops.sum(out['kl'], axis=1)

    def negative_elbo(self, x):
        """-ELBO per example in nats (one posterior sample, beta = 1, BN in inference mode)."""
        return self._log_weights(x)[1]

    def log_likelihood(self, x, num_samples=1000, chunk_size=100):
        """Importance-weighted bound log (1/K) sum_k p(x, z_k) / q(z_k|x) per example.

        Samples are drawn chunk_size at a time (chunk_size * batch images per
        forward pass) in a symbolic loop with a running log-sum-exp: memory is
        bounded for any K, and the traced graph holds one forward pass (two when
        chunk_size does not divide K), so tracing costs the same at K = 1000 as
        at K = 50. The draws are those of the same passes run one after another.
        """
        chunk_size = min(chunk_size, num_samples)
        full_chunks, rest = divmod(num_samples, chunk_size)

        def add_chunk(k):
            def body(_, carry):
                total, seed_state = carry
                log_w, seed_state = self._chunk_log_weights(x, k, seed_state)
                return ops.logaddexp(total, ops.logsumexp(log_w, axis=1)), seed_state

            return body

        seed = self.seed_generator.state
        carry = (ops.full_like(x[:, 0, 0, 0], -np.inf, dtype='float32'), seed.value)
        carry = ops.fori_loop(0, full_chunks, add_chunk(chunk_size), carry)
        if rest:
            carry = add_chunk(rest)(full_chunks, carry)
        total, seed_state = carry
        seed.assign(seed_state)
        return total - math.log(num_samples)

    def _chunk_log_weights(self, x, k, seed_state):
        """Log weights [batch, k] of k posterior samples per image drawn from seed_state, and
        the advanced seed state.

        A traced loop cannot update the seed generator's variable in place (on JAX the body is
        traced once, so every iteration would draw the same numbers): the state is the loop's
        carry, mapped in by a stateless scope that also keeps any enclosing scope's values.
        """
        seed = self.seed_generator.state
        outer = get_stateless_scope()
        mapping = (
            []
            if outer is None
            else [
                (v, outer.get_current_value(v))
                for v in self.variables
                if outer.get_current_value(v) is not None
            ]
        )
        with keras.StatelessScope(state_mapping=[*mapping, (seed, seed_state)]) as scope:
            log_w, _ = self._log_weights(ops.repeat(x, k, axis=0))
        return ops.reshape(log_w, (-1, k)), scope.get_current_value(seed)

    def bits_per_dim(self, nats):
        return nats / (math.log(2.0) * self.num_dims)
