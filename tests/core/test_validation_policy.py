"""Issue 15's policy: concrete bad inputs raise a ValueError naming the argument, the range and
the first offending index; invalid traced hyperparameters give NaN, and raise in checked mode;
train_many checks labels and data and stops at the first non-finite loss."""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hampjax import validation as v
from hampjax.defenses import (
    OutputModifier,
    confidence_penalty_loss,
    cross_entropy_loss,
    distillation_kl,
    distillation_loss,
    fit_temperature,
    hamp_loss,
    hamp_soft_labels,
    label_smoothing_loss,
    modify_output,
    relaxloss_loss,
    smoothed_labels,
    soft_label_probability,
    temperature_scale,
    weighted_smoothing_loss,
    ws_noise_scale,
    ws_sample_scores,
)
from hampjax.attacks import shokri_features
from hampjax.defenses import (
    add_gaussian_noise,
    advreg_penalty,
    attack_features,
    clip_factors,
    label_encoding,
    membership_mse,
    poisson_sample_rate,
    soft_label_entropy,
)
from hampjax.metrics import expected_calibration_error, mean_max_prediction_score
from hampjax.scores import logit_scaled_score, modified_entropy, true_class_log_prob

C = 4
LOGITS = np.array([[1.0, 0.0, -1.0, 2.0], [0.5, 0.5, 0.0, 0.0], [3.0, 1.0, 0.0, 0.0]], np.float32)
LABELS = np.array([3, 0, 1])
NAN_LOGITS = LOGITS.copy()
NAN_LOGITS[1, 2] = np.nan
INF_LOGITS = LOGITS.copy()
INF_LOGITS[2, 0] = np.inf
KEY = jax.random.key(0)


# --------------------------------------------------------------------------------------------
# The helpers.


def test_check_finite_names_the_first_index_and_counts():
    x = np.zeros((3, 4), np.float32)
    x[1, 2], x[2, 0] = np.nan, np.inf
    with pytest.raises(ValueError, match=re.escape(
            "x must be finite (no NaN or inf); found nan at index (1, 2) (2 of 12 values are "
            "not finite)")):
        v.check_finite("x", x)
    with pytest.raises(ValueError, match=re.escape("found nan at index (1, 2)")):
        v.check_finite("x", jnp.asarray(x))  # device arrays: reduced on the device
    v.check_finite("x", x, where=np.array([True, False, False]))  # masked rows not checked
    v.check_finite("x", np.arange(3))  # integers pass
    jax.jit(lambda t: v.check_finite("x", t) or t)(x)  # tracers are skipped


def test_check_finite_in_blocks_matches_one_pass(monkeypatch):
    x = np.zeros((7, 3), np.float32)
    x[5, 1], x[6, 2] = np.inf, np.nan
    expected = "found inf at index (5, 1) (2 of 21 values are not finite)"
    monkeypatch.setattr(v, "_FINITE_BLOCK", 4)  # blocks of one row
    with pytest.raises(ValueError, match=re.escape(expected)):
        v.check_finite("x", x)
    with pytest.raises(ValueError, match=re.escape("found nan at index (6, 2) (1 of 21")):
        v.check_finite("x", x, where=np.array([True] * 5 + [False, True]))
    v.check_finite("x", np.zeros((0, 3)))


def test_check_labels_and_range_name_the_first_index():
    with pytest.raises(ValueError, match=re.escape("labels must be in [0, 4), got 7 at index (2,)")):
        v.check_labels(np.array([0, 3, 7, 9]), 4)
    with pytest.raises(ValueError, match=re.escape("e.g. 2.0 at index (0, 1)")):
        v.check_in_range("x", np.array([[0.5, 2.0], [0.1, -1.0]]), 0.0, 1.0)


def test_check_probabilities():
    v.check_probabilities("p", np.array([[0.25] * 4, [1.0, 0, 0, 0]]))
    v.check_probabilities("p", np.array([[0.5, 0.5 + 5e-4]]))  # within PROBABILITY_ATOL
    with pytest.raises(ValueError, match=re.escape(
            "p must have rows that sum to 1 (within 0.001); row (1,) sums to 2.0 (1 of 2 rows "
            "do not)")):
        v.check_probabilities("p", np.array([[0.5, 0.5], [1.0, 1.0]]))
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\]"):
        v.check_probabilities("p", np.array([[1.5, -0.5]]))
    with pytest.raises(ValueError, match="p must be finite"):
        v.check_probabilities("p", np.array([[np.nan, 1.0]]))


# --------------------------------------------------------------------------------------------
# The "silently wrong" inputs, and the same classes of input across the API.


def _soft():
    return hamp_soft_labels(jnp.asarray(LABELS), C, 0.5)


CONCRETE_CASES = {
    "hamp_loss nan logits": (lambda: hamp_loss(NAN_LOGITS, _soft(), 0.1),
                             r"logits must be finite \(no NaN or inf\); found nan at index \(1, 2\)"),
    "hamp_loss inf logits": (lambda: hamp_loss(INF_LOGITS, _soft(), 0.1),
                             r"logits must be finite .* found inf at index \(2, 0\)"),
    "hamp_loss nan soft_labels": (lambda: hamp_loss(LOGITS, np.full((3, C), np.nan), 0.1),
                                  r"soft_labels must be finite .* at index \(0, 0\)"),
    "relaxloss nan logits": (lambda: relaxloss_loss(NAN_LOGITS, LABELS, alpha=1.0, epoch=0),
                             r"logits must be finite .* at index \(1, 2\)"),
    "ws loss nan logits": (lambda: weighted_smoothing_loss(NAN_LOGITS, LABELS, np.zeros(3), KEY,
                                                           sigma=0.1),
                           r"logits must be finite .* at index \(1, 2\)"),
    "ws loss nan noise_scale": (lambda: weighted_smoothing_loss(
        LOGITS, LABELS, np.array([0.0, np.nan, 1.0]), KEY, sigma=0.1),
        r"noise_scale must be finite .* at index \(1,\)"),
    "ws_sample_scores nan logits": (lambda: ws_sample_scores(NAN_LOGITS, LABELS),
                                    r"logits must be finite .* at index \(1, 2\)"),
    "ws_noise_scale nan score": (lambda: ws_noise_scale(np.array([1.0, np.nan, 3.0, 4.0]),
                                                        np.array([0, 0, 1, 1]), 2),
                                 r"scores must be finite .* at index \(1,\)"),
    "modify_output nan output": (lambda: modify_output(np.array([0.1, np.nan, 0.3]),
                                                       np.array([0.3, 0.1, 0.2])),
                                 r"outputs must be finite .* found nan at index \(1,\)"),
    "modify_output nan random": (lambda: modify_output(np.array([0.1, 0.2, 0.3]),
                                                       np.array([0.3, np.nan, 0.2])),
                                 r"random_outputs must be finite .* at index \(1,\)"),
    "OutputModifier nan pool": (lambda: OutputModifier.from_pool(np.array([[0.1, np.nan]])),
                                r"pool must be finite .* at index \(0, 1\)"),
    "fit_temperature nan logit": (lambda: fit_temperature(NAN_LOGITS, LABELS),
                                  r"logits must be finite .* at index \(1, 2\)"),
    "temperature_scale inf logit": (lambda: temperature_scale(INF_LOGITS, 2.0),
                                    r"logits must be finite .* at index \(2, 0\)"),
    "cross_entropy nan logits": (lambda: cross_entropy_loss(NAN_LOGITS, LABELS),
                                 r"logits must be finite"),
    "label_smoothing nan logits": (lambda: label_smoothing_loss(NAN_LOGITS, LABELS, 0.1),
                                   r"logits must be finite"),
    "smoothed_labels label >= C": (lambda: smoothed_labels(np.array([0, 5]), C, 0.1),
                                   r"labels must be in \[0, 4\), got 5 at index \(1,\)"),
    "confidence_penalty nan logits": (lambda: confidence_penalty_loss(NAN_LOGITS, LABELS, 0.1),
                                      r"logits must be finite"),
    "distillation nan teacher": (lambda: distillation_loss(LOGITS, LABELS, NAN_LOGITS),
                                 r"teacher_logits must be finite .* at index \(1, 2\)"),
    "distillation_kl inf logits": (lambda: distillation_kl(INF_LOGITS, LOGITS),
                                   r"logits must be finite .* at index \(2, 0\)"),
    "logit_scaled_score label >= C": (lambda: logit_scaled_score(LOGITS, np.array([3, 4, 0])),
                                      r"labels must be in \[0, 4\), got 4 at index \(1,\)"),
    "logit_scaled_score nan": (lambda: logit_scaled_score(NAN_LOGITS, LABELS),
                               r"logits must be finite .* at index \(1, 2\)"),
    "true_class_log_prob label < 0": (lambda: true_class_log_prob(LOGITS, np.array([0, -1, 0])),
                                      r"labels must be in \[0, 4\), got -1 at index \(1,\)"),
    "modified_entropy label >= C": (lambda: modified_entropy(LOGITS, np.array([9, 0, 0])),
                                    r"labels must be in \[0, 4\), got 9 at index \(0,\)"),
    "ece rows sum to 2": (lambda: expected_calibration_error(np.array([[0.5, 0.5], [1.0, 1.0]]),
                                                             np.array([0, 1])),
                          r"probs must have rows that sum to 1 \(within 0.001\); row \(1,\) "
                          r"sums to 2.0"),
    "mmps rows sum to 0.5": (lambda: mean_max_prediction_score(np.array([[0.25, 0.25]])),
                             r"probs must have rows that sum to 1"),
    # The sweep over the rest of the API.
    "shokri_features nan": (lambda: shokri_features(NAN_LOGITS),
                            r"logits must be finite .* at index \(1, 2\)"),
    "attack_features nan": (lambda: attack_features(NAN_LOGITS, "softmax"),
                            r"logits must be finite .* at index \(1, 2\)"),
    "label_encoding label >= C": (lambda: label_encoding(np.array([0, 4]), C, "hamp"),
                                  r"labels must be in \[0, 4\), got 4 at index \(1,\)"),
    "membership_mse nan": (lambda: membership_mse(np.array([0.5, np.nan]), np.array([True, False])),
                           r"scores must be finite .* at index \(1,\)"),
    "advreg_penalty score > 1": (lambda: advreg_penalty(np.array([0.5, 1.5]), 1.0),
                                 r"scores must be in \[0, 1\] .* 1.5 at index \(1,\)"),
    "advreg_penalty weight < 0": (lambda: advreg_penalty(np.array([0.5]), -1.0),
                                  r"weight must be in \[0, inf\), got -1.0"),
    "clip_factors clip_norm <= 0": (lambda: clip_factors(np.array([1.0]), 0.0),
                                    r"clip_norm must be in \(0, inf\], got 0.0"),
    "add_gaussian_noise nan stddev": (lambda: add_gaussian_noise({"w": jnp.ones(2)}, KEY, np.nan),
                                      r"stddev must be in \[0, inf\), got nan"),
    "soft_label_entropy p > 1": (lambda: soft_label_entropy(np.array([0.5, 1.5]), C),
                                 r"p must be in \[0, 1\] .* 1.5 at index \(1,\)"),
    "poisson_sample_rate no member": (lambda: poisson_sample_rate(0, 10),
                                      r"num_members must be in \[1, inf\)"),
}


@pytest.mark.parametrize("name", sorted(CONCRETE_CASES))
def test_concrete_bad_inputs_raise_named_errors(name):
    fn, match = CONCRETE_CASES[name]
    with pytest.raises(ValueError, match=match):
        fn()


def test_relaxloss_masked_rows_may_hold_nan():
    where = np.array([True, False, True])
    loss = relaxloss_loss(NAN_LOGITS, LABELS, alpha=1.0, epoch=0, where=where)
    assert np.isfinite(np.asarray(loss)).all()


def test_ws_noise_scale_masked_nan_score_is_left_out():
    scores = np.array([1.0, np.nan, 3.0, 4.0, 5.0])
    labels = np.array([0, 0, 0, 1, 1])
    where = np.array([True, False, True, True, True])
    out = np.asarray(ws_noise_scale(scores, labels, 2, where=where))
    np.testing.assert_allclose(out, [2.0, 0.0, 0.0, 2.0, 0.0])  # z = -1, +1 in each class


def test_valid_inputs_unchanged_by_the_checks():
    # Against plain references written here.
    logp = jax.nn.log_softmax(LOGITS)
    np.testing.assert_allclose(logit_scaled_score(LOGITS, LABELS),
                               [np.log(np.exp(logp[i, y]) / (1 - np.exp(logp[i, y])))
                                for i, y in enumerate(LABELS)], rtol=1e-5)
    r = np.array([[0.3, 0.1, 0.2, 0.4]] * 3, np.float32)
    out = np.asarray(modify_output(LOGITS, r))
    for row_z, row_out in zip(LOGITS, out):
        np.testing.assert_array_equal(np.sort(row_out), np.sort(r[0]))
        np.testing.assert_array_equal(np.argsort(row_out, stable=True),
                                      np.argsort(row_z, stable=True))


# --------------------------------------------------------------------------------------------
# Traced values: NaN by default (jit, vmap), the same messages in checked mode.

GAMMAS = jnp.array([0.5, 1.2, -0.3])


def test_vmapped_invalid_gamma_gives_nan_rows_not_one_hot():
    soft = jax.vmap(lambda g: hamp_soft_labels(jnp.asarray(LABELS), C, g))(GAMMAS)
    assert np.isfinite(np.asarray(soft[0])).all()
    np.testing.assert_allclose(soft[0], hamp_soft_labels(jnp.asarray(LABELS), C, 0.5))
    assert np.isnan(np.asarray(soft[1:])).all()
    p = jax.jit(jax.vmap(lambda g: soft_label_probability(C, g)))(GAMMAS)
    assert np.isfinite(float(p[0])) and np.isnan(np.asarray(p[1:])).all()


@functools.lru_cache(maxsize=None)
def _laplace_posterior():
    from hampjax.defenses import fit_laplace

    with jax.ensure_compile_time_eval():  # concrete even when first reached under a trace
        features = jax.random.normal(jax.random.key(0), (20, 4))
        return fit_laplace(features, jnp.zeros(20, jnp.int32), jnp.ones((4, 3)), jnp.zeros(3))


def _laplace_cov(prior_variance):
    from hampjax.defenses import laplace_predictive_moments

    features = jnp.ones((2, 4))
    return laplace_predictive_moments(_laplace_posterior(), features,
                                      prior_variance=prior_variance)[1]


# (name, fn(hyperparameter) -> output, one valid value, one invalid value)
TRACED = [
    ("alpha", lambda a: hamp_loss(LOGITS, _soft(), a), 0.1, -0.5),
    ("alpha", lambda a: relaxloss_loss(LOGITS, LABELS, alpha=a, epoch=0), 1.0, -1.0),
    ("sigma", lambda s: weighted_smoothing_loss(LOGITS, LABELS, jnp.ones(3), KEY, sigma=s),
     0.1, -0.1),
    ("smoothing", lambda e: label_smoothing_loss(LOGITS, LABELS, e), 0.1, 1.5),
    ("smoothing", lambda e: smoothed_labels(jnp.asarray(LABELS), C, e, style="hamp"), 0.1, -0.2),
    ("beta", lambda b: confidence_penalty_loss(LOGITS, LABELS, b), 0.1, -1.0),
    ("temperature", lambda t: distillation_loss(LOGITS, LABELS, LOGITS[::-1], temperature=t),
     2.0, 0.0),
    ("kl_weight", lambda w: distillation_loss(LOGITS, LABELS, LOGITS[::-1], kl_weight=w),
     0.5, 1.5),
    ("temperature", lambda t: temperature_scale(LOGITS, t), 2.0, -1.0),
    ("upper", lambda u: relaxloss_loss(LOGITS, LABELS, alpha=3.0, epoch=1, upper=u), 0.5, 0.0),
    ("floor", lambda f: weighted_smoothing_loss(LOGITS, LABELS, jnp.ones(3), KEY, sigma=0.1,
                                                floor=f), 1e-8, 1.0),
    ("weight", lambda w: advreg_penalty(jnp.array([0.2, 0.9]), w), 1.0, -0.5),
    ("clip_norm", lambda c: clip_factors(jnp.array([0.5, 4.0]), c), 2.0, -2.0),
    ("stddev", lambda d: add_gaussian_noise({"w": jnp.ones(3)}, KEY, d)["w"], 0.5, -0.5),
    ("prior_variance", lambda pv: _laplace_cov(pv), 1.0, 0.0),
]


@pytest.mark.parametrize("case", TRACED, ids=[f"{c[0]}-{i}" for i, c in enumerate(TRACED)])
def test_traced_invalid_hyperparameter_gives_nan_under_jit_and_vmap(case):
    name, fn, good, bad = case
    values = jnp.array([good, bad], jnp.float32)
    out = np.asarray(jax.jit(jax.vmap(fn))(values))
    assert np.isfinite(out[0]).all() and np.isnan(out[1]).all(), name
    np.testing.assert_allclose(out[0], fn(good), rtol=1e-6)  # the valid value is untouched
    with pytest.raises(ValueError, match=f"{name} must be"):  # the concrete path raises
        fn(bad)


@pytest.mark.parametrize("case", TRACED, ids=[f"{c[0]}-{i}" for i, c in enumerate(TRACED)])
def test_checked_mode_raises_the_message_under_jit(case):
    name, fn, good, bad = case
    f = v.checked(jax.jit(fn))
    np.testing.assert_allclose(f(jnp.float32(good)), fn(good), rtol=1e-6)
    with pytest.raises(ValueError) as info:
        f(jnp.float32(bad))
    with pytest.raises(ValueError) as concrete:
        fn(bad)
    message = str(info.value)
    # Same message as the concrete path, up to the printed value.
    assert message.split(", got")[0] == str(concrete.value).split(", got")[0], message


def test_relaxloss_branch_invalid_traced_alpha_is_minus_one():
    from hampjax.defenses import relaxloss_branch

    f = jax.jit(jax.vmap(lambda a: relaxloss_branch(LOGITS, LABELS, alpha=a, epoch=1)))
    assert f(jnp.array([10.0, -1.0])).tolist() == [2, -1]
    with pytest.raises(ValueError, match=r"alpha must be in \[0, inf\), got -1"):
        v.checked(f)(jnp.array([10.0, -1.0]))


def test_checked_mode_under_vmap_and_the_gamma_message():
    f = v.checked(jax.jit(jax.vmap(lambda g: hamp_soft_labels(jnp.asarray(LABELS), C, g))))
    with pytest.raises(ValueError, match=r"^entropy_threshold must be in \[0, 1\), got -0.3"):
        f(GAMMAS)
    assert f(jnp.array([0.0, 0.5])).shape == (2, 3, C)


def test_traced_nan_outputs_into_modify_output_give_nan_rows():
    z = jnp.array([[0.1, jnp.nan, 0.3], [0.3, 0.2, 0.1]])
    r = jnp.array([[0.3, 0.1, 0.2], [0.6, 0.5, 0.4]])
    out = np.asarray(jax.jit(lambda a, b: modify_output(a, b))(z, r))
    assert np.isnan(out[0]).all()  # not a finite top-1 for the NaN class
    np.testing.assert_array_equal(out[1], np.float32([0.6, 0.5, 0.4]))
    with pytest.raises(ValueError, match="outputs and random_outputs must be finite"):
        v.checked(jax.jit(lambda a, b: modify_output(a, b)))(z, r)


def test_checked_mode_without_failures_adds_nothing_to_plain_programs():
    # A plain jitted program carries no check (debug_check is dropped): same result, no error.
    fn = jax.jit(lambda g: hamp_soft_labels(jnp.asarray(LABELS), C, g))
    assert "check" not in fn.lower(0.5).as_text().lower()


def test_checked_mode_with_float_checks():
    from jax.experimental import checkify

    f = jax.jit(lambda x: jnp.log(x))
    assert np.isnan(float(v.checked(f)(-1.0)))  # user checks only: no hampjax check failed
    with pytest.raises(ValueError, match="nan generated by primitive: log"):
        v.checked(f, errors=checkify.user_checks | checkify.float_checks)(-1.0)
