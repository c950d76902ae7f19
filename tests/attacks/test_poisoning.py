"""Tests for hampjax.attacks.poisoning (Truth-Serum construction and evaluation)."""

import numpy as np
import pytest

from hampjax.attacks import leave_one_out, leave_one_out_metrics
from hampjax.attacks.poisoning import PoisonedData, poison_dataset, poisoning_scores
from hampjax.training import balanced_keep


def _pool(n=40, m=6, k=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 3)).astype(np.float32), rng.integers(0, k, n), balanced_keep(m, n, seed=seed)


def test_construction():
    x, y, keep = _pool()
    p = poison_dataset(x, y, keep, num_targets=7, replicas=3, num_classes=5, seed=0)
    assert isinstance(p, PoisonedData)
    n, t, r = 40, 7, 3
    assert p.x.shape == (n + t * r, 3) and p.y.shape == (n + t * r,) and p.keep.shape == (6, n + t * r)
    assert p.num_original == n and len(set(p.target_index.tolist())) == t
    # The original candidates are untouched, in place.
    np.testing.assert_array_equal(p.x[:n], x)
    np.testing.assert_array_equal(p.y[:n], y)
    np.testing.assert_array_equal(p.keep[:, :n], keep)  # targets' membership follows keep
    # Each target: R replicas of its input, each with the same wrong label, kept by every model.
    np.testing.assert_array_equal(p.poison_rows, n + np.arange(t * r).reshape(t, r))
    for i, j in enumerate(p.target_index):
        rows = p.poison_rows[i]
        np.testing.assert_array_equal(p.x[rows], np.repeat(x[j][None], r, axis=0))
        assert np.all(p.y[rows] == p.poison_labels[i]) and p.poison_labels[i] != y[j]
        assert 0 <= p.poison_labels[i] < 5
    assert p.keep[:, n:].all()
    assert np.bincount(np.repeat(np.arange(t), r)).tolist() == [r] * t
    # Deterministic in the seed, different across seeds.
    again = poison_dataset(x, y, keep, num_targets=7, replicas=3, num_classes=5, seed=0)
    np.testing.assert_array_equal(again.target_index, p.target_index)
    np.testing.assert_array_equal(again.poison_labels, p.poison_labels)
    other = poison_dataset(x, y, keep, num_targets=7, replicas=3, num_classes=5, seed=1)
    assert not np.array_equal(other.target_index, p.target_index)


def test_wrong_labels_cover_every_other_class():
    x, y, keep = _pool(n=400, k=3)
    p = poison_dataset(x, y, keep, num_targets=400, replicas=1, num_classes=3, seed=0)
    shift = (p.poison_labels - y[p.target_index]) % 3
    assert set(shift.tolist()) == {1, 2}


def test_scores_are_leave_one_out_on_the_targets():
    x, y, keep = _pool(n=60, m=8)
    p = poison_dataset(x, y, keep, num_targets=10, replicas=2, num_classes=5, seed=0)
    rng = np.random.default_rng(1)
    scores = (rng.normal(size=(8, p.keep.shape[1], 2)) + 2.0 * p.keep[..., None]).astype(np.float32)
    res = poisoning_scores(scores, p)
    assert res.scores.shape == (8, 10)
    want = leave_one_out(scores[:, p.target_index], keep[:, p.target_index], online=True,
                         fix_variance=True)
    np.testing.assert_array_equal(res.scores, want.scores)
    np.testing.assert_array_equal(res.labels, keep[:, p.target_index])
    np.testing.assert_array_equal(poisoning_scores(scores[:, :60], p).scores, res.scores)
    assert leave_one_out_metrics(res, fprs=(0.1,)).pooled["auc"] > 0.8
    with pytest.raises(ValueError, match="online is fixed"):
        poisoning_scores(scores, p, online=False)
    with pytest.raises(ValueError, match="scores must have shape"):
        poisoning_scores(scores[:, :50], p)


def test_validation():
    x, y, keep = _pool()
    kw = dict(num_targets=3, replicas=2, num_classes=5, seed=0)
    with pytest.raises(ValueError, match=r"num_targets must be an integer in \[1, 40\]"):
        poison_dataset(x, y, keep, **{**kw, "num_targets": 41})
    with pytest.raises(ValueError, match="replicas must be an integer >= 1"):
        poison_dataset(x, y, keep, **{**kw, "replicas": 0})
    with pytest.raises(ValueError, match=r"y must be in \[0, 3\)"):
        poison_dataset(x, y, keep, **{**kw, "num_classes": 3})
    with pytest.raises(ValueError, match="keep must be a boolean mask"):
        poison_dataset(x, y, keep[:, :5], **kw)


def test_end_to_end_tiny_training():
    # Poison -> train_many -> predict -> logit-scaled scores -> leave-one-out on the targets.
    import jax.numpy as jnp

    from hampjax.models import get_model, model_functions
    from hampjax.scores import logit_scaled_score
    from hampjax.training import predict_many, train_many, undefended_recipe

    rng = np.random.default_rng(0)
    n, k, m = 64, 4, 4
    x = rng.normal(size=(n, 8)).astype(np.float32)
    y = rng.integers(0, k, n)
    keep = balanced_keep(m, n, seed=0)
    p = poison_dataset(x, y, keep, num_targets=6, replicas=4, num_classes=k, seed=0)
    model = get_model("fc", k, hidden_sizes=(16,))
    result = train_many(model, undefended_recipe("digits", epochs=2, batch_size=16), p.x, p.y, p.keep,
                        seed=0, progress=False)
    _, apply_fn = model_functions(model)
    logits = predict_many(apply_fn, result.variables, x[p.target_index])  # [M, T, Q=1, C]
    phi = np.asarray(logit_scaled_score(jnp.asarray(logits), jnp.asarray(y[p.target_index])[None, :, None]))
    scores = np.zeros((m, n, phi.shape[-1]), np.float32)
    scores[:, p.target_index] = phi
    res = poisoning_scores(scores, p)
    assert res.scores.shape == (m, 6) and np.all(np.isfinite(res.scores))
    np.testing.assert_array_equal(res.labels, keep[:, p.target_index])
