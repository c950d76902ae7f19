"""Tests for hampjax.attacks.shokri (per-class shadow-model attack)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hampjax.attacks import shokri as shokri_mod
from hampjax.attacks.shokri import ShokriAttack, shokri_attack_scores, shokri_features, train_shokri_attack
from hampjax.metrics import auc


def _world(seed=0, s=6, n=300, c=4):
    """Members get a confident true class; non-members a weaker one (class-dependent gap)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    keep = np.argsort(rng.uniform(size=(s + 1, n)), axis=0) < (s + 1) // 2
    gap = np.where(keep, 3.0, 0.5)[..., None] * np.eye(c)[labels][None]
    logits = (rng.normal(size=(s + 1, n, c)) + gap).astype(np.float32)
    return logits, labels, keep


def test_members_score_higher_on_a_held_out_target():
    logits, labels, keep = _world()
    attack = train_shokri_attack(logits[1:], labels, keep[1:], key=jax.random.key(0), steps=200)
    scores = np.asarray(shokri_attack_scores(attack, logits[0], labels))
    assert scores.shape == (300,) and np.all((scores >= 0) & (scores <= 1))
    assert auc(scores, keep[0].astype(np.int8)) > 0.8
    sorted_attack = train_shokri_attack(logits[1:], labels, keep[1:], key=jax.random.key(0), steps=200,
                                        features="sorted")
    assert auc(np.asarray(shokri_attack_scores(sorted_attack, logits[0], labels)),
               keep[0].astype(np.int8)) > 0.8


def test_vectorized_classes_equal_a_per_class_loop():
    logits, labels, keep = _world(seed=1, n=120)
    key = jax.random.key(3)
    kw = dict(hidden=16, steps=40, batch_size=32)
    attack = train_shokri_attack(logits[1:], labels, keep[1:], key=key, learning_rate=1e-2, **kw)
    rows, member, counts, trained = shokri_mod._class_rows(labels, keep[1:], 4)
    feats = shokri_features(jnp.asarray(logits[1:]))
    for c in range(4):
        want = shokri_mod._train_class(jax.random.fold_in(key, c), feats, jnp.asarray(rows[c]),
                                       jnp.asarray(member[c]), jnp.asarray(counts[c]), 1e-2, **kw)
        for name in want:
            np.testing.assert_allclose(np.asarray(attack.params[name][c]), np.asarray(want[name]),
                                       rtol=1e-5, atol=1e-6)
    # Scoring = each example through its own class's model.
    got = np.asarray(shokri_attack_scores(attack, logits[0], labels, chunk_size=7))
    p = np.asarray(jax.nn.softmax(logits[0]))
    for j in range(0, 120, 17):
        prm = {k: np.asarray(v[labels[j]]) for k, v in attack.params.items()}
        h = np.maximum(p[j] @ prm["w1"] + prm["b1"], 0)
        want = 1 / (1 + np.exp(-(h @ prm["w2"] + prm["b2"])))
        np.testing.assert_allclose(got[j], want, rtol=1e-5)


def test_rows_and_untrained_classes():
    labels = np.array([0, 0, 1, 2])
    keep = np.array([[True, False, True, True], [False, True, True, True]])
    rows, member, counts, trained = shokri_mod._class_rows(labels, keep, 4)
    np.testing.assert_array_equal(counts, [4, 2, 2, 0])
    np.testing.assert_array_equal(trained, [True, False, False, False])  # class 1, 2: IN only
    assert set(map(tuple, rows[0, :4])) == {(0, 0), (0, 1), (1, 0), (1, 1)}
    logits = np.zeros((2, 4, 4), np.float32)
    attack = train_shokri_attack(logits, labels, keep, key=jax.random.key(0), steps=2)
    assert isinstance(attack, ShokriAttack)
    with pytest.raises(ValueError, match=r"class\(es\) \[1\] whose attack model was not trained"):
        shokri_attack_scores(attack, logits[0], np.array([0, 1, 0, 0]))


def test_validation():
    logits, labels, keep = _world(n=20)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="shadow_outputs must be 3-D"):
        train_shokri_attack(logits[0], labels, keep[0], key=key)
    with pytest.raises(ValueError, match="shadow_keep must be a boolean mask"):
        train_shokri_attack(logits, labels, keep[:, :5], key=key)
    with pytest.raises(ValueError, match=r"shadow_labels must be in \[0, 4\)"):
        train_shokri_attack(logits, labels + 4, keep, key=key)
    with pytest.raises(ValueError, match="features must be one of"):
        train_shokri_attack(logits, labels, keep, key=key, features="top3")
    with pytest.raises(ValueError, match="some class both IN and OUT"):
        train_shokri_attack(logits, labels, np.ones_like(keep), key=key)
