"""Tests for hampjax.defenses.laplace (last-layer Laplace approximation, Kristiadi et al. 2020)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from hampjax.attacks.metric import youden_threshold
from hampjax.defenses.laplace import (
    DEFAULT_PRIOR_GRID,
    GGN_MAX_PARAMS,
    LaplacePosterior,
    LastLayerLaplace,
    fit_last_layer_laplace,
    fit_laplace,
    laplace_log_predictive,
    laplace_predictive_moments,
    last_layer_features,
    last_layer_params,
    select_prior_variance,
)
from hampjax.models.registry import get_model
from hampjax.scores import logit_scaled_score

# ------------------------------------------------------------------ NumPy references


def np_softmax(z):
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def np_log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def np_kfac_factors(phi, W, b):
    phi = np.asarray(phi, np.float64)
    p = np_softmax(phi @ np.asarray(W, np.float64) + np.asarray(b, np.float64))
    n = len(phi)
    A = sum(np.outer(f, f) for f in phi) / n
    G = sum(np.diag(q) - np.outer(q, q) for q in p) / n
    return A, G


def np_kfac_cov(phi, A, G, n, var0):
    """Dense Kronecker predictive covariance: J (A' kron G')^-1 J^T + B^-1."""
    tau = 1.0 / var0
    d, c = A.shape[0], G.shape[0]
    Ap = np.sqrt(n) * A + np.sqrt(tau) * np.eye(d)
    Gp = np.sqrt(n) * G + np.sqrt(tau) * np.eye(c)
    Sigma_w = np.linalg.inv(np.kron(Ap, Gp))  # index d * C + c, W row-major
    B_inv = np.linalg.inv(n * G + tau * np.eye(c))
    out = []
    for f in np.asarray(phi, np.float64):
        J = np.kron(f[None, :], np.eye(c))  # [C, D*C]: dz_c / dW[d, c'] = f_d delta_cc'
        out.append(J @ Sigma_w @ J.T + B_inv)
    return np.stack(out)


def np_ggn(phi, W, b):
    phi = np.asarray(phi, np.float64)
    p = np_softmax(phi @ np.asarray(W, np.float64) + np.asarray(b, np.float64))
    c = p.shape[1]
    H = 0
    for f, q in zip(phi, p):
        J = np.kron(np.append(f, 1.0)[None, :], np.eye(c))  # [C, (D+1) C]
        H = H + J.T @ (np.diag(q) - np.outer(q, q)) @ J
    return H


def make_problem(key, n=20, d=3, c=3, scale=1.0):
    k1, k2, k3, k4 = jax.random.split(key, 4)
    phi = jax.random.normal(k1, (n, d)) * scale
    W = jax.random.normal(k2, (d, c))
    b = jax.random.normal(k3, (c,)) * 0.5
    y = jax.random.randint(k4, (n,), 0, c)
    return phi, y, W, b


# ------------------------------------------------------------------ 1. feature capture


def test_features_fc_match_manual_forward_and_reproduce_logits():
    model = get_model("fc", 3, hidden_sizes=(6, 5))
    x = jax.random.normal(jax.random.key(0), (7, 4))
    v = model.init(jax.random.key(1), x[:1], train=False)
    feats, logits = last_layer_features(model, v, x, batch_size=3)  # 3 batches, last padded
    p = v["params"]
    h = np.tanh(np.asarray(x) @ p["hidden0"]["kernel"] + p["hidden0"]["bias"])
    h = np.tanh(h @ p["hidden1"]["kernel"] + p["hidden1"]["bias"])
    np.testing.assert_allclose(feats, h, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(logits, model.apply(v, x, train=False), rtol=1e-5, atol=1e-5)
    W, b = last_layer_params(model, v, x[:1])
    np.testing.assert_allclose(feats @ W + b, logits, rtol=1e-4, atol=1e-4)
    f2, _ = last_layer_features(model, v, x, layer="classifier")
    np.testing.assert_allclose(f2, feats, rtol=1e-6, atol=1e-6)


def test_features_conv_model():
    model = get_model("salem_cnn", 4, channels=2, hidden=6)
    x = jax.random.normal(jax.random.key(2), (5, 8, 8, 3))
    v = model.init(jax.random.key(3), x[:1], train=False)
    feats, logits = last_layer_features(model, v, x, layer=("classifier",), batch_size=2)
    assert feats.shape == (5, 6) and logits.shape == (5, 4) and feats.dtype == jnp.float32
    assert np.all(np.asarray(feats) >= 0)  # ReLU features.
    W, b = last_layer_params(model, v, x)
    np.testing.assert_allclose(feats @ W + b, model.apply(v, x, train=False), rtol=1e-4, atol=1e-4)


def test_feature_layer_errors():
    model = get_model("fc", 3, hidden_sizes=(6,))
    x = jnp.ones((2, 4))
    v = model.init(jax.random.key(0), x, train=False)
    with pytest.raises(ValueError, match="layer must name a Dense.*'hidden0', 'classifier'"):
        last_layer_features(model, v, x, layer="nope")
    with pytest.raises(ValueError, match="not the model's output layer"):
        last_layer_features(model, v, x, layer="hidden0")
    with pytest.raises(ValueError, match="layer must be None"):
        last_layer_params(model, v, x, layer=3)

    class Tempered(nn.Module):
        @nn.compact
        def __call__(self, x, *, train):
            return nn.Dense(3)(x) / 2.0

    tv = Tempered().init(jax.random.key(0), x, train=False)
    with pytest.raises(ValueError, match="not the last operation"):
        last_layer_features(Tempered(), tv, x)

    class NoDense(nn.Module):
        @nn.compact
        def __call__(self, x, *, train):
            return x

    with pytest.raises(ValueError, match="calls no flax.linen.Dense"):
        last_layer_features(NoDense(), {"params": {}}, x)
    with pytest.raises(ValueError, match="model must be a flax.linen.Module"):
        last_layer_features(lambda x: x, v, x)
    with pytest.raises(ValueError, match="variables must be a mapping"):
        last_layer_features(model, {}, x)
    with pytest.raises(ValueError, match="x must contain at least 1 example"):
        last_layer_features(model, v, jnp.ones((0, 4)))
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        last_layer_features(model, v, x, batch_size=0)


# ------------------------------------------------------------------ 2. curvature


def test_kfac_factors_match_numpy():
    phi, y, W, b = make_problem(jax.random.key(0))
    post = fit_laplace(phi, y, W, b)
    A, G = np_kfac_factors(phi, W, b)
    np.testing.assert_allclose(post.input_factor, A, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(post.output_factor, G, rtol=1e-4, atol=1e-5)
    assert float(post.num_data) == 20.0 and post.method == "kfac"
    assert post.ggn_eigvals.shape == (0,) and post.ggn_eigvecs.shape == (0, 0)
    # Empirical Fisher: mean (p - e_y)(p - e_y)^T with the true labels.
    emp = fit_laplace(phi, y, W, b, fisher="empirical")
    g = np_softmax(np.asarray(phi @ W + b, np.float64)) - np.eye(3)[np.asarray(y)]
    np.testing.assert_allclose(emp.output_factor, g.T @ g / 20, rtol=1e-4, atol=1e-5)


def test_sampled_fisher_converges_to_exact():
    phi, y, W, b = make_problem(jax.random.key(1))
    exact = fit_laplace(phi, y, W, b).output_factor
    few = fit_laplace(phi, y, W, b, fisher="sampled", key=jax.random.key(2)).output_factor
    many = fit_laplace(
        phi, y, W, b, fisher="sampled", key=jax.random.key(2), num_fisher_samples=4000
    ).output_factor
    err_many = float(jnp.max(jnp.abs(many - exact)))
    assert err_many < 0.01, err_many
    assert err_many < float(jnp.max(jnp.abs(few - exact)))


def test_ggn_equals_hessian_of_summed_cross_entropy():
    phi, y, W, b = make_problem(jax.random.key(3))

    def loss(wb):
        w, bb = wb
        return jnp.sum(optax.softmax_cross_entropy_with_integer_labels(phi @ w + bb, y))

    (hww, hwb), (hbw, hbb) = jax.jit(jax.hessian(loss))((W, b))
    d, c = W.shape
    dense = np.block(
        [[np.asarray(hww).reshape(d * c, d * c), np.asarray(hwb).reshape(d * c, c)],
         [np.asarray(hbw).reshape(c, d * c), np.asarray(hbb)]]
    )
    post = fit_laplace(phi, y, W, b, method="ggn")
    np.testing.assert_allclose(post.ggn, dense, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(post.ggn, np_ggn(phi, W, b), rtol=1e-4, atol=1e-5)
    # Sampled / empirical curvature in the GGN: sum_n J^T (g g^T) J.
    emp = fit_laplace(phi, y, W, b, method="ggn", fisher="empirical")
    g = np_softmax(np.asarray(phi @ W + b, np.float64)) - np.eye(c)[np.asarray(y)]
    ref = sum(
        np.kron(np.outer(np.append(f, 1), np.append(f, 1)), np.outer(gi, gi))
        for f, gi in zip(np.asarray(phi, np.float64), g)
    )
    np.testing.assert_allclose(emp.ggn, ref, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------ 3-4. predictive


def test_kfac_predictive_covariance_matches_dense_kronecker():
    phi, y, W, b = make_problem(jax.random.key(4))
    post = fit_laplace(phi, y, W, b)
    A, G = np_kfac_factors(phi, W, b)
    for var0 in (0.5, 20.0):
        mean, cov = laplace_predictive_moments(post, phi[:5], prior_variance=var0)
        np.testing.assert_allclose(mean, phi[:5] @ W + b, rtol=1e-5, atol=1e-5)
        ref = np_kfac_cov(phi[:5], A, G, 20, var0)
        np.testing.assert_allclose(cov, ref, rtol=2e-3, atol=2e-4 * np.abs(ref).max())


def test_ggn_predictive_covariance_matches_dense_inverse():
    phi, y, W, b = make_problem(jax.random.key(5))
    post = fit_laplace(phi, y, W, b, method="ggn")
    H = np_ggn(phi, W, b)
    var0 = 2.0
    sigma = np.linalg.inv(H + np.eye(len(H)) / var0)
    phis = np.asarray(phi[:4], np.float64)
    jacobians = [np.kron(np.append(f, 1.0)[None], np.eye(3)) for f in phis]
    ref = np.stack([J @ sigma @ J.T for J in jacobians])
    _, cov = laplace_predictive_moments(post, phi[:4], prior_variance=var0)
    np.testing.assert_allclose(cov, ref, rtol=2e-3, atol=2e-4 * np.abs(ref).max())


@pytest.mark.parametrize("method", ["kfac", "ggn"])
def test_log_predictive_reproduces_documented_sampling_and_limits(method):
    phi, y, W, b = make_problem(jax.random.key(6))
    post = fit_laplace(phi, y, W, b, method=method)
    key = jax.random.key(7)
    lp = laplace_log_predictive(post, phi[:6], prior_variance=3.0, num_samples=50, key=key)
    np.testing.assert_allclose(jax.nn.logsumexp(lp, -1), 0.0, atol=1e-5)
    # NumPy recomputation with the documented draws: z_s = mean + L eps_s, L L^T = cov.
    mean, cov = laplace_predictive_moments(post, phi[:6], prior_variance=3.0)
    eps = np.stack([np.asarray(jax.random.normal(k, (6, 3))) for k in jax.random.split(key, 50)])
    mean, cov = np.asarray(mean, np.float64), np.asarray(cov, np.float64)
    if method == "kfac":
        vecs = np.asarray(post.output_eigvecs, np.float64)  # cov is diagonal in G's eigenbasis
        sd = np.sqrt(np.einsum("cj,ncf,fj->nj", vecs, cov, vecs))
        z = mean + np.einsum("snj,cj->snc", eps * sd, vecs)
    else:
        vals, vecs = np.linalg.eigh(cov)
        z = mean + np.einsum("snj,ncj->snc", eps * np.sqrt(np.maximum(vals, 0)), vecs)
    ref = np.log(np_softmax(z).mean(0))
    np.testing.assert_allclose(lp, ref, rtol=1e-3, atol=1e-3)
    # Prior variance -> 0 collapses the posterior onto the MAP.
    lp0 = laplace_log_predictive(post, phi[:6], prior_variance=1e-10, num_samples=3, key=key)
    np.testing.assert_allclose(lp0, jax.nn.log_softmax(phi[:6] @ W + b), atol=1e-3)


def test_mc_predictive_matches_dense_sampling_in_distribution():
    phi, y, W, b = make_problem(jax.random.key(8))
    post = fit_laplace(phi, y, W, b)
    A, G = np_kfac_factors(phi, W, b)
    cov = np_kfac_cov(phi[:4], A, G, 20, 10.0)
    mean = np.asarray(phi[:4] @ W + b, np.float64)
    rng = np.random.default_rng(0)
    ref = np.stack(
        [np_softmax(rng.multivariate_normal(m, c_, size=20000)).mean(0) for m, c_ in zip(mean, cov)]
    )
    lp = laplace_log_predictive(
        post, phi[:4], prior_variance=10.0, num_samples=4000, key=jax.random.key(9)
    )
    np.testing.assert_allclose(np.exp(lp), ref, atol=0.02)


def test_log_predictive_jit_vmap_and_saturation():
    phi, y, W, b = make_problem(jax.random.key(10))
    post = fit_laplace(phi, y, W, b)
    key = jax.random.key(11)
    eager = laplace_log_predictive(post, phi, prior_variance=5.0, num_samples=8, key=key)
    jitted = jax.jit(laplace_log_predictive, static_argnames="num_samples")(
        post, phi, prior_variance=5.0, num_samples=8, key=key
    )
    np.testing.assert_allclose(jitted, eager, rtol=1e-5, atol=1e-5)
    variances = jnp.array([1.0, 5.0])
    batched = jax.vmap(
        lambda v: laplace_log_predictive(post, phi, prior_variance=v, num_samples=8, key=key)
    )(variances)
    np.testing.assert_allclose(batched[1], eager, rtol=1e-5, atol=1e-5)
    # Huge logits: float32 softmax saturates at 1, the log-space average stays finite, and
    # larger-margin inputs still rank higher.
    big = jnp.stack([phi[0] * 1e4, phi[0] * 2e4])
    lp = laplace_log_predictive(post, big, prior_variance=1e-8, num_samples=4, key=key)
    assert np.all(np.isfinite(lp))
    score = logit_scaled_score(lp, jnp.argmax(lp, -1))
    assert np.all(np.isfinite(score)) and score[1] > score[0]


# ------------------------------------------------------------------ 5. prior selection


def test_select_prior_variance_matches_numpy_objective():
    phi, y, W, b = make_problem(jax.random.key(12))
    post = fit_laplace(phi, y, W, b)
    val, yval = phi[:10], y[:10]
    noise = jax.random.normal(jax.random.key(13), (8, 3)) * 3.0
    grid = np.array([0.3, 2.0, 50.0])
    key = jax.random.key(14)
    best, obj = select_prior_variance(post, val, yval, noise, grid=grid, num_samples=5, key=key)
    assert obj.shape == (3,) and best in grid and best == grid[int(np.argmin(obj))]
    key_val, key_noise = jax.random.split(key)
    vecs = np.asarray(post.output_eigvecs, np.float64)
    A, G = np_kfac_factors(phi, W, b)

    def np_log_pred(feats, var0, k):
        mean = np.asarray(feats @ W + b, np.float64)
        cov = np_kfac_cov(feats, A, G, 20, var0)
        sd = np.sqrt(np.einsum("cj,ncf,fj->nj", vecs, cov, vecs))
        keys = jax.random.split(k, 5)
        eps = np.stack([np.asarray(jax.random.normal(kk, mean.shape)) for kk in keys])
        z = mean + np.einsum("snj,cj->snc", eps * sd, vecs)
        return np.log(np_softmax(z).mean(0))

    for i in (0, 2):
        lv = np_log_pred(val, grid[i], key_val)
        ln = np_log_pred(noise, grid[i], key_noise)
        ref = -lv[np.arange(10), np.asarray(yval)].mean() + 0.25 * (-ln).mean()
        np.testing.assert_allclose(obj[i], ref, rtol=1e-3)
    assert len(DEFAULT_PRIOR_GRID) == 100 and DEFAULT_PRIOR_GRID[0] == 1.0


# ------------------------------------------------------------------ toy end to end


def _blobs(key, centers, n):
    k1, k2 = jax.random.split(key)
    y = jax.random.randint(k1, (n,), 0, centers.shape[0])
    return centers[y] + jax.random.normal(k2, (n, centers.shape[1])), y


def test_toy_end_to_end_laplace_lowers_scaled_fpr():
    num_classes, n = 10, 200
    keys = jax.random.split(jax.random.key(0), 7)
    centers = jax.random.normal(keys[0], (num_classes, 5)) * 1.5
    x_tr, y_tr = _blobs(keys[1], centers, n)
    x_val, y_val = _blobs(keys[2], centers, n)
    x_out, _ = _blobs(keys[3], centers, n)  # held-out non-members for the attack
    x_noise = jax.random.uniform(keys[4], (n, 5), minval=-5.0, maxval=5.0)
    model = get_model("fc", num_classes, hidden_sizes=(256, 256), activation=nn.relu)
    variables = model.init(keys[5], x_tr[:1], train=False)
    opt = optax.adam(1e-2)

    def loss(v):
        logits = model.apply(v, x_tr, train=False)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y_tr).mean()

    @jax.jit
    def train(v):
        def body(_, carry):
            v, s = carry
            updates, s = opt.update(jax.grad(loss)(v), s)
            return optax.apply_updates(v, updates), s

        return jax.lax.fori_loop(0, 400, body, (v, opt.init(v)))[0]

    variables = train(variables)
    assert float(loss(variables)) < 0.01  # Overfit: members are fit perfectly.

    def max_score(log_probs):  # logit of the max probability, computed in log space
        return np.asarray(logit_scaled_score(log_probs, jnp.argmax(log_probs, -1)))

    def scaled_fpr(log_prob_fn):
        members, non_members = max_score(log_prob_fn(x_tr)), max_score(log_prob_fn(x_out))
        t = youden_threshold(np.r_[members, non_members], np.r_[np.ones(n), np.zeros(n)])
        return float(np.mean(max_score(log_prob_fn(x_out * 1e3)) >= t))

    fpr_map = scaled_fpr(lambda x: jax.nn.log_softmax(model.apply(variables, x, train=False)))
    la = fit_last_layer_laplace(
        model, variables, x_tr, y_tr, x_val=x_val, y_val=y_val, x_noise=x_noise, key=keys[6]
    )
    assert isinstance(la, LastLayerLaplace) and la.layer == ("classifier",)
    assert la.prior_variance in DEFAULT_PRIOR_GRID
    fpr_la = scaled_fpr(lambda x: la.log_predictive(x, key=jax.random.key(99)))
    assert fpr_map >= 0.9, fpr_map
    assert fpr_la <= fpr_map - 0.3, (fpr_map, fpr_la)


# ------------------------------------------------------------------ validation


def test_validation_errors():
    phi, y, W, b = make_problem(jax.random.key(20))
    post = fit_laplace(phi, y, W, b)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="method must be one of"):
        fit_laplace(phi, y, W, b, method="diag")
    with pytest.raises(ValueError, match="fisher must be one of"):
        fit_laplace(phi, y, W, b, fisher="true")
    with pytest.raises(ValueError, match="key \\(required for fisher='sampled'\\)"):
        fit_laplace(phi, y, W, b, fisher="sampled")
    with pytest.raises(ValueError, match="num_fisher_samples"):
        fit_laplace(phi, y, W, b, fisher="sampled", key=key, num_fisher_samples=0)
    with pytest.raises(ValueError, match="kernel must have shape"):
        fit_laplace(phi, y, W[:2], b)
    with pytest.raises(ValueError, match="bias must have shape"):
        fit_laplace(phi, y, W, b[:2])
    with pytest.raises(ValueError, match="labels must have shape"):
        fit_laplace(phi, y[:3], W, b)
    with pytest.raises(ValueError, match="labels must be in"):
        fit_laplace(phi, y.at[0].set(3), W, b)
    with pytest.raises(ValueError, match="features must be 2-D"):
        fit_laplace(phi[0], y, W, b)
    with pytest.raises(ValueError, match="features must be finite"):
        fit_laplace(phi.at[0, 0].set(jnp.nan), y, W, b)
    with pytest.raises(ValueError, match="kernel.shape\\[1\\]"):
        fit_laplace(phi, y, W[:, :1], b[:1])
    d_big = GGN_MAX_PARAMS // 3
    with pytest.raises(ValueError, match="GGN_MAX_PARAMS"):
        fit_laplace(
            jnp.zeros((1, d_big)), jnp.zeros(1, jnp.int32), jnp.zeros((d_big, 3)), b, method="ggn"
        )
    with pytest.raises(ValueError, match="prior_variance must be in \\(0, inf\\)"):
        laplace_log_predictive(post, phi, prior_variance=-1.0, key=key)
    with pytest.raises(ValueError, match="prior_variance must be in \\(0, inf\\)"):
        laplace_predictive_moments(post, phi, prior_variance=0.0)
    with pytest.raises(ValueError, match="prior_variance must be a scalar"):
        laplace_log_predictive(post, phi, prior_variance=jnp.ones(2), key=key)
    with pytest.raises(ValueError, match="num_samples must be an integer >= 1"):
        laplace_log_predictive(post, phi, prior_variance=1.0, num_samples=0, key=key)
    with pytest.raises(ValueError, match="key must be a jax.random key"):
        laplace_log_predictive(post, phi, prior_variance=1.0, key=None)
    with pytest.raises(ValueError, match="features must have shape \\[N, D\\] with D=3"):
        laplace_log_predictive(post, phi[:, :2], prior_variance=1.0, key=key)
    with pytest.raises(ValueError, match="posterior must be a LaplacePosterior"):
        laplace_log_predictive((W, b), phi, prior_variance=1.0, key=key)
    with pytest.raises(ValueError, match="val_labels must have shape"):
        select_prior_variance(post, phi, y[:3], phi, key=key)
    with pytest.raises(ValueError, match="val_labels must be in"):
        select_prior_variance(post, phi, y.at[0].set(5), phi, key=key)
    with pytest.raises(ValueError, match="noise_features must have shape"):
        select_prior_variance(post, phi, y, phi[:, :1], key=key)
    with pytest.raises(ValueError, match="noise_features must contain at least 1"):
        select_prior_variance(post, phi, y, phi[:0], key=key)
    with pytest.raises(ValueError, match="grid must be in \\(0, inf\\)"):
        select_prior_variance(post, phi, y, phi, grid=[1.0, -2.0], key=key)
    with pytest.raises(ValueError, match="grid must contain at least 1"):
        select_prior_variance(post, phi, y, phi, grid=[], key=key)
    with pytest.raises(ValueError, match="ood_weight must be in"):
        select_prior_variance(post, phi, y, phi, ood_weight=-0.1, key=key)
    with pytest.raises(ValueError, match="num_samples must be an integer >= 1"):
        select_prior_variance(post, phi, y, phi, num_samples=0, key=key)
    with pytest.raises(ValueError, match="key must be a jax.random key"):
        select_prior_variance(post, phi, y, phi, key=None)
    model = get_model("fc", 3, hidden_sizes=(4,))
    v = model.init(key, jnp.ones((1, 2)), train=False)
    x, y4 = jnp.ones((4, 2)), jnp.zeros(4, jnp.int32)
    with pytest.raises(ValueError, match="key must be a jax.random key"):
        fit_last_layer_laplace(model, v, x, y4, x_val=x, y_val=y4, x_noise=x, key=None)
    with pytest.raises(ValueError, match="x_val must contain at least 1"):
        fit_last_layer_laplace(model, v, x, y4, x_val=x[:0], y_val=y4[:0], x_noise=x, key=key)
    with pytest.raises(ValueError, match="x_noise must have at least 2 dimension"):
        fit_last_layer_laplace(model, v, x, y4, x_val=x, y_val=y4, x_noise=x[0], key=key)
    assert isinstance(post, LaplacePosterior)
