"""Property-based tests (hypothesis) of the public API on generated bad and good inputs.

For every generated input, a public function either raises a ``ValueError`` whose message
names the offending argument, or returns a result equal to a slow reference written here
(float64 NumPy). Inputs: wrong shapes and ranks, wrong dtypes, values out of range, NaN/inf,
empty arrays, bad scalars, files with the wrong dtype.

Profiles (``HYPOTHESIS_PROFILE``):

- ``ci`` (default): 20 examples per test, no deadline; the module takes ~15 s on an idle
  2-core machine (most of it the first compilation of each shape).
- ``slow``: 400 examples per test, for a longer hunt:
  ``HYPOTHESIS_PROFILE=slow python -m pytest -q tests/core/test_properties.py``.

Shapes are drawn from small sets so that the number of distinct compiled programs stays
bounded.
"""

from __future__ import annotations

import os

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from hampjax import defenses, metrics, scores
from hampjax.data import Dataset, hamp_split_sizes, lira_candidate_pool, parse_cifar_records
from hampjax.training import balanced_keep, check_keep, load_keep, paired_keep

# ci: no shrinking (a failure is reported as found, without spending CI time minimizing it).
settings.register_profile("ci", max_examples=20, deadline=None, derandomize=True,
                          phases=[Phase.explicit, Phase.reuse, Phase.generate],
                          suppress_health_check=[HealthCheck.too_slow,
                                                 HealthCheck.function_scoped_fixture])
settings.register_profile("slow", max_examples=400, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow,
                                                 HealthCheck.function_scoped_fixture])
PROFILE = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

def raises_naming(call, *names):
    """``call()`` must raise a ValueError whose message names one of ``names``."""
    with pytest.raises(ValueError) as info:
        call()
    message = str(info.value)
    assert any(n in message for n in names), f"{message!r} names none of {names}"


def named_or_equal(call, names, reference, *, rtol=1e-4, atol=1e-4):
    """Either a ValueError naming one of ``names``, or a result equal to ``reference()``."""
    try:
        out = call()
    except ValueError as e:
        assert any(n in str(e) for n in names), f"{str(e)!r} names none of {names}"
        return None
    np.testing.assert_allclose(np.asarray(out, np.float64), reference(), rtol=rtol, atol=atol)
    return out


# --------------------------------------------------------------------------------------------
# Strategies.
# --------------------------------------------------------------------------------------------

SIZES = st.sampled_from([1, 4])
CLASSES = st.sampled_from([2, 5])


@st.composite
def logits_labels(draw):
    n, c = draw(SIZES), draw(CLASSES)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    logits = rng.uniform(-5, 5, size=(n, c)).astype(np.float32)
    labels = rng.integers(0, c, size=n).astype(np.int32)
    return logits, labels


def _log_softmax(z):
    z = np.asarray(z, np.float64)
    m = z.max(-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(-1, keepdims=True))


def ref_cross_entropy(z, y):
    return -_log_softmax(z)[np.arange(len(y)), y]


def ref_true_class_log_prob(z, y):
    return _log_softmax(z)[np.arange(len(y)), y]


def ref_logit_scaled(z, y):
    p = np.exp(_log_softmax(z))
    p_y = p[np.arange(len(y)), y]
    return np.log(p_y) - np.log(p.sum(-1) - p_y)


def ref_entropy(z):
    logp = _log_softmax(z)
    return -(np.exp(logp) * logp).sum(-1)


LOGIT_FUNCTIONS = {
    "cross_entropy_loss": (lambda z, y: defenses.cross_entropy_loss(z, y), ref_cross_entropy),
    "true_class_log_prob": (lambda z, y: scores.true_class_log_prob(z, y), ref_true_class_log_prob),
    "logit_scaled_score": (lambda z, y: scores.logit_scaled_score(z, y), ref_logit_scaled),
    "entropy": (lambda z, y: scores.entropy(z), lambda z, y: ref_entropy(z)),
    "relaxloss_loss": (lambda z, y: defenses.relaxloss_loss(z, y, alpha=0.5, epoch=0), None),
    "label_smoothing_loss": (lambda z, y: defenses.label_smoothing_loss(z, y, 0.1), None),
    "confidence_penalty_loss": (lambda z, y: defenses.confidence_penalty_loss(z, y, 0.1), None),
    "modified_entropy": (lambda z, y: scores.modified_entropy(z, y), None),
}
USES_LABELS = [n for n in LOGIT_FUNCTIONS if n != "entropy"]


# --------------------------------------------------------------------------------------------
# (logits, labels) functions.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [n for n, (_, ref) in LOGIT_FUNCTIONS.items() if ref is not None])
@PROFILE
@given(data=logits_labels())
def test_valid_inputs_match_the_reference(name, data):
    fn, ref = LOGIT_FUNCTIONS[name]
    z, y = data
    np.testing.assert_allclose(np.asarray(fn(z, y), np.float64), ref(z, y), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", list(LOGIT_FUNCTIONS))
@PROFILE
@given(data=logits_labels(), where=st.integers(0, 10**6), bad=st.sampled_from([np.nan, np.inf, -np.inf]))
def test_non_finite_logits_raise(name, bad, data, where):
    fn, _ = LOGIT_FUNCTIONS[name]
    z, y = data
    z = z.copy()
    z.flat[where % z.size] = bad
    raises_naming(lambda: np.asarray(fn(z, y)), "logits")


@pytest.mark.parametrize("name", USES_LABELS)
@PROFILE
@given(data=logits_labels(), shift=st.integers(0, 50), negative=st.booleans(), where=st.integers(0, 99))
def test_labels_out_of_range(name, data, shift, negative, where):
    fn, _ = LOGIT_FUNCTIONS[name]
    z, y = data
    y = y.copy()
    y[where % len(y)] = -1 - shift if negative else z.shape[1] + shift
    raises_naming(lambda: np.asarray(fn(z, y)), "labels")


@pytest.mark.parametrize("name", USES_LABELS)
@PROFILE
@given(data=logits_labels(), kind=st.sampled_from(["longer", "rank2", "float", "bool"]))
def test_bad_label_shapes_and_dtypes(name, data, kind):
    fn, _ = LOGIT_FUNCTIONS[name]
    z, y = data
    bad = {"longer": np.concatenate([y, y[:1]]), "rank2": y[:, None],
           "float": y.astype(np.float32) + 0.5, "bool": y.astype(bool)}[kind]
    raises_naming(lambda: np.asarray(fn(z, bad)), "labels", "logits")


@pytest.mark.parametrize("name", list(LOGIT_FUNCTIONS))
@pytest.mark.parametrize("kind", ["empty", "rank1", "int"])
def test_empty_or_misshaped_logits(name, kind, c=3):
    """Fixed edge cases (nothing to generate): empty, rank-1 and integer logits."""
    fn, ref = LOGIT_FUNCTIONS[name]
    z = {"empty": np.zeros((0, c), np.float32), "rank1": np.zeros(c, np.float32),
         "int": np.zeros((3, c), np.int32)}[kind]
    y = np.zeros(len(z) if z.ndim == 2 else 1, np.int32)
    if kind == "rank1":
        y = np.zeros((), np.int32)
    if ref is None or kind != "empty":
        # Either refused naming the argument, or (rank-1 / int logits) computed as the reference.
        try:
            out = np.asarray(fn(z, y))
        except ValueError as e:
            assert "logits" in str(e) or "labels" in str(e), str(e)
            return
        assert np.all(np.isfinite(out)) and out.shape == z.shape[:-1]
        return
    named_or_equal(lambda: fn(z, y), ("logits", "labels"), lambda: ref(z, y))


# --------------------------------------------------------------------------------------------
# Defenses' hyperparameters and outputs.
# --------------------------------------------------------------------------------------------

BAD_FLOATS = st.one_of(st.sampled_from([np.nan, np.inf, -np.inf, -0.5, 1.0, 1.5, 100.0]),
                       st.floats(-10, -1e-6), st.floats(1.0, 10))


@PROFILE
@given(gamma=BAD_FLOATS, c=CLASSES)
def test_hamp_soft_labels_threshold_out_of_range(gamma, c):
    raises_naming(lambda: defenses.hamp_soft_labels(jnp.zeros(3, jnp.int32), c, gamma),
                  "entropy_threshold")


@PROFILE
@given(gamma=st.floats(0.0, 0.95), c=CLASSES, data=logits_labels())
def test_hamp_soft_labels_valid(gamma, c, data):
    _, y = data
    y = y % c
    out = np.asarray(defenses.hamp_soft_labels(jnp.asarray(y), c, gamma), np.float64)
    np.testing.assert_allclose(out.sum(-1), 1.0, atol=1e-5)
    p = out[np.arange(len(y)), y]
    others = np.where(np.eye(c, dtype=bool)[y], np.nan, out)
    np.testing.assert_allclose(np.nanmax(others, -1), (1 - p) / (c - 1), atol=1e-5)
    assert np.all(p >= 1.0 / c - 1e-6)


@PROFILE
@given(data=logits_labels(), where=st.integers(0, 99), which=st.sampled_from(["outputs", "random_outputs"]))
def test_modify_output_non_finite(data, where, which):
    z, _ = data
    outputs, random = z.copy(), z[::-1].copy()
    (outputs if which == "outputs" else random).flat[where % z.size] = np.nan
    raises_naming(lambda: np.asarray(defenses.modify_output(outputs, random)), which)


@PROFILE
@given(data=logits_labels(), where=st.integers(0, 99))
def test_fit_temperature_non_finite(data, where):
    z, y = data
    z = z.copy()
    z.flat[where % z.size] = np.nan
    raises_naming(lambda: float(defenses.fit_temperature(z, y)), "logits")


# --------------------------------------------------------------------------------------------
# Metrics.
# --------------------------------------------------------------------------------------------


@st.composite
def scores_labels(draw):
    n = draw(st.sampled_from([2, 5, 16]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    s = rng.normal(size=n).round(1)  # ties on purpose
    labels = np.zeros(n, np.int32)
    labels[rng.choice(n, size=draw(st.integers(1, n - 1)), replace=False)] = 1
    return s, labels


def ref_auc(s, labels):
    pos, neg = s[labels == 1], s[labels == 0]
    greater = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    return greater + 0.5 * ties


@PROFILE
@given(data=scores_labels())
def test_auc_matches_the_reference(data):
    s, labels = data
    assert metrics.auc(s, labels) == pytest.approx(ref_auc(s, labels), abs=1e-12)


@pytest.mark.parametrize("fn", ["auc", "roc_curve", "attacker_advantage", "balanced_accuracy"])
@PROFILE
@given(data=scores_labels(), kind=st.sampled_from(["nan", "inf", "label2", "label-1", "one_class",
                                                   "longer", "empty", "rank2"]))
def test_binary_metrics_bad_inputs(fn, data, kind):
    call = getattr(metrics, fn)
    s, labels = data
    s, labels = s.copy(), labels.copy()
    names = ("scores",)
    if kind == "nan":
        s[0] = np.nan
    elif kind == "inf":
        s[-1] = np.inf
    elif kind in ("label2", "label-1"):
        labels[0], names = (2 if kind == "label2" else -1), ("labels",)
    elif kind == "one_class":
        labels[:], names = 1, ("labels",)
    elif kind == "longer":
        labels, names = np.concatenate([labels, [0]]), ("labels", "scores")
    elif kind == "empty":
        s, labels, names = s[:0], labels[:0], ("labels", "scores")
    else:
        s = s[:, None]
    raises_naming(lambda: call(s, labels), *names)


@st.composite
def probs_labels(draw):
    n, c = draw(SIZES), draw(CLASSES)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    p = rng.dirichlet(np.ones(c), size=n)
    return p, rng.integers(0, c, size=n)


@pytest.mark.parametrize("fn", ["expected_calibration_error", "overconfidence_error"])
@PROFILE
@given(data=probs_labels(), kind=st.sampled_from(["sum2", "negative", "nan", "label_c"]))
def test_calibration_bad_probabilities(fn, data, kind):
    call = getattr(metrics, fn)
    p, y = data
    p, y = p.copy(), y.copy()
    names = ("probs",)
    if kind == "sum2":
        p = 2 * p
    elif kind == "negative":
        p[0, 0] -= 1.0
        p[0, 1] += 1.0
    elif kind == "nan":
        p[0, 0] = np.nan
    else:
        y[0], names = p.shape[1], ("labels",)
    raises_naming(lambda: call(p, y), *names)


# --------------------------------------------------------------------------------------------
# Data and membership (the host-side API).
# --------------------------------------------------------------------------------------------

ANY_INT = st.one_of(st.integers(-3, 12), st.sampled_from([True, 2.0, "4", None]))


@PROFILE
@given(m=ANY_INT, n=ANY_INT, seed=st.one_of(st.integers(-2, 5), st.sampled_from([1.5, True, None])))
def test_balanced_keep_named_or_reference(m, n, seed):
    def reference():
        rng = np.random.default_rng(seed)
        return np.argsort(rng.uniform(size=(m, n)), axis=0) < m // 2

    out = named_or_equal(lambda: balanced_keep(m, n, seed=seed), ("num_models", "num_examples", "seed"),
                         reference, rtol=0, atol=0)
    if out is not None:
        assert out.dtype == np.bool_ and (out.sum(0) == m // 2).all()


@PROFILE
@given(m=ANY_INT, n=ANY_INT, seed=st.integers(0, 3))
def test_paired_keep_named_or_complementary(m, n, seed):
    try:
        keep = paired_keep(m, n, seed=seed)
    except ValueError as e:
        assert "num_models" in str(e) or "num_examples" in str(e), str(e)
        return
    assert keep.shape == (m, n) and keep.dtype == np.bool_
    assert (keep[0::2] ^ keep[1::2]).all() and (keep.sum(1) >= n // 2).all()


@PROFILE
@given(shape=st.sampled_from([(2, 3), (3,), (2, 0), (0, 3), (1, 1, 1)]),
       dtype=st.sampled_from([np.bool_, np.float32, np.int64, np.uint8]), fill=st.booleans())
def test_check_keep_named_or_unchanged(shape, dtype, fill):
    keep = np.full(shape, fill, dtype)
    out = named_or_equal(lambda: check_keep(keep), ("keep",), lambda: keep.astype(np.float64), rtol=0, atol=0)
    if out is not None:
        assert out.dtype == np.bool_ and out.ndim == 2 and out.any(axis=1).all()


@PROFILE
@given(dtype=st.sampled_from([np.float32, np.float64, np.int64, np.int8, np.uint8]))
def test_load_keep_never_casts(tmp_path, dtype):
    path = tmp_path / "keep.npy"
    np.save(path, np.ones((2, 3), dtype))
    raises_naming(lambda: load_keep(path), str(path))


@PROFILE
@given(train=st.one_of(st.integers(-5, 40), st.sampled_from([10.5, True, None])),
       frac=st.one_of(st.floats(-1, 2), st.sampled_from([np.nan, np.inf, 0.0])))
def test_hamp_split_sizes_named_or_formula(train, frac):
    try:
        sizes = hamp_split_sizes(train, val_fraction=frac)
    except ValueError as e:
        assert "train_size" in str(e) or "val_fraction" in str(e), str(e)
        return
    assert sizes.members == round(0.9 * train) and sizes.val == max(1, round(frac * train))
    assert sizes.nonmembers == sizes.members and 0 < frac <= 1 and train >= 10


@PROFILE
@given(n=st.integers(0, 12), members=st.integers(-2, 8), seed=st.integers(-1, 3),
       y_extra=st.integers(0, 1))
def test_lira_pool_named_or_reference(n, members, seed, y_extra):
    x, y = np.zeros((n, 2)), np.zeros(n + y_extra, np.int64)

    def reference():
        perm = np.random.default_rng(seed).permutation(n)
        return perm[:2 * members]

    try:
        pool = lira_candidate_pool(x, y, num_members=members, seed=seed)
    except ValueError as e:
        assert any(k in str(e) for k in ("x", "y", "num_members", "seed")), str(e)
        return
    np.testing.assert_array_equal(pool.candidates, reference())
    assert len(pool.candidates) + len(pool.remainder) == n


@PROFILE
@given(length=st.integers(0, 3 * 3074 + 5), label_bytes=st.sampled_from([1, 2, 3, 0]))
def test_parse_cifar_records_named_or_reference(length, label_bytes):
    data = bytes((i * 7) % 256 for i in range(length))
    try:
        images, labels = parse_cifar_records(data, label_bytes=label_bytes, where="batch.bin")
    except ValueError as e:
        assert "batch.bin" in str(e) or "label_bytes" in str(e), str(e)
        return
    rows = np.frombuffer(data, np.uint8).reshape(-1, label_bytes + 3072)
    ref = rows[:, label_bytes:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(images, ref)
    np.testing.assert_array_equal(labels, rows[:, :label_bytes])


@PROFILE
@given(x_dtype=st.sampled_from([np.uint8, np.float32, np.int64]),
       y_value=st.sampled_from([0, 1, 2, -1, 10]), y_len=st.sampled_from([4, 3]))
def test_dataset_named_or_kept(x_dtype, y_value, y_len):
    x = np.ones((4, 3), x_dtype)
    y = np.full(y_len, y_value, np.int64)
    try:
        ds = Dataset(x, y, 3, "toy", None, True, None, None)
    except ValueError as e:
        assert any(k in str(e) for k in ("x", "y", "num_classes")), str(e)
        return
    assert x_dtype == np.uint8 and 0 <= y_value < 3 and y_len == 4
    np.testing.assert_array_equal(ds.x, x)
    np.testing.assert_array_equal(ds.y, y)
