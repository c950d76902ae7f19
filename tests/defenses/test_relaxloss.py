"""Tests for hampjax.defenses.relaxloss against NumPy (float64) and batch-level JAX references."""

from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hampjax.defenses.relaxloss import (
    RELAXLOSS_ASCENT,
    RELAXLOSS_DESCENT,
    RELAXLOSS_FLATTEN,
    relaxloss_branch,
    relaxloss_loss,
)

B, C = 12, 5


def _batch(seed: int = 0, b: int = B, c: int = C):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, size=b)
    logits = rng.normal(size=(b, c)) * 1.5
    # Make about half the batch confidently correct so the CIFAR "correct" mask is mixed.
    boost = np.where(rng.random(b) < 0.5, 4.0, 0.0)
    logits[np.arange(b), labels] += boost
    return logits.astype(np.float32), labels.astype(np.int32)


# ---------------------------------------------------------------------------------------------
# References.


def _np_parts(logits, labels, upper, variant):
    z = np.asarray(logits, np.float64)
    logp = z - z.max(-1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
    p = np.exp(logp)
    rows = np.arange(len(labels))
    ce = -logp[rows, labels]
    u = np.clip(p[rows, labels], 0.0, upper)
    t = np.repeat(((1.0 - u) / (z.shape[-1] - 1))[:, None], z.shape[-1], axis=1)
    t[rows, labels] = u
    soft = -(t * logp).sum(-1)
    if variant == "tabular":
        flat = soft
    else:
        correct = (z.argmax(-1) == labels).astype(np.float64)
        # "cifar": the authors' code averages the soft CE over the batch first (one scalar).
        flat = (1.0 - correct) * (soft.mean() if variant == "cifar" else soft) - ce
    return ce, flat


def np_relaxloss_objective(logits, labels, alpha, epoch, upper, variant, schedule, valid=None):
    """The RelaxLoss batch objective (a scalar), written directly from the spec."""
    if valid is None:
        valid = np.ones(len(labels), bool)
    ce, flat = _np_parts(np.asarray(logits)[valid], np.asarray(labels)[valid], upper, variant)
    m = ce.mean()
    if schedule == "code":
        if epoch % 2 == 0:
            return abs(m - alpha)
        return m if m > alpha else flat.mean()
    if m >= alpha:
        return m
    return -m if epoch % 2 == 0 else flat.mean()


def np_relaxloss_terms(logits, labels, alpha, epoch, upper, variant, schedule):
    """Per-example terms of the documented decomposition (no mask)."""
    ce, flat = _np_parts(logits, labels, upper, variant)
    m = ce.mean()
    even = epoch % 2 == 0
    if schedule == "code":
        if even:
            return np.sign(m - alpha) * (ce - alpha)
        return ce if m > alpha else flat
    if m >= alpha:
        return ce
    return -ce if even else flat


def _branch_np(logits, labels, alpha, epoch, schedule, valid=None):
    if valid is None:
        valid = np.ones(len(labels), bool)
    ce, _ = _np_parts(np.asarray(logits)[valid], np.asarray(labels)[valid], 1.0, "tabular")
    m, even = ce.mean(), epoch % 2 == 0
    if schedule == "code":
        if even:
            return "ascent" if m < alpha else "descent"
        return "descent" if m > alpha else "flatten"
    if m >= alpha:
        return "descent"
    return "ascent" if even else "flatten"


def jax_ref_objective(logits, labels, alpha, branch, upper, variant, stop_gradient, abs_form,
                      valid=None):
    """Obviously correct batch-level JAX objective with the branch decided outside."""
    if valid is not None:
        logits, labels = logits[valid], labels[valid]
    logp = jax.nn.log_softmax(logits)
    p = jax.nn.softmax(logits)
    rows = jnp.arange(labels.shape[0])
    mean_ce = -jnp.mean(logp[rows, labels])
    if branch == "descent":
        return jnp.abs(mean_ce - alpha) if abs_form else mean_ce
    if branch == "ascent":
        return jnp.abs(mean_ce - alpha) if abs_form else -mean_ce
    u = jnp.clip(p[rows, labels], 0.0, upper)
    t = jnp.tile(((1.0 - u) / (logits.shape[-1] - 1))[:, None], (1, logits.shape[-1]))
    t = t.at[rows, labels].set(u)
    if stop_gradient:
        t = jax.lax.stop_gradient(t)
    soft = -jnp.sum(t * logp, axis=-1)
    if variant == "tabular":
        return jnp.mean(soft)
    correct = (jnp.argmax(logits, -1) == labels).astype(logits.dtype)
    if variant == "cifar":
        soft = jnp.mean(soft)
    return jnp.mean((1.0 - correct) * soft + logp[rows, labels])


def _alpha_for(logits, labels, side):
    ce, _ = _np_parts(logits, labels, 1.0, "tabular")
    m = ce.mean()
    return float(m * 0.5) if side == "above" else float(m * 2.0)


# ---------------------------------------------------------------------------------------------
# Values and gradients.


@pytest.mark.parametrize("schedule", ["code", "paper"])
@pytest.mark.parametrize("variant", ["tabular", "cifar", "cifar_per_example"])
@pytest.mark.parametrize("epoch", [0, 1, 2, 3])
@pytest.mark.parametrize("side", ["above", "below"])  # mean_CE above or below alpha
@pytest.mark.parametrize("stop_gradient", [False, True])
def test_value_and_gradient_match_references(schedule, variant, epoch, side, stop_gradient):
    logits, labels = _batch(seed=epoch + 10 * (side == "below"))
    alpha = _alpha_for(logits, labels, side)
    upper = 0.3 if variant == "tabular" else 1.0
    kw = dict(alpha=alpha, epoch=epoch, upper=upper, variant=variant, schedule=schedule,
              stop_gradient=stop_gradient)
    terms = relaxloss_loss(jnp.asarray(logits), jnp.asarray(labels), **kw)
    assert terms.shape == (B,) and terms.dtype == jnp.float32

    want_terms = np_relaxloss_terms(logits, labels, alpha, epoch, upper, variant, schedule)
    want_obj = np_relaxloss_objective(logits, labels, alpha, epoch, upper, variant, schedule)
    np.testing.assert_allclose(np.asarray(terms), want_terms, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(float(terms.mean()), want_obj, rtol=1e-5, atol=1e-6)

    branch = _branch_np(logits, labels, alpha, epoch, schedule)
    abs_form = schedule == "code" and epoch % 2 == 0
    got_grad = jax.grad(lambda z: relaxloss_loss(z, jnp.asarray(labels), **kw).mean())(
        jnp.asarray(logits))
    want_grad = jax.grad(
        lambda z: jax_ref_objective(z, jnp.asarray(labels), alpha, branch, upper, variant,
                                    stop_gradient, abs_form))(jnp.asarray(logits))
    assert np.all(np.isfinite(np.asarray(got_grad)))
    np.testing.assert_allclose(np.asarray(got_grad), np.asarray(want_grad), rtol=1e-4, atol=1e-6)


def test_branches_exercised_and_reported():
    logits, labels = _batch(seed=3)
    lo, hi = _alpha_for(logits, labels, "above"), _alpha_for(logits, labels, "below")
    table = {
        # (schedule, epoch, alpha): expected branch
        ("code", 0, lo): RELAXLOSS_DESCENT,
        ("code", 0, hi): RELAXLOSS_ASCENT,
        ("code", 1, lo): RELAXLOSS_DESCENT,
        ("code", 1, hi): RELAXLOSS_FLATTEN,
        ("paper", 0, lo): RELAXLOSS_DESCENT,
        ("paper", 0, hi): RELAXLOSS_ASCENT,
        ("paper", 1, lo): RELAXLOSS_DESCENT,
        ("paper", 1, hi): RELAXLOSS_FLATTEN,
        ("paper", 7, hi): RELAXLOSS_FLATTEN,
        ("code", 8, hi): RELAXLOSS_ASCENT,
    }
    for (schedule, epoch, alpha), want in table.items():
        got = relaxloss_branch(logits, labels, alpha=alpha, epoch=epoch, schedule=schedule)
        assert got.dtype == jnp.int32 and got.shape == ()
        assert int(got) == want, (schedule, epoch, alpha)


def test_hand_computed_values():
    logits = jnp.zeros((4, 10))  # CE = ln 10 for every example; p_y = 0.1
    labels = jnp.array([0, 3, 5, 9])
    ln10 = math.log(10.0)
    f = lambda **kw: np.asarray(relaxloss_loss(logits, labels, **kw))  # noqa: E731
    np.testing.assert_allclose(f(alpha=1.0, epoch=0), ln10 - 1.0, rtol=1e-6)
    np.testing.assert_allclose(f(alpha=1.0, epoch=1), ln10, rtol=1e-6)
    np.testing.assert_allclose(f(alpha=3.0, epoch=0), 3.0 - ln10, rtol=1e-6)
    np.testing.assert_allclose(f(alpha=3.0, epoch=1), ln10, rtol=1e-6)  # uniform soft label
    np.testing.assert_allclose(f(alpha=3.0, epoch=0, schedule="paper"), -ln10, rtol=1e-6)
    # CIFAR flattening; argmax of all-zero logits is class 0, so only example 0 is "correct".
    got = f(alpha=3.0, epoch=1, variant="cifar")
    np.testing.assert_allclose(got, [-ln10, 0.0, 0.0, 0.0], atol=1e-6)
    # Tie at alpha == mean_CE in an odd epoch: the code flattens, the paper descends.
    assert int(relaxloss_branch(logits, labels, alpha=ln10, epoch=1)) in (
        RELAXLOSS_FLATTEN, RELAXLOSS_DESCENT)  # float rounding decides which side
    assert int(relaxloss_branch(logits, labels, alpha=0.0, epoch=1, schedule="paper")) == 0


def test_stop_gradient_flag_changes_gradient_as_specified():
    logits, labels = _batch(seed=5)
    alpha = _alpha_for(logits, labels, "below")
    z, y = jnp.asarray(logits), jnp.asarray(labels)
    grads = {}
    for sg in (False, True):
        got = jax.grad(lambda z: relaxloss_loss(z, y, alpha=alpha, epoch=1, upper=0.6,
                                                stop_gradient=sg).mean())(z)
        want = jax.grad(lambda z: jax_ref_objective(z, y, alpha, "flatten", 0.6, "tabular",
                                                    sg, False))(z)
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-6)
        grads[sg] = np.asarray(got)
    assert np.abs(grads[True] - grads[False]).max() > 1e-2
    # The flag is irrelevant outside the flattening branch.
    g = [jax.grad(lambda z: relaxloss_loss(z, y, alpha=alpha, epoch=0, stop_gradient=sg).mean())(z)
         for sg in (False, True)]
    np.testing.assert_array_equal(np.asarray(g[0]), np.asarray(g[1]))


# ---------------------------------------------------------------------------------------------
# Masking.


@pytest.mark.parametrize("epoch", [0, 1])
@pytest.mark.parametrize("side", ["above", "below"])
@pytest.mark.parametrize("variant", ["tabular", "cifar", "cifar_per_example"])
def test_masked_rows_contribute_nothing(epoch, side, variant):
    logits, labels = _batch(seed=7)
    valid = np.ones(B, bool)
    valid[[2, 5, 11]] = False
    alpha = _alpha_for(logits[valid], labels[valid], side)
    kw = dict(alpha=alpha, epoch=epoch, variant=variant, where=jnp.asarray(valid))

    def total(z):
        loss = relaxloss_loss(z, jnp.asarray(labels), **kw)
        return jnp.sum(loss) / jnp.sum(kw["where"])

    loss = relaxloss_loss(jnp.asarray(logits), jnp.asarray(labels), **kw)
    grad = jax.grad(total)(jnp.asarray(logits))
    assert np.all(np.asarray(loss)[~valid] == 0.0)
    assert np.all(np.asarray(grad)[~valid] == 0.0)

    # Changing padding logits (even to huge or NaN values) changes neither loss nor gradient.
    other = logits.copy()
    other[~valid] = [[1e4, -1e4, np.nan, 0.0, 3.0]] * 3
    loss2 = relaxloss_loss(jnp.asarray(other), jnp.asarray(labels), **kw)
    grad2 = jax.grad(total)(jnp.asarray(other))
    np.testing.assert_array_equal(np.asarray(loss), np.asarray(loss2))
    np.testing.assert_array_equal(np.asarray(grad), np.asarray(grad2))

    # The masked objective equals the unmasked objective on the valid rows only.
    want = np_relaxloss_objective(logits, labels, alpha, epoch, 1.0, variant, "code", valid)
    np.testing.assert_allclose(float(total(jnp.asarray(logits))), want, rtol=1e-5, atol=1e-6)
    sub = relaxloss_loss(jnp.asarray(logits[valid]), jnp.asarray(labels[valid]),
                         alpha=alpha, epoch=epoch, variant=variant)
    np.testing.assert_allclose(np.asarray(loss)[valid], np.asarray(sub), rtol=1e-6, atol=1e-6)
    branch = _branch_np(logits, labels, alpha, epoch, "code", valid)
    want_grad = jax.grad(lambda z: jax_ref_objective(
        z, jnp.asarray(labels), alpha, branch, 1.0, variant, False, epoch % 2 == 0,
        valid=valid))(jnp.asarray(logits))
    np.testing.assert_allclose(np.asarray(grad), np.asarray(want_grad), rtol=1e-4, atol=1e-6)
    assert int(relaxloss_branch(other, labels, alpha=alpha, epoch=epoch, where=valid)) == int(
        relaxloss_branch(logits[valid], labels[valid], alpha=alpha, epoch=epoch))


@pytest.mark.parametrize("pad_logit", [0.0, 20.0])
def test_masked_rows_do_not_affect_branch_decision(pad_logit):
    # Valid rows are fitted (mean CE ~ 0.01); padding rows are not. alpha = 0.2 lies between the
    # valid-row mean and any mean that would let the padding rows in.
    labels = np.arange(B) % C
    logits = np.where(np.eye(C)[labels] > 0, 6.0, 0.0).astype(np.float32)
    valid = np.arange(B) < B - 4
    logits[~valid] = 0.0
    logits[~valid, (labels[~valid] + 1) % C] = pad_logit  # wrong and confident, or uniform
    for epoch, want in [(0, RELAXLOSS_ASCENT), (1, RELAXLOSS_FLATTEN)]:
        got = relaxloss_branch(logits, labels, alpha=0.2, epoch=epoch, where=valid)
        assert int(got) == want
        loss = relaxloss_loss(logits, labels, alpha=0.2, epoch=epoch, where=valid)
        want_obj = np_relaxloss_objective(logits, labels, 0.2, epoch, 1.0, "tabular", "code",
                                          valid)
        np.testing.assert_allclose(float(loss.sum() / valid.sum()), want_obj, rtol=1e-5)
        assert int(relaxloss_branch(logits, labels, alpha=0.2, epoch=epoch)) == RELAXLOSS_DESCENT


def test_all_rows_masked_gives_zeros():
    logits, labels = _batch(seed=8)
    where = jnp.zeros(B, bool)
    loss = relaxloss_loss(logits, labels, alpha=1.0, epoch=1, where=where)
    grad = jax.grad(lambda z: relaxloss_loss(z, labels, alpha=1.0, epoch=1, where=where).sum())(
        jnp.asarray(logits))
    assert np.all(np.asarray(loss) == 0.0) and np.all(np.asarray(grad) == 0.0)


# ---------------------------------------------------------------------------------------------
# jit / vmap / tracing.


def test_jit_equals_eager():
    logits, labels = _batch(seed=9)
    where = jnp.asarray(np.arange(B) < B - 2)
    for epoch, alpha in [(0, 0.3), (1, 0.3), (1, 5.0), (2, 5.0)]:
        kw = dict(variant="cifar", upper=0.5, where=where)
        eager = relaxloss_loss(logits, labels, alpha=alpha, epoch=epoch, **kw)
        jitted = jax.jit(lambda z, y, a, e: relaxloss_loss(z, y, alpha=a, epoch=e, **kw))(
            logits, labels, alpha, epoch)
        np.testing.assert_allclose(np.asarray(eager), np.asarray(jitted), rtol=1e-6, atol=1e-6)


def test_vmap_over_model_axis_equals_loop():
    m = 4
    batches = [_batch(seed=20 + i) for i in range(m)]
    logits = np.stack([b[0] for b in batches])
    labels = np.stack([b[1] for b in batches])
    alphas = np.array([0.2, 5.0, 0.2, 5.0], np.float32)
    epochs = np.array([0, 1, 1, 2], np.int32)
    where = np.ones((m, B), bool)
    where[1, :3] = False

    def per_model(z, y, a, e, w):
        loss = relaxloss_loss(z, y, alpha=a, epoch=e, where=w, stop_gradient=True)
        return loss, relaxloss_branch(z, y, alpha=a, epoch=e, where=w)

    vl, vb = jax.jit(jax.vmap(per_model))(logits, labels, alphas, epochs, where)
    grads = jax.vmap(jax.grad(lambda z, y, a, e, w: per_model(z, y, a, e, w)[0].sum()))(
        logits, labels, alphas, epochs, where)
    for i in range(m):
        l_i, b_i = per_model(logits[i], labels[i], alphas[i], int(epochs[i]), where[i])
        g_i = jax.grad(lambda z: per_model(z, labels[i], alphas[i], int(epochs[i]),
                                           where[i])[0].sum())(jnp.asarray(logits[i]))
        np.testing.assert_allclose(np.asarray(vl[i]), np.asarray(l_i), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(np.asarray(grads[i]), np.asarray(g_i), rtol=1e-6, atol=1e-7)
        assert int(vb[i]) == int(b_i)
    assert sorted(set(np.asarray(vb).tolist())) == [0, 1, 2]


def test_traced_epoch_no_retrace():
    logits, labels = _batch(seed=30)
    alpha = _alpha_for(logits, labels, "below")

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(z, y, epoch):
        loss = relaxloss_loss(z, y, alpha=alpha, epoch=epoch)
        return loss.mean(), relaxloss_branch(z, y, alpha=alpha, epoch=epoch)

    for epoch in range(6):
        value, branch = step(logits, labels, jnp.int32(epoch))
        want = np_relaxloss_objective(logits, labels, alpha, epoch, 1.0, "tabular", "code")
        np.testing.assert_allclose(float(value), want, rtol=1e-5, atol=1e-6)
        assert int(branch) == (RELAXLOSS_ASCENT if epoch % 2 == 0 else RELAXLOSS_FLATTEN)
    chex.clear_trace_counter()


def test_leading_axes_form_one_batch():
    logits, labels = _batch(seed=31)
    flat = relaxloss_loss(logits, labels, alpha=0.5, epoch=1)
    nested = relaxloss_loss(logits.reshape(3, 4, C), labels.reshape(3, 4), alpha=0.5, epoch=1)
    np.testing.assert_allclose(np.asarray(nested).reshape(-1), np.asarray(flat), rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# Validation.

_Z, _Y = _batch(seed=40)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(alpha=-0.1), r"alpha must be in \[0, inf\)"),
        (dict(alpha=float("nan")), r"alpha must be in \[0, inf\)"),
        (dict(alpha=np.array([1.0, 2.0])), r"alpha must be a scalar"),
        (dict(upper=0.0), r"upper must be in \(0, 1\]"),
        (dict(upper=1.5), r"upper must be in \(0, 1\]"),
        (dict(variant="image"), r"variant must be one of 'tabular', 'cifar'"),
        (dict(schedule="poster"), r"schedule must be one of 'code', 'paper'"),
        (dict(epoch=-1), r"epoch must be an integer scalar >= 0"),
        (dict(epoch=1.0), r"epoch must be an integer scalar >= 0"),
        (dict(epoch=True), r"epoch must be an integer scalar >= 0"),
        (dict(epoch=np.array([1, 2])), r"epoch must be an integer scalar >= 0"),
        (dict(stop_gradient=1), r"stop_gradient must be a bool"),
        (dict(where=np.ones(B - 1, bool)), r"where must be a boolean mask of shape \(12,\)"),
        (dict(where=np.ones(B, np.int32)), r"where must be a boolean mask .* dtype int32"),
        (dict(labels=np.full(B, C)), r"labels must be in \[0, 5\), got 5"),
        (dict(labels=np.full(B, -1)), r"labels must be in \[0, 5\), got -1"),
        (dict(labels=np.zeros(B, np.float32)), r"labels must be integer class indices"),
        (dict(labels=np.zeros(B - 1, np.int32)), r"labels must have shape logits.shape\[:-1\]"),
        (dict(logits=np.zeros(C, np.float32), labels=np.int32(0)),
         r"logits must have at least 2 dimension"),
        (dict(logits=np.zeros((B, 1), np.float32)), r"logits.shape\[-1\] must be an integer >= 2"),
    ],
)
def test_validation_errors(kwargs, match):
    args = dict(logits=_Z, labels=_Y, alpha=1.0, epoch=0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        relaxloss_loss(args.pop("logits"), args.pop("labels"), **args)
    if not ({"upper", "variant", "stop_gradient"} & set(kwargs)):
        args = dict(logits=_Z, labels=_Y, alpha=1.0, epoch=0)
        args.update(kwargs)
        with pytest.raises(ValueError, match=match):
            relaxloss_branch(args.pop("logits"), args.pop("labels"), **args)


def test_traced_arguments_skip_value_checks_but_keep_shape_checks():
    # alpha and epoch traced: value checks are skipped, shape/dtype checks still run.
    out = jax.jit(lambda a, e: relaxloss_loss(_Z, _Y, alpha=a, epoch=e))(1.0, 3)
    assert out.shape == (B,)
    with pytest.raises(ValueError, match="epoch must be an integer scalar"):
        jax.jit(lambda e: relaxloss_loss(_Z, _Y, alpha=1.0, epoch=e))(1.0)


# ---------------------------------------------------------------------------------------------
# CIFAR flattening as the authors' code computes it (batch-mean soft-label term).


def _cifar_code_objective(z, y, upper, valid):
    """``mean_i[(1 - correct_i) * S - CE_i]`` over valid rows, ``S = mean_j CE(t_j, p_j)``."""
    z, y = z[valid], y[valid]
    logp = jax.nn.log_softmax(z)
    rows = jnp.arange(y.shape[0])
    ce = -logp[rows, y]
    u = jnp.clip(jnp.exp(logp[rows, y]), 0.0, upper)
    t = jnp.full(z.shape, 1.0) * ((1.0 - u) / (z.shape[-1] - 1))[:, None]
    t = t.at[rows, y].set(u)
    s = jnp.mean(-jnp.sum(t * logp, axis=-1))  # one scalar for the whole batch
    correct = (jnp.argmax(z, -1) == y).astype(z.dtype)
    return jnp.mean((1.0 - correct) * s - ce)


@pytest.mark.parametrize("upper", [1.0, 0.5])
def test_cifar_flattening_matches_code_formula_with_padding(upper):
    logits, labels = _batch(seed=31)
    valid = np.arange(B) < B - 3
    padded = logits.copy()
    padded[~valid] = np.nan  # padding rows may hold anything
    alpha = 10.0  # far above mean_CE: odd epochs flatten
    z, y, w = jnp.asarray(padded), jnp.asarray(labels), jnp.asarray(valid)

    def objective(z):
        loss = relaxloss_loss(z, y, alpha=alpha, epoch=1, upper=upper, variant="cifar", where=w)
        return jnp.sum(loss) / jnp.sum(w)

    assert int(relaxloss_branch(z, y, alpha=alpha, epoch=1, where=w)) == RELAXLOSS_FLATTEN
    zv = jnp.asarray(logits)
    want_value = _cifar_code_objective(zv, y, upper, valid)
    want_grad = jax.grad(lambda z: _cifar_code_objective(z, y, upper, valid))(zv)
    got_value, got_grad = jax.value_and_grad(objective)(z)
    np.testing.assert_allclose(float(got_value), float(want_value), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.asarray(got_grad)[valid], np.asarray(want_grad)[valid], rtol=1e-5, atol=1e-6)
    assert np.all(np.asarray(got_grad)[~valid] == 0.0)
    # The per-example reading is a different objective (and gradient) on a mixed batch.
    per_example = jax.grad(lambda z: jnp.sum(relaxloss_loss(
        z, y, alpha=alpha, epoch=1, upper=upper, variant="cifar_per_example", where=w)) / jnp.sum(w))(z)
    assert not np.allclose(np.asarray(per_example)[valid], np.asarray(want_grad)[valid], atol=1e-4)


def test_cifar_flattening_scales_with_fraction_misclassified():
    # Soft-CE part of one misclassified example's gradient is scaled by the misclassified
    # fraction of the batch: its gradient equals (fraction) * grad S_i/B-term + ascent term.
    logits, labels = _batch(seed=32)
    z, y = jnp.asarray(logits), jnp.asarray(labels)
    correct = np.asarray(jnp.argmax(z, -1) == y)
    assert 0 < correct.sum() < B
    got = jax.grad(lambda z: relaxloss_loss(z, y, alpha=10.0, epoch=1, variant="cifar").mean())(z)
    per_soft = jax.grad(lambda z: relaxloss_loss(z, y, alpha=10.0, epoch=1, variant="tabular").mean())(z)
    ascent = jax.grad(lambda z: -jnp.mean(-jax.nn.log_softmax(z)[jnp.arange(B), y]))(z)
    frac = 1.0 - correct.mean()
    np.testing.assert_allclose(np.asarray(got), frac * np.asarray(per_soft) + np.asarray(ascent),
                               rtol=1e-5, atol=1e-6)
