"""Per-example scores against float64 NumPy references, and stability for extreme logits."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hampjax.scores import entropy, logit_scaled_score, modified_entropy, true_class_log_prob


def np_probs(z):
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.fixture
def batch():
    logits = 3.0 * jax.random.normal(jax.random.key(0), (32, 10))
    labels = jax.random.randint(jax.random.key(1), (32,), 0, 10)
    return logits, labels


def test_entropy(batch):
    p = np_probs(batch[0])
    np.testing.assert_allclose(entropy(batch[0]), -(p * np.log(p)).sum(-1), rtol=1e-5, atol=1e-6)


def test_true_class_log_prob(batch):
    logits, labels = batch
    p = np_probs(logits)
    np.testing.assert_allclose(true_class_log_prob(logits, labels),
                               np.log(p[np.arange(32), np.asarray(labels)]), rtol=1e-5, atol=1e-6)


def test_modified_entropy(batch):
    logits, labels = batch
    p = np_probs(logits)
    want = []
    for row, y in zip(p, np.asarray(labels)):
        m = -(1 - row[y]) * np.log(row[y])
        m -= sum(row[j] * np.log(1 - row[j]) for j in range(10) if j != y)
        want.append(m)
    np.testing.assert_allclose(modified_entropy(logits, labels), want, rtol=1e-4, atol=1e-6)


def test_logit_scaled_score(batch):
    logits, labels = batch
    p = np_probs(logits)
    y = np.asarray(labels)
    py = p[np.arange(32), y]
    np.testing.assert_allclose(logit_scaled_score(logits, labels), np.log(py) - np.log(1 - py),
                               rtol=1e-4, atol=1e-4)


def test_extreme_logits_are_finite():
    logits = jnp.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0], [0.0, 0.0, 0.0]])
    labels = jnp.array([0, 0, 2])
    for fn in (lambda: entropy(logits), lambda: modified_entropy(logits, labels),
               lambda: logit_scaled_score(logits, labels), lambda: true_class_log_prob(logits, labels)):
        assert np.all(np.isfinite(np.asarray(fn())))
    lss = logit_scaled_score(logits, labels)
    assert float(lss[0]) == pytest.approx(1e4)
    assert float(lss[1]) == pytest.approx(-2e4)
    assert float(lss[2]) == pytest.approx(-np.log(2), rel=1e-6)


def test_jit_vmap(batch):
    logits, labels = batch
    stacked = (jnp.stack([logits, -logits]), jnp.stack([labels, labels]))
    for fn in (modified_entropy, logit_scaled_score, true_class_log_prob):
        direct = fn(*stacked)
        np.testing.assert_allclose(jax.jit(fn)(*stacked), direct, rtol=1e-6)
        np.testing.assert_allclose(jax.vmap(fn)(*stacked), direct, rtol=1e-6)
