"""Label smoothing in both styles and the distillation loss against NumPy references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hampjax.defenses import (
    distillation_kl,
    distillation_loss,
    hamp_loss,
    label_smoothing_loss,
    smoothed_labels,
)

C = 5


def np_log_softmax(z):
    z = np.asarray(z, np.float64)
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


@pytest.fixture
def batch():
    logits = 3.0 * jax.random.normal(jax.random.key(0), (9, C))
    teacher = 4.0 * jax.random.normal(jax.random.key(1), (9, C))
    labels = jax.random.randint(jax.random.key(2), (9,), 0, C)
    return logits, teacher, labels


def np_targets(labels, eps, style):
    one_hot = np.eye(C)[np.asarray(labels)]
    if style == "standard":
        return (1 - eps) * one_hot + eps / C
    return (1 - eps) * one_hot + eps / (C - 1) * (1 - one_hot)


@pytest.mark.parametrize("style", ["standard", "hamp"])
def test_label_smoothing_styles(batch, style):
    logits, _, labels = batch
    epsilons = [0.0, 0.09, 0.5]
    # jit and vmap (over a leading axis of eps values) agree with the references.
    mapped = jax.jit(jax.vmap(lambda e: label_smoothing_loss(logits, labels, e, style=style)))(
        jnp.asarray(epsilons))
    for i, eps in enumerate(epsilons):
        target = np_targets(labels, eps, style)
        np.testing.assert_allclose(smoothed_labels(labels, C, eps, style=style), target,
                                   rtol=1e-6)
        want = -(target * np_log_softmax(logits)).sum(-1)
        np.testing.assert_allclose(label_smoothing_loss(logits, labels, eps, style=style), want,
                                   rtol=1e-5)
        np.testing.assert_allclose(mapped[i], want, rtol=1e-5)


def test_hamp_style_has_the_gradients_of_the_authors_kl(batch):
    # The HAMP code minimizes KL(target || p); the cross-entropy differs by a constant.
    logits, _, labels = batch
    target = jnp.asarray(np_targets(labels, 0.03, "hamp"), jnp.float32)
    ce = jax.grad(lambda z: label_smoothing_loss(z, labels, 0.03, style="hamp").sum())(logits)
    kl = jax.grad(lambda z: hamp_loss(z, target, 0.0).sum())(logits)
    np.testing.assert_allclose(ce, kl, rtol=1e-5, atol=1e-6)


def test_label_smoothing_validation(batch):
    logits, _, labels = batch
    with pytest.raises(ValueError, match="style must be one of"):
        label_smoothing_loss(logits, labels, 0.1, style="other")
    with pytest.raises(ValueError, match="smoothing must be in"):
        smoothed_labels(labels, C, 1.0, style="hamp")


def np_distillation(logits, teacher, labels, t, w, mean):
    log_p = np_log_softmax(np.asarray(logits) / t)
    log_q = np_log_softmax(np.asarray(teacher) / t)
    kl = (np.exp(log_q) * (log_q - log_p)).sum(-1) / (C if mean else 1)
    ce = -np_log_softmax(logits)[np.arange(len(labels)), np.asarray(labels)]
    return w * t * t * kl + (1 - w) * ce, kl


@pytest.mark.parametrize("temperature, kl_weight, kl_reduction", [
    (10.0, 0.5, "mean_over_classes"),  # RelaxLoss
    (1.0, 1.0, "mean_over_classes"),  # SELENA / DMP in the HAMP code
    (3.0, 0.0, "sum"),
])
def test_distillation_matches_numpy(batch, temperature, kl_weight, kl_reduction):
    logits, teacher, labels = batch
    want, kl = np_distillation(logits, teacher, labels, temperature, kl_weight,
                               kl_reduction == "mean_over_classes")
    kwargs = dict(temperature=temperature, kl_weight=kl_weight, kl_reduction=kl_reduction)
    np.testing.assert_allclose(distillation_loss(logits, labels, teacher, **kwargs), want,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        distillation_kl(logits, teacher, temperature=temperature, kl_reduction=kl_reduction), kl,
        rtol=1e-5, atol=1e-7)
    batched = jax.jit(jax.vmap(lambda z, y, t: distillation_loss(z, y, t, **kwargs)))(
        logits[None], labels[None], teacher[None])
    np.testing.assert_allclose(batched[0], want, rtol=1e-5, atol=1e-6)


def test_distillation_edge_cases(batch):
    logits, teacher, labels = batch
    # A student equal to its teacher has zero KL; huge logits stay finite.
    np.testing.assert_allclose(distillation_kl(teacher, teacher, temperature=10.0), 0.0,
                               atol=1e-6)
    big = distillation_loss(1e4 * logits, labels, 1e4 * teacher, temperature=1.0)
    assert np.all(np.isfinite(big))
    grads = jax.grad(lambda z: distillation_loss(z, labels, teacher, temperature=10.0).sum())(
        logits)
    assert np.all(np.isfinite(grads))
    with pytest.raises(ValueError, match="temperature must be in"):
        distillation_loss(logits, labels, teacher, temperature=0.0)
    with pytest.raises(ValueError, match="kl_weight must be in"):
        distillation_loss(logits, labels, teacher, kl_weight=1.5)
    with pytest.raises(ValueError, match="kl_reduction must be one of"):
        distillation_loss(logits, labels, teacher, kl_reduction="batchmean")
    with pytest.raises(ValueError, match="same shape"):
        distillation_loss(logits, labels, teacher[:, :3])
