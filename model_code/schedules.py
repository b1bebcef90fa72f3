"""KL warm-up and KL balancing (NVAE section 3.2 / appendix A)."""

import numpy as np
from keras import ops


def kl_coefficient(step, config):
    """beta: ~kl_const_coeff for the first kl_const_portion of training, then a
    linear ramp reaching 1 after kl_anneal_portion of config.total_steps. With
    config.kl_warmup 'epoch' it is the ramp's value at the first step of the step's
    epoch (constant within each epoch of config.steps_per_epoch steps)."""
    if config.kl_warmup == 'epoch':
        step = ops.floor_divide(step, config.steps_per_epoch) * config.steps_per_epoch
    anneal_steps = config.kl_anneal_portion * config.total_steps
    const_steps = config.kl_const_portion * config.total_steps
    beta = (ops.cast(step, 'float32') - const_steps) / anneal_steps
    return ops.maximum(ops.minimum(beta, 1.0), config.kl_const_coeff)


def balance_alphas(groups_per_scale):
    """The 'square' coefficients: area of a scale / its number of groups, per group
    in decoder order (coarsest scale first), normalised to a minimum of 1."""
    alphas = np.concatenate(
        [np.full(n, 4.0**i / n) for i, n in enumerate(reversed(groups_per_scale))]
    )
    return (alphas / alphas.min()).astype(np.float32)


def balanced_kl(kl_groups, alphas, beta):
    """Per-example KL [B] from per-group KL [B, G].

    While beta < 1 each group is weighted by its batch-mean |KL| over its alpha,
    normalised to mean 1 (no gradient through the weights), which keeps
    low-KL groups from collapsing; afterwards it is the plain sum.
    """
    usage = ops.mean(ops.abs(kl_groups), axis=0) + 0.01
    weights = usage / alphas * ops.sum(usage)
    weights = ops.stop_gradient(weights / ops.mean(weights))
    balanced = ops.sum(kl_groups * weights, axis=1)
    return ops.where(beta < 1.0, balanced, ops.sum(kl_groups, axis=1))
