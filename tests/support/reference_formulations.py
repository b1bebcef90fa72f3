"""Formulations the model replaced with faster equivalents, kept as references for the tests
that show the two agree and for the benchmarks that time them."""

from keras import ops


def strided_factorized_reduce(layer, x):
    """The official formulation of FactorizedReduce: each 1x1 conv at stride 2 on a shifted
    input, which the model computes differently (model_code/layers.py)."""
    x = ops.silu(x)
    shifted = [x, x[:, 1:, 1:], x[:, :, 1:], x[:, 1:, :]]
    return ops.concatenate(
        [
            ops.conv(s, conv.effective_kernel(), strides=2, padding='valid') + conv.bias
            for conv, s in zip(layer.convs, shifted, strict=True)
        ],
        axis=-1,
    )
