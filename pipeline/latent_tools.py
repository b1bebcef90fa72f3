"""Latent-space tools on a pushed model through its `encode` and `decode` signatures alone (no
model code): interpolation, blending, hierarchical mixing and reconstruction.

NVAE's latent is a list of groups, coarsest scale first (decoder order), as the signatures name
them: encode's mean_GG and sample_GG, decode's z_GG (docs/serving.md). Each tool combines the
groups of two encoded images and decodes every group as given, so decode's seed and temperatures,
which only concern groups drawn from the prior, play no part.
"""

import numpy as np

LATENTS = ('mean', 'sample')  # which of encode's latents the tools use
INTERPOLATIONS = ('linear', 'spherical')


class ServedLatents:
    """The encode and decode signatures of a loaded SavedModel, numpy arrays in and out."""

    def __init__(self, served):
        import tensorflow as tf

        self._tf = tf
        self._encode = served.signatures['encode']
        self._decode = served.signatures['decode']
        self.num_groups = self._decode.structured_input_signature[1]['keep'].shape[0]

    def encode(self, images: np.ndarray, latent: str, seed: int) -> list[np.ndarray]:
        """Every group's latent of each image: the posterior means, or a posterior sample drawn
        with `seed`."""
        tf = self._tf
        out = self._encode(images=tf.constant(images, tf.float32), seed=tf.constant(seed))
        return [out[f'{latent}_{g:02d}'].numpy() for g in range(self.num_groups)]

    def decode(self, latents: list[np.ndarray]) -> np.ndarray:
        """Images decoded from every group's latent as given."""
        tf, groups = self._tf, self.num_groups
        out = self._decode(
            **{f'z_{g:02d}': tf.constant(z, tf.float32) for g, z in enumerate(latents)},
            keep=tf.ones([groups], tf.bool),
            temperature=tf.ones([groups], tf.float32),
            seed=tf.constant(0),
        )
        return out['images'].numpy()


def lerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    return (1.0 - t) * a + t * b


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Along the great circle from a to b, each example's latent taken as one vector (the path
    a Gaussian latent keeps its typical length on); linear where a and b are (anti)parallel."""
    flat_a, flat_b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    norms = np.linalg.norm(flat_a, axis=1) * np.linalg.norm(flat_b, axis=1)
    cosine = np.sum(flat_a * flat_b, axis=1) / np.maximum(norms, 1e-12)
    omega = np.arccos(np.clip(cosine, -1.0, 1.0))
    sin = np.sin(omega)
    circular = sin > 1e-6
    safe = np.where(circular, sin, 1.0)
    wa = np.where(circular, np.sin((1.0 - t) * omega) / safe, 1.0 - t)
    wb = np.where(circular, np.sin(t * omega) / safe, t)
    shape = (-1,) + (1,) * (a.ndim - 1)
    return wa.reshape(shape) * a + wb.reshape(shape) * b


def interpolation(model: ServedLatents, za, zb, steps: int, kind: str) -> np.ndarray:
    """`steps` images from A's latent (first) to B's (last), every group interpolated alike;
    za, zb: each group's latent of one image."""
    combine = lerp if kind == 'linear' else slerp
    ts = np.linspace(0.0, 1.0, steps)
    return model.decode(
        [np.concatenate([combine(a, b, t) for t in ts]) for a, b in zip(za, zb, strict=True)]
    )


def blend(model: ServedLatents, za, zb, alphas) -> np.ndarray:
    """One image per alpha, every group's latent alpha * zA + (1 - alpha) * zB."""
    return model.decode(
        [
            np.concatenate([lerp(b, a, alpha) for alpha in alphas])
            for a, b in zip(za, zb, strict=True)
        ]
    )


def mix(za, zb, top_groups: int) -> list[np.ndarray]:
    """A's latent in the top_groups coarsest groups, B's in the others."""
    return [a if g < top_groups else b for g, (a, b) in enumerate(zip(za, zb, strict=True))]


def mixing_grid(model: ServedLatents, images: np.ndarray, za, zb, top_groups) -> np.ndarray:
    """One row per N in top_groups: A, A's N coarsest groups with B's others, B's N coarsest
    with A's others, B. images: A and B as read."""
    rows = []
    for n in top_groups:
        mixed = model.decode(
            [np.concatenate(pair) for pair in zip(mix(za, zb, n), mix(zb, za, n), strict=True)]
        )
        rows.append(np.stack([images[0], mixed[0], mixed[1], images[1]]))
    return np.concatenate(rows)


def reconstruction_pairs(model: ServedLatents, images: np.ndarray, latent: str, seed: int):
    """Each image followed by its reconstruction, decoded from its latent."""
    decoded = model.decode(model.encode(images, latent, seed))
    return np.stack([images, decoded], axis=1).reshape((-1,) + images.shape[1:])
