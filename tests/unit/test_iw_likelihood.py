"""The importance-weighted bound's symbolic chunk loop, on TensorFlow and on JAX.

`iw_loop_facts` runs under whichever backend the process imported: the bound from the traced
loop against the same forward passes run one after another in Python, and the size of the
traced program at K=50 and K=1000 (TensorFlow: nodes of the graph and of its loop bodies; JAX:
equations of the jaxpr and of its sub-jaxprs).
"""

import keras
import numpy as np
from keras import ops
from scipy.special import logsumexp

from model_code.config import get_config
from model_code.nvae import NVAE
from tests.support import backends

BATCH, K, CHUNK = 3, 7, 3  # two full chunks and a remainder of one


def _graph_size(model, num_samples):
    backend = keras.backend.backend()
    x = np.zeros((BATCH, 32, 32, 1), 'float32')
    if backend == 'tensorflow':
        import tensorflow as tf

        fn = tf.function(lambda x: model.log_likelihood(x, num_samples, chunk_size=10))
        graph = fn.get_concrete_function(tf.TensorSpec([None, 32, 32, 1])).graph.as_graph_def()
        return len(graph.node) + sum(len(f.node_def) for f in graph.library.function)
    import jax

    variables = model.variables

    def pure(values, x):
        with keras.StatelessScope(list(zip(variables, values, strict=True))):
            return model.log_likelihood(x, num_samples, chunk_size=10)

    def equations(jaxpr):
        subs = [
            getattr(s, 'jaxpr', s)
            for p in jaxpr.eqns
            for v in p.params.values()
            for s in (v if isinstance(v, (list, tuple)) else [v])
            if isinstance(s, (jax.core.Jaxpr, jax.core.ClosedJaxpr))
        ]
        return len(jaxpr.eqns) + sum(equations(s) for s in subs)

    return equations(jax.make_jaxpr(pure)([v.value for v in variables], x).jaxpr)


def iw_loop_facts():
    keras.utils.set_random_seed(0)
    model = NVAE(get_config('tiny'))
    x = (np.random.default_rng(0).random((BATCH, 32, 32, 1)) < 0.3).astype('float32')
    seed = model.seed_generator.state
    start = np.asarray(ops.convert_to_numpy(seed.value)).copy()

    log_w = []  # the reference: the same passes, one after another
    for first in range(0, K, CHUNK):
        k = min(CHUNK, K - first)
        w = model._log_weights(ops.repeat(x, k, axis=0))[0]
        log_w.append(ops.convert_to_numpy(ops.reshape(w, (BATCH, k))))
    reference = logsumexp(np.concatenate(log_w, axis=1), axis=1) - np.log(K)
    seed_after_reference = ops.convert_to_numpy(seed.value)

    seed.assign(start)
    bound = ops.convert_to_numpy(model.log_likelihood(x, K, chunk_size=CHUNK))
    seed_after_bound = ops.convert_to_numpy(seed.value)

    seed.assign(start)
    one = ops.convert_to_numpy(model.log_likelihood(x, 1))
    seed.assign(start)
    one_weight = ops.convert_to_numpy(model._log_weights(x)[0])
    return {
        'backend': keras.backend.backend(),
        'reference': reference.tolist(),
        'bound': bound.tolist(),
        'seed_start': start.tolist(),
        'seed_after_reference': seed_after_reference.tolist(),
        'seed_after_bound': seed_after_bound.tolist(),
        'k1': one.tolist(),
        'k1_log_weight': one_weight.tolist(),
        'size_k50': _graph_size(model, 50),
        'size_k1000': _graph_size(model, 1000),
    }


def _check(facts):
    # The loop draws exactly what the unrolled passes draw, and advances the seed as far.
    np.testing.assert_allclose(facts['bound'], facts['reference'], rtol=1e-5)
    assert facts['seed_after_bound'] == facts['seed_after_reference'] != facts['seed_start']
    assert np.all(np.isfinite(facts['bound'])) and np.all(np.array(facts['bound']) < 0)
    np.testing.assert_allclose(facts['k1'], facts['k1_log_weight'], rtol=1e-6)
    # Tracing does not grow with K: 100 loop iterations trace like 5.
    assert facts['size_k50'] > 100
    assert facts['size_k1000'] <= 1.5 * facts['size_k50']


def test_iw_loop_on_tensorflow():
    facts = iw_loop_facts()
    assert facts['backend'] == 'tensorflow'
    _check(facts)


def test_iw_loop_on_jax():
    facts = backends.facts_under('jax', iw_loop_facts)
    assert facts['backend'] == 'jax'
    _check(facts)
