"""TensorBoard extras beyond Keras' scalar logs: sample and reconstruction grids, and the number
of active latent units, every epoch."""

import keras
import numpy as np
import tensorflow as tf

from nvae_tfx import images
from nvae_tfx.training import checkpoints

ACTIVE_UNIT_THRESHOLD = 0.01  # Burda et al.: Cov_x(E_q[z]) above this counts as active


def active_units(model, images) -> int:
    """Latent units whose posterior mean varies across the batch by more than the threshold."""
    means = model.encode(images)
    return int(
        sum(
            np.sum(np.var(keras.ops.convert_to_numpy(m), axis=0) > ACTIVE_UNIT_THRESHOLD)
            for m in means
        )
    )


class EpochImages(keras.callbacks.Callback):
    """Writes samples (at `temperature`, from the same seed every epoch), reconstructions of
    fixed eval images and active units."""

    def __init__(self, log_dir: str, eval_images, temperature: float, num_samples: int = 64):
        super().__init__()
        self.writer = tf.summary.create_file_writer(f'{log_dir.rstrip("/")}/images')
        self.eval_images = eval_images
        self.num_samples = num_samples
        self.temperature = temperature

    def on_epoch_end(self, epoch, logs=None):
        step = checkpoints.step(self.model)
        # The same seed every epoch (progress shows on the same latents), and the training
        # stream left as it is (seeded draws do not advance it).
        samples = keras.ops.convert_to_numpy(
            self.model.sample(self.num_samples, self.temperature, seed=self.model.config.seed)
        )
        originals = self.eval_images[:16]
        recons = keras.ops.convert_to_numpy(self.model.reconstruct(originals))
        pairs = np.stack([np.asarray(originals), recons], axis=1).reshape((-1,) + recons.shape[1:])
        units = active_units(self.model, self.eval_images)
        with self.writer.as_default(step=step):
            tf.summary.image('samples', images.grid(samples)[None], max_outputs=1)
            tf.summary.image(
                'reconstructions (original | reconstruction)',
                images.grid(pairs, columns=8)[None],
                max_outputs=1,
            )
            tf.summary.scalar('active_units', units)
        self.writer.flush()
        if logs is not None:
            logs['active_units'] = units
