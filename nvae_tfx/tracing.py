"""TensorFlow graphs of model_code's functions."""

import tensorflow as tf


def graph_function(fn, **kwargs):
    """tf.function without AutoGraph: model_code has no Python control flow on tensors (it runs
    on JAX as well), so AutoGraph's source conversion would add time to every trace and change
    nothing in the graph."""
    return tf.function(fn, autograph=False, **kwargs)
