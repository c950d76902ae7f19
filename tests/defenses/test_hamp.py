"""HAMP soft labels and loss against the paper's reference values and a NumPy reference."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hampjax.defenses.hamp import (
    hamp_loss,
    hamp_soft_labels,
    soft_label_entropy,
    soft_label_probability,
)

# HAMP Sec. III-C soft labels: (k, gamma, grid p, exact p or None).
REFERENCE = [
    (100, 0.50, 0.64, 0.640981),
    (100, 0.60, 0.54, 0.548506),
    (100, 0.80, 0.33, 0.337371),
    (100, 0.95, 0.13, 0.133407),
    (10, 0.95, 0.26, 0.269814),
    (30, 0.50, 0.68, 0.680923),
    (100, 0.90, 0.20, None),
    (100, 0.10, 0.94, None),
    # Label-smoothing baselines of the authors' scripts.
    (100, 0.05, 0.97, None),
    (100, 0.15, 0.91, None),
    (100, 0.01, 0.99, None),
]


def np_entropy(p, k):
    p = np.float64(p)
    q = (1 - p) / (k - 1)
    out = 0.0
    if p > 0:
        out -= p * np.log(p)
    if q > 0:
        out -= (k - 1) * q * np.log(q)
    return out


def authors_grid_search(k, gamma):
    """The authors' loop, written out: move 0.01 of mass at a time until entropy is reached."""
    for step in range(101):
        p = (100 - step) / 100
        if np_entropy(p, k) >= gamma * np.log(k):
            return p
    raise AssertionError("unreachable")


@pytest.mark.parametrize("k,gamma,grid_p,exact_p", REFERENCE)
def test_reference_table(k, gamma, grid_p, exact_p):
    assert float(soft_label_probability(k, gamma)) == pytest.approx(grid_p, abs=1e-6)
    assert authors_grid_search(k, gamma) == pytest.approx(grid_p)
    exact = float(soft_label_probability(k, gamma, method="exact"))
    if exact_p is not None:
        assert exact == pytest.approx(exact_p, abs=1e-6)
    # The exact root is within 0.01 above the grid value.
    assert grid_p <= exact + 1e-6 <= grid_p + 0.01 + 1e-6


@pytest.mark.parametrize("k", [2, 3, 10, 100])
def test_exact_root_solves_equation_and_satisfies_constraint(k):
    for gamma in np.linspace(0.01, 0.99, 13):
        p = float(soft_label_probability(k, gamma, method="exact"))
        assert 1.0 / k <= p <= 1.0
        assert np_entropy(p, k) == pytest.approx(gamma * np.log(k), abs=2e-5)
        assert np_entropy(p, k) >= gamma * np.log(k) - 1e-6


def test_grid_matches_authors_loop_everywhere():
    for k in (2, 10, 30, 100):
        for gamma in np.round(np.linspace(0.0, 0.99, 34), 4):
            got = float(soft_label_probability(k, float(gamma)))
            assert got == pytest.approx(authors_grid_search(k, gamma), abs=1e-6), (k, gamma)


def test_zero_threshold_is_one_hot():
    for method in ("grid", "exact"):
        assert float(soft_label_probability(10, 0.0, method=method)) == 1.0
    labels = hamp_soft_labels(jnp.array([3]), 5, 0.0)
    np.testing.assert_allclose(labels, np.eye(5)[[3]])


def test_soft_label_entropy_endpoints():
    assert float(soft_label_entropy(1.0, 10)) == 0.0
    assert float(soft_label_entropy(0.1, 10)) == pytest.approx(np.log(10), rel=1e-6)


def test_soft_labels_shape_and_values():
    labels = jnp.array([[0, 2], [1, 1]])
    soft = hamp_soft_labels(labels, 4, 0.5)
    assert soft.shape == (2, 2, 4)
    np.testing.assert_allclose(soft.sum(-1), 1.0, rtol=1e-6)
    p = float(soft_label_probability(4, 0.5))
    np.testing.assert_allclose(soft[0, 1, 2], p, rtol=1e-6)
    np.testing.assert_allclose(soft[0, 1, 0], (1 - p) / 3, rtol=1e-6)
    # Entropy of each row reaches the threshold.
    ent = -(soft * jnp.log(soft)).sum(-1)
    assert np.all(np.asarray(ent) >= 0.5 * np.log(4) - 1e-6)


def test_traced_threshold_under_vmap_and_jit():
    gammas = jnp.array([0.5, 0.8, 0.95])
    grid = jax.jit(jax.vmap(lambda g: soft_label_probability(100, g)))(gammas)
    np.testing.assert_allclose(grid, [0.64, 0.33, 0.13], atol=1e-6)
    exact = jax.vmap(lambda g: soft_label_probability(100, g, method="exact"))(gammas)
    np.testing.assert_allclose(exact, [0.640981, 0.337371, 0.133407], atol=1e-6)
    labels = jnp.array([1, 2])
    batched = jax.vmap(lambda g: hamp_soft_labels(labels, 100, g))(gammas)
    for i, g in enumerate([0.5, 0.8, 0.95]):
        np.testing.assert_allclose(batched[i], hamp_soft_labels(labels, 100, g), rtol=1e-6)


def np_hamp_loss(logits, soft, alpha, mean_over_classes):
    logits = np.asarray(logits, np.float64)
    soft = np.asarray(soft, np.float64)
    out = np.zeros(logits.shape[:-1])
    for idx in np.ndindex(*logits.shape[:-1]):
        z = logits[idx]
        p = np.exp(z - z.max())
        p /= p.sum()
        kl = sum(s * (np.log(s) - np.log(pc)) for s, pc in zip(soft[idx], p) if s > 0)
        if mean_over_classes:
            kl /= len(z)
        ent = -sum(pc * np.log(pc) for pc in p if pc > 0)
        out[idx] = kl - alpha * ent
    return out


@pytest.mark.parametrize("reduction", ["sum", "mean_over_classes"])
@pytest.mark.parametrize("k", [2, 10, 100])
def test_loss_matches_numpy(reduction, k):
    key = jax.random.key(k)
    logits = 3.0 * jax.random.normal(key, (16, k))
    labels = jax.random.randint(jax.random.key(1), (16,), 0, k)
    soft = hamp_soft_labels(labels, k, 0.8)
    got = hamp_loss(logits, soft, 0.3, kl_reduction=reduction)
    want = np_hamp_loss(logits, soft, 0.3, reduction == "mean_over_classes")
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)


def test_mean_over_classes_reproduces_torch_kl_div_mean():
    # PyTorch kl_div(input=log_softmax, target, reduction='mean') = sum(all terms) / (B * k);
    # the authors' batch loss is that minus alpha * mean entropy.
    logits = jax.random.normal(jax.random.key(0), (8, 5))
    labels = jnp.arange(8) % 5
    soft = hamp_soft_labels(labels, 5, 0.7)
    logp = np.asarray(jax.nn.log_softmax(logits), np.float64)
    s = np.asarray(soft, np.float64)
    kl_mean = np.sum(s * (np.log(s) - logp)) / s.size
    ent = -np.sum(np.exp(logp) * logp, axis=-1).mean()
    want = kl_mean - 0.01 * ent
    got = hamp_loss(logits, soft, 0.01, kl_reduction="mean_over_classes").mean()
    assert float(got) == pytest.approx(want, rel=1e-5)


def test_loss_batch_shapes_jit_vmap():
    logits = jax.random.normal(jax.random.key(0), (3, 4, 6))
    soft = hamp_soft_labels(jnp.zeros((3, 4), jnp.int32), 6, 0.5)
    direct = hamp_loss(logits, soft, 0.1)
    assert direct.shape == (3, 4)
    jitted = jax.jit(lambda z, s: hamp_loss(z, s, 0.1))(logits, soft)
    np.testing.assert_allclose(jitted, direct, rtol=1e-6)
    vmapped = jax.vmap(lambda z, s: hamp_loss(z, s, 0.1))(logits, soft)
    np.testing.assert_allclose(vmapped, direct, rtol=1e-6)
    # alpha traced and vmapped over models.
    alphas = jnp.array([0.0, 0.1, 0.5])
    per_model = jax.vmap(lambda z, s, a: hamp_loss(z, s, a))(logits, soft, alphas)
    for m in range(3):
        np.testing.assert_allclose(per_model[m], hamp_loss(logits[m], soft[m], float(alphas[m])),
                                   rtol=1e-6)


def test_loss_no_retrace_across_calls():
    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(z, s, a):
        return hamp_loss(z, s, a).mean()

    soft = hamp_soft_labels(jnp.array([0, 1]), 3, 0.5)
    for a in (0.0, 0.1, 0.2):
        step(jnp.ones((2, 3)) * a, soft, a)


def test_gradient_finite_for_extreme_logits():
    soft = hamp_soft_labels(jnp.array([0, 1, 2]), 3, 0.9)
    logits = jnp.array([[1e4, -1e4, 0.0], [30.0, -30.0, 0.0], [0.0, 0.0, 0.0]])
    loss, grad = jax.value_and_grad(lambda z: hamp_loss(z, soft, 0.5).mean())(logits)
    assert np.isfinite(float(loss))
    assert np.all(np.isfinite(np.asarray(grad)))


def test_entropy_term_raises_entropy():
    # With uniform-ish soft labels and positive alpha, the gradient step increases entropy.
    logits = jnp.array([[4.0, 0.0, -1.0, 2.0]])
    soft = hamp_soft_labels(jnp.array([0]), 4, 0.0)  # one-hot: KL alone sharpens
    grad_fn = jax.grad(lambda z, a: hamp_loss(z, soft, a).sum())
    ent = lambda z: float(-(jax.nn.softmax(z) * jax.nn.log_softmax(z)).sum())
    stepped = logits - 0.1 * grad_fn(logits, 10.0)
    assert ent(stepped) > ent(logits)
    stepped0 = logits - 0.1 * grad_fn(logits, 0.0)
    assert ent(stepped0) < ent(logits)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: soft_label_probability(100, 1.0), r"entropy_threshold must be in \[0, 1\)"),
        (lambda: soft_label_probability(100, -0.1), r"entropy_threshold must be in \[0, 1\)"),
        (lambda: soft_label_probability(1, 0.5), r"num_classes must be an integer >= 2"),
        (lambda: soft_label_probability(10, 0.5, method="newton"), r"method must be one of"),
        (lambda: hamp_soft_labels(jnp.array([0, 10]), 10, 0.5), r"labels must be in \[0, 10\)"),
        (lambda: hamp_soft_labels(jnp.array([-1]), 10, 0.5), r"labels must be in \[0, 10\)"),
        (lambda: hamp_soft_labels(jnp.array([0.5]), 10, 0.5), r"labels must be integer"),
        (lambda: hamp_loss(jnp.zeros((2, 3)), jnp.zeros((2, 4)), 0.1), r"must have the same shape"),
        (lambda: hamp_loss(jnp.zeros((2, 3)), jnp.full((2, 3), 1 / 3), -0.1),
         r"alpha must be in \[0, inf\)"),
        (lambda: hamp_loss(jnp.zeros((2, 3)), jnp.full((2, 3), 1 / 3), 0.1, kl_reduction="mean"),
         r"kl_reduction must be one of"),
        (lambda: hamp_loss(jnp.zeros((1, 2)), jnp.array([[1.5, -0.5]]), 0.1),
         r"soft_labels must be in \[0, 1\]"),
    ],
)
def test_validation_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
