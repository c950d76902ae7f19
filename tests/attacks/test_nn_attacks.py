"""Tests for hampjax.attacks.nn: Nasr black-box attack and Salem top-3 attack."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hampjax.attacks import nn as nn_mod
from hampjax.attacks.nn import (
    NasrAttackModel,
    NNAttack,
    Top3Attack,
    nasr_features,
    nn_attack_scores,
    top3_attack_scores,
    top3_features,
    train_nn_attack,
    train_top3_attack,
)
from hampjax.metrics import auc

K = 10
EPOCHS = 30
BATCH = 32
TOP3_MAX_EPOCHS = 300


def _data(seed, n, shift=4.0, k=K):
    """n members (true-class logit shifted up: confident) then n non-members (flat logits)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, size=2 * n)
    logits = rng.normal(size=(2 * n, k)).astype(np.float32)
    logits[np.arange(n), labels[:n]] += shift
    member = np.r_[np.ones(n, np.int32), np.zeros(n, np.int32)]
    return logits, labels, member


TRAIN, VAL, EVAL = _data(0, 200), _data(1, 100), _data(2, 200)


def _train(key, train=TRAIN, **kw):
    kw = {"epochs": EPOCHS, "batch_size": BATCH, **kw}
    return train_nn_attack(*train, *VAL, key=key, **kw)


@pytest.fixture(scope="module")
def nasr_attack():
    return _train(jax.random.key(0))


# ------------------------------------------------------------------------------------------
# Nasr attack.
# ------------------------------------------------------------------------------------------


def test_nasr_learns_and_members_are_positive(nasr_attack):
    assert isinstance(nasr_attack, NNAttack)
    scores = np.asarray(nn_attack_scores(nasr_attack, EVAL[0], EVAL[1]))
    member = EVAL[2]
    assert scores.shape == (400,) and scores.dtype == np.float32
    assert np.all((scores >= 0) & (scores <= 1))
    assert auc(scores, member) > 0.9
    # Members are the positive class: they get HIGHER scores (not the authors' label-0 bug).
    assert scores[member == 1].mean() > scores[member == 0].mean() + 0.3


def test_nasr_inverted_labels_invert_scores():
    inverted = (TRAIN[0], TRAIN[1], 1 - TRAIN[2])
    attack = train_nn_attack(*inverted, VAL[0], VAL[1], 1 - VAL[2], key=jax.random.key(0),
                             epochs=EPOCHS, batch_size=BATCH)
    scores = np.asarray(nn_attack_scores(attack, EVAL[0], EVAL[1]))
    assert auc(scores, EVAL[2]) < 0.1


def test_nasr_keeps_best_validation_epoch(nasr_attack):
    a = nasr_attack
    acc = np.asarray(a.val_accuracy)
    assert acc.shape == (EPOCHS,) and np.asarray(a.train_loss).shape == (EPOCHS,)
    best = int(a.best_epoch)
    assert acc[best] == acc.max() == float(a.best_val_accuracy)
    assert best == int(np.argmax(acc))  # earliest best epoch
    # The returned params are that epoch's: recompute the validation accuracy from them.
    val_scores = np.asarray(nn_attack_scores(a, VAL[0], VAL[1]))
    recomputed = np.mean((val_scores >= 0.5) == (VAL[2] == 1))
    assert recomputed == pytest.approx(float(a.best_val_accuracy))
    assert np.asarray(a.train_loss)[-1] < np.asarray(a.train_loss)[0]


def test_nasr_learning_rate_decay_freezes_training():
    # Decay by 1e-30 from epoch 1: the parameters stop moving, so every later epoch has the
    # same validation accuracy. Same compiled program as the other tests (traced hparams).
    a = _train(jax.random.key(0), lr_decay_epoch=1, lr_decay_factor=1e-30)
    acc = np.asarray(a.val_accuracy)
    assert np.all(acc[1:] == acc[1])
    assert int(a.best_epoch) <= 1
    b = _train(jax.random.key(0), lr_decay_epoch=1, lr_decay_factor=1.0)
    assert not np.all(np.asarray(b.val_accuracy)[1:] == np.asarray(b.val_accuracy)[1])


def test_nasr_deterministic_for_fixed_key(nasr_attack):
    again = _train(jax.random.key(0))
    other = _train(jax.random.key(1))
    s0 = nn_attack_scores(nasr_attack, EVAL[0], EVAL[1])
    np.testing.assert_array_equal(s0, nn_attack_scores(again, EVAL[0], EVAL[1]))
    assert not np.array_equal(s0, nn_attack_scores(other, EVAL[0], EVAL[1]))


def test_nasr_architecture_and_init():
    model = NasrAttackModel(num_classes=K)
    feats = nasr_features(jnp.zeros((2, K)), jnp.zeros(2, jnp.int32))
    params = jax.jit(model.init)(jax.random.key(0), *feats)["params"]
    shapes = {name: p["kernel"].shape for name, p in params.items()}
    assert shapes == {
        "logits_0": (K, 1024), "logits_1": (1024, 512), "logits_2": (512, 64),
        "label_0": (K, 128), "label_1": (128, 64),
        "loss_0": (1, K), "loss_1": (K, 64),
        "combine_0": (192, 256), "combine_1": (256, 128), "combine_2": (128, 64),
        "output": (64, 1),
    }
    for p in params.values():
        assert np.all(np.asarray(p["bias"]) == 0)
    big = np.asarray(params["logits_1"]["kernel"])
    assert abs(big.std() - 0.01) < 5e-4 and abs(big.mean()) < 5e-4


def test_nasr_features_match_numpy():
    logits, labels, _ = _data(5, 4)
    z, onehot, loss = nasr_features(jnp.asarray(logits), jnp.asarray(labels))
    np.testing.assert_array_equal(z, logits)
    np.testing.assert_array_equal(onehot, np.eye(K)[labels])
    z64 = logits.astype(np.float64)
    ref = np.log(np.exp(z64).sum(-1)) - z64[np.arange(8), labels]
    np.testing.assert_allclose(np.asarray(loss)[:, 0], ref, rtol=1e-5)
    # Pure JAX: jit and vmap.
    for f in (jax.jit(nasr_features), jax.vmap(nasr_features)):
        out = f(jnp.asarray(logits), jnp.asarray(labels))
        np.testing.assert_allclose(out[2], loss, rtol=1e-6)


def test_nasr_scores_chunked_equal_unchunked(nasr_attack, monkeypatch):
    full = nn_attack_scores(nasr_attack, EVAL[0], EVAL[1])
    monkeypatch.setattr(nn_mod, "_SCORE_CHUNK", 150)
    np.testing.assert_allclose(nn_attack_scores(nasr_attack, EVAL[0], EVAL[1]), full, rtol=1e-6)


def test_nasr_validation(nasr_attack):
    key = jax.random.key(0)
    z, y, m = TRAIN
    vz, vy, vm = VAL

    def call(**kw):
        args = dict(train_logits=z, train_labels=y, train_is_member=m, val_logits=vz,
                    val_labels=vy, val_is_member=vm, key=key, epochs=1, batch_size=8)
        args.update(kw)
        return train_nn_attack(**args)

    cases = [
        (dict(train_logits=z[0]), "train_logits must be 2-D"),
        (dict(train_logits=z[:0], train_labels=y[:0], train_is_member=m[:0]),
         "train_logits must contain at least 1 example"),
        (dict(train_logits=z.astype(np.int32)), "train_logits must have a float"),
        (dict(train_logits=np.where(z > 3, np.inf, z)), "train_logits must be finite"),
        (dict(train_logits=z[:, :1], val_logits=vz[:, :1]), r"train_logits.shape\[-1\]"),
        (dict(train_labels=y[:5]), "train_labels must have shape"),
        (dict(train_labels=y + K), r"train_labels must be in \[0, 10\)"),
        (dict(train_is_member=np.ones_like(m)), "train_is_member must contain both"),
        (dict(train_is_member=m[[0, -1]]), "train_is_member must have shape"),
        (dict(val_is_member=2 * vm), "val_is_member must contain only 0"),
        (dict(val_logits=vz[:, :5]), "val_logits must have a last axis of size num_classes=10"),
        (dict(val_labels=vy.astype(np.float32)), "val_labels must be integer"),
        (dict(key=None), "key must be a jax.random key"),
        (dict(key=0), "key must be a jax.random key"),
        (dict(epochs=0), "epochs must be an integer >= 1"),
        (dict(epochs=2.0), "epochs must be an integer >= 1"),
        (dict(batch_size=0), "batch_size must be an integer >= 1"),
        (dict(learning_rate=0.0), r"learning_rate must be in \(0, inf\)"),
        (dict(learning_rate=np.inf), r"learning_rate must be in \(0, inf\)"),
        (dict(learning_rate=[1e-3]), "learning_rate must be a real scalar"),
        (dict(lr_decay_epoch=0), "lr_decay_epoch must be an integer >= 1"),
        (dict(lr_decay_factor=1.5), r"lr_decay_factor must be in \(0, 1\]"),
        (dict(lr_decay_factor=0.0), r"lr_decay_factor must be in \(0, 1\]"),
    ]
    for kw, match in cases:
        with pytest.raises(ValueError, match=match):
            call(**kw)

    with pytest.raises(ValueError, match="attack must be an NNAttack"):
        nn_attack_scores("attack", EVAL[0], EVAL[1])
    with pytest.raises(ValueError, match="logits must have a last axis of size num_classes=10"):
        nn_attack_scores(nasr_attack, EVAL[0][:, :5], EVAL[1] % 5)
    with pytest.raises(ValueError, match="labels must have shape"):
        nn_attack_scores(nasr_attack, EVAL[0], EVAL[1][:3])
    with pytest.raises(ValueError, match="logits must be finite"):
        nn_attack_scores(nasr_attack, np.full((2, K), np.nan, np.float32), EVAL[1][:2])
    with pytest.raises(ValueError, match="logits must be 2-D"):
        nn_attack_scores(nasr_attack, EVAL[0][0], EVAL[1][0])


# ------------------------------------------------------------------------------------------
# Top-3 attack.
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def top3_attack():
    return train_top3_attack(TRAIN[0], TRAIN[2], key=jax.random.key(0), max_epochs=TOP3_MAX_EPOCHS)


def test_top3_learns_and_members_are_positive(top3_attack):
    assert isinstance(top3_attack, Top3Attack)
    scores = np.asarray(top3_attack_scores(top3_attack, EVAL[0]))
    member = EVAL[2]
    assert scores.shape == (400,) and np.all((scores >= 0) & (scores <= 1))
    assert auc(scores, member) > 0.9
    assert scores[member == 1].mean() > scores[member == 0].mean() + 0.3


def _keras_stop_epoch(history, patience, min_delta):
    """Slow reference of the early-stopping rule: number of epochs run."""
    best, wait = np.inf, 0
    for epoch, loss in enumerate(history):
        if loss < best - min_delta:
            best, wait = loss, 0
        else:
            wait += 1
        if wait >= patience:
            return epoch + 1
    return len(history)


def test_top3_early_stopping_rule(top3_attack):
    n = int(top3_attack.num_epochs)
    hist = np.asarray(top3_attack.train_loss)
    assert hist.shape == (TOP3_MAX_EPOCHS,)
    assert 15 < n < TOP3_MAX_EPOCHS  # stopped early on this easy problem
    assert np.all(np.isfinite(hist[:n])) and np.all(np.isnan(hist[n:]))
    assert _keras_stop_epoch(hist[:n], 15, 5e-4) == n
    # A huge min_delta stops after exactly patience + 1 epochs (only epoch 0 improves).
    a = train_top3_attack(TRAIN[0], TRAIN[2], key=jax.random.key(0),
                          max_epochs=TOP3_MAX_EPOCHS, patience=3, min_delta=1e3)
    assert int(a.num_epochs) == 4
    # max_epochs bounds the run when patience is never exhausted.
    a = train_top3_attack(TRAIN[0], TRAIN[2], key=jax.random.key(0),
                          max_epochs=TOP3_MAX_EPOCHS, patience=TOP3_MAX_EPOCHS + 1, min_delta=0.0)
    assert int(a.num_epochs) == TOP3_MAX_EPOCHS
    assert np.all(np.isfinite(np.asarray(a.train_loss)))


def test_top3_deterministic_for_fixed_key(top3_attack):
    again = train_top3_attack(TRAIN[0], TRAIN[2], key=jax.random.key(0), max_epochs=TOP3_MAX_EPOCHS)
    s0 = top3_attack_scores(top3_attack, EVAL[0])
    np.testing.assert_array_equal(s0, top3_attack_scores(again, EVAL[0]))
    other = train_top3_attack(TRAIN[0], TRAIN[2], key=jax.random.key(1), max_epochs=TOP3_MAX_EPOCHS)
    assert not np.array_equal(s0, top3_attack_scores(other, EVAL[0]))


def test_top3_features_match_numpy():
    logits = EVAL[0][:16]
    z = logits.astype(np.float64)
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    ref = -np.sort(-p, axis=-1)[:, :3]
    got = top3_features(jnp.asarray(logits))
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(jax.jit(top3_features)(logits), got, rtol=1e-6)
    np.testing.assert_allclose(jax.vmap(top3_features)(jnp.asarray(logits)), got, rtol=1e-6)
    # Probabilities in, via log: the same features.
    np.testing.assert_allclose(top3_features(jnp.log(jnp.asarray(p, jnp.float32))), got, rtol=1e-5)


def test_top3_validation(top3_attack):
    z, _, m = TRAIN
    key = jax.random.key(0)
    cases = [
        (dict(train_logits=z[:, :2]), "train_logits must have at least 3 classes"),
        (dict(train_logits=z[0]), "train_logits must be 2-D"),
        (dict(train_logits=z.astype(np.int32)), "train_logits must have a float"),
        (dict(train_logits=np.where(z > 3, np.nan, z)), "train_logits must be finite"),
        (dict(train_is_member=m[[0, -1]]), "train_is_member must have shape"),
        (dict(train_is_member=np.zeros_like(m)), "train_is_member must contain both"),
        (dict(key=None), "key must be a jax.random key"),
        (dict(max_epochs=0), "max_epochs must be an integer >= 1"),
        (dict(batch_size=-1), "batch_size must be an integer >= 1"),
        (dict(learning_rate=-0.1), r"learning_rate must be in \(0, inf\)"),
        (dict(patience=0), "patience must be an integer >= 1"),
        (dict(min_delta=-1e-3), r"min_delta must be in \[0, inf\)"),
        (dict(min_delta=[0.1]), "min_delta must be a real scalar"),
    ]
    for kw, match in cases:
        args = dict(train_logits=z, train_is_member=m, key=key, max_epochs=1)
        args.update(kw)
        with pytest.raises(ValueError, match=match):
            train_top3_attack(**args)
    with pytest.raises(ValueError, match="attack must be a Top3Attack"):
        top3_attack_scores(None, EVAL[0])
    with pytest.raises(ValueError, match="logits must have at least 3 classes"):
        top3_attack_scores(top3_attack, EVAL[0][:, :2])
    with pytest.raises(ValueError, match="logits must be finite"):
        top3_attack_scores(top3_attack, np.full((2, K), np.inf, np.float32))
