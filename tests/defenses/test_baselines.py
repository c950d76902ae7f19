"""Baseline losses against NumPy references; temperature fitting recovers a known temperature."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hampjax.defenses.baselines import (
    confidence_penalty_loss,
    cross_entropy_loss,
    fit_temperature,
    label_smoothing_loss,
    temperature_scale,
)
from hampjax.defenses.hamp import hamp_loss, hamp_soft_labels


def np_log_softmax(z):
    z = np.asarray(z, np.float64)
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


@pytest.fixture
def batch():
    logits = 2.0 * jax.random.normal(jax.random.key(0), (12, 7))
    labels = jax.random.randint(jax.random.key(1), (12,), 0, 7)
    return logits, labels


def test_cross_entropy(batch):
    logits, labels = batch
    want = -np_log_softmax(logits)[np.arange(12), np.asarray(labels)]
    np.testing.assert_allclose(cross_entropy_loss(logits, labels), want, rtol=1e-5)


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.5])
def test_label_smoothing(batch, eps):
    logits, labels = batch
    target = (1 - eps) * np.eye(7)[np.asarray(labels)] + eps / 7
    want = -(target * np_log_softmax(logits)).sum(-1)
    np.testing.assert_allclose(label_smoothing_loss(logits, labels, eps), want, rtol=1e-5)


def test_label_smoothing_equals_hamp_routine_conversion(batch):
    # The authors' baseline: true class p, others (1-p)/(C-1), alpha = 0.
    logits, labels = batch
    soft = hamp_soft_labels(labels, 7, 0.15)
    p = float(soft[0, labels[0]])
    eps = (1 - p) * 7 / 6
    np.testing.assert_allclose(
        label_smoothing_loss(logits, labels, eps) - (-(soft * jnp.log(soft)).sum(-1)),
        hamp_loss(logits, soft, 0.0),
        rtol=1e-4, atol=1e-5,
    )


def test_confidence_penalty(batch):
    logits, labels = batch
    logp = np_log_softmax(logits)
    ce = -logp[np.arange(12), np.asarray(labels)]
    ent = -(np.exp(logp) * logp).sum(-1)
    np.testing.assert_allclose(confidence_penalty_loss(logits, labels, 0.3), ce - 0.3 * ent,
                               rtol=1e-5, atol=1e-6)


def test_losses_jit_vmap(batch):
    logits, labels = batch
    stacked_z = jnp.stack([logits, logits * 2])
    stacked_y = jnp.stack([labels, labels])
    for fn in (
        lambda z, y: cross_entropy_loss(z, y),
        lambda z, y: label_smoothing_loss(z, y, 0.1),
        lambda z, y: confidence_penalty_loss(z, y, 0.2),
    ):
        direct = fn(stacked_z, stacked_y)
        np.testing.assert_allclose(jax.jit(fn)(stacked_z, stacked_y), direct, rtol=1e-6)
        np.testing.assert_allclose(jax.vmap(fn)(stacked_z, stacked_y), direct, rtol=1e-6)


def test_temperature_scale_keeps_ranking(batch):
    logits, _ = batch
    scaled = temperature_scale(logits, 10.0)
    np.testing.assert_allclose(scaled, logits / 10.0)
    np.testing.assert_array_equal(jnp.argsort(scaled), jnp.argsort(logits))


@pytest.mark.parametrize("true_temperature", [0.25, 1.0, 4.0])
def test_fit_temperature_recovers_known_temperature(true_temperature):
    k1, k2 = jax.random.split(jax.random.key(3))
    calibrated = 2.0 * jax.random.normal(k1, (40000, 10))
    labels = jax.random.categorical(k2, calibrated)
    fitted = float(fit_temperature(calibrated * true_temperature, labels))
    assert fitted == pytest.approx(true_temperature, rel=0.05)


def test_fit_temperature_is_nll_minimum():
    k1, k2 = jax.random.split(jax.random.key(4))
    logits = 3.0 * jax.random.normal(k1, (2000, 5))
    labels = jax.random.categorical(k2, logits / 2.0)
    t = float(fit_temperature(logits, labels))

    def nll(temp):
        return float(cross_entropy_loss(logits / temp, labels).mean())

    assert nll(t) <= nll(t * 1.05) and nll(t) <= nll(t / 1.05)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda z, y: label_smoothing_loss(z, y, 1.0), r"smoothing must be in \[0, 1\)"),
        (lambda z, y: label_smoothing_loss(z, y, -0.1), r"smoothing must be in \[0, 1\)"),
        (lambda z, y: confidence_penalty_loss(z, y, -1.0), r"beta must be in \[0, inf\)"),
        (lambda z, y: temperature_scale(z, 0.0), r"temperature must be in \(0, inf\)"),
        (lambda z, y: cross_entropy_loss(z, y[:5]), r"labels must have shape"),
        (lambda z, y: cross_entropy_loss(z, y + 7), r"labels must be in \[0, 7\)"),
        (lambda z, y: cross_entropy_loss(z[:, :1], y * 0), r"logits.shape\[-1\] must be an integer >= 2"),
        (lambda z, y: fit_temperature(z[None], y[None]), r"logits must have shape \[N, C\]"),
        (lambda z, y: fit_temperature(z, y, min_temperature=2.0, max_temperature=1.0),
         r"max_temperature must be in \(2, inf\)"),
        (lambda z, y: fit_temperature(z, y, iterations=0), r"iterations must be an integer >= 1"),
    ],
)
def test_validation_errors(batch, call, match):
    logits, labels = batch
    with pytest.raises(ValueError, match=match):
        call(logits, labels)
