"""Tests for hampjax.attacks.shift: fitted score attacks under non-member distribution shift."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from hampjax.attacks.shift import (
    COUNT_KEYS,
    FLOAT_KEYS,
    SCORE_ATTACKS,
    FittedScoreAttack,
    calibration_summary,
    evaluate_shift,
    fit_score_attacks,
    max_prediction_score,
)

# --------------------------------------------------------------------------------------------
# Toy end-to-end (Theorem 1, Hintersdorf et al. 2022): overfit ReLU MLPs on Gaussian blobs.
# --------------------------------------------------------------------------------------------

DIM, CLASSES, PER_SPLIT = 10, 4, 100


class _MLP(nn.Module):
    layer_norm: bool = False

    @nn.compact
    def __call__(self, x):
        if self.layer_norm:
            x = nn.LayerNorm()(x)  # scale-invariant input: f(delta x) == f(x) up to eps
        for width in (64, 64):
            x = nn.relu(nn.Dense(width)(x))
        return nn.Dense(CLASSES)(x)


def _blobs(key, n):
    kc, ky, kx = jax.random.split(key, 3)
    centers = 0.4 * jax.random.normal(kc, (CLASSES, DIM))
    y = jax.random.randint(ky, (n,), 0, CLASSES)
    return centers[y] + jax.random.normal(kx, (n, DIM)), y


def _train_pair(model, key, x, y, steps=300):
    """Train two models (target, shadow) at once: vmap over stacked params, full batch Adam."""
    tx = optax.adam(1e-2)

    @jax.jit
    def run(keys, x, y):
        def one(k, xs, ys):
            params = model.init(k, xs[:1])

            def step(carry, _):
                params, opt = carry
                loss = lambda p: optax.softmax_cross_entropy_with_integer_labels(
                    model.apply(p, xs), ys).mean()
                grads = jax.grad(loss)(params)
                updates, opt = tx.update(grads, opt, params)
                return (optax.apply_updates(params, updates), opt), None

            (params, _), _ = jax.lax.scan(step, (params, tx.init(params)), None, length=steps)
            return params

        return jax.vmap(one)(keys, x, y)

    return run(jax.random.split(key, 2), x, y)


@pytest.fixture(scope="module")
def toy():
    x, y = _blobs(jax.random.key(0), 4 * PER_SPLIT)
    x, y = x.reshape(4, PER_SPLIT, DIM), y.reshape(4, PER_SPLIT)
    # Splits: 0 target members, 1 target non-members, 2 shadow members, 3 shadow non-members.
    members_x, members_y = x[jnp.array([0, 2])], y[jnp.array([0, 2])]
    out = {}
    for layer_norm in (False, True):
        model = _MLP(layer_norm=layer_norm)
        params = _train_pair(model, jax.random.key(1), members_x, members_y)
        target = jax.tree.map(lambda a: a[0], params)
        shadow = jax.tree.map(lambda a: a[1], params)
        apply = jax.jit(model.apply)
        shadow_logits = jnp.concatenate([apply(shadow, x[2]), apply(shadow, x[3])])
        shadow_labels = jnp.concatenate([y[2], y[3]])
        shadow_member = np.repeat([1, 0], PER_SPLIT)
        attacks = fit_score_attacks(shadow_logits, shadow_labels, shadow_member,
                                    key=jax.random.key(2), top3_max_epochs=30)
        sets = {
            "test": (apply(target, x[1]), y[1]),
            "scaled_1e3": (apply(target, 1e3 * x[1]), y[1]),
            "scaled_nolabels": (apply(target, 1e3 * x[1]), None),
        }
        results = evaluate_shift(attacks, apply(target, x[0]), y[0], sets)
        train_acc = float(jnp.mean(jnp.argmax(apply(target, x[0]), -1) == y[0]))
        test_acc = float(jnp.mean(jnp.argmax(apply(target, x[1]), -1) == y[1]))
        out[layer_norm] = dict(attacks=attacks, results=results, train_acc=train_acc,
                               test_acc=test_acc)
    return out


def test_toy_models_overfit(toy):
    for run in toy.values():
        assert run["train_acc"] >= 0.97
        assert run["train_acc"] - run["test_acc"] >= 0.05  # a generalization gap to attack


def test_toy_scaled_nonmembers_are_flagged_as_members(toy):
    res = toy[False]["results"]
    for name in ("max_score", "entropy"):
        assert res["scaled_1e3"][name]["fpr"] >= 0.95, (name, res["scaled_1e3"][name]["fpr"])
        assert res["test"][name]["fpr"] < 0.9  # the unscaled FPR is far lower
    # The label-free attacks see the same logits with or without labels.
    for name in ("max_score", "entropy", "top3"):
        assert res["scaled_nolabels"][name]["fpr"] == res["scaled_1e3"][name]["fpr"]


def test_toy_label_aware_attack_splits_by_argmax(toy):
    r = toy[False]["results"]["scaled_1e3"]["loss"]
    assert not r["skipped"]
    assert r["num_argmax_eq_label"] > 0 and r["num_argmax_ne_label"] > 0
    # Scaled: member iff the limiting argmax equals the label (loss -> 0 or -> infinity).
    assert r["fpr_argmax_eq_label"] >= 0.95
    assert r["fpr_argmax_ne_label"] <= 0.05
    skipped = toy[False]["results"]["scaled_nolabels"]["loss"]
    assert skipped["skipped"] and "scaled_nolabels" in skipped["skip_reason"]


def test_toy_layer_norm_negative_control(toy):
    res = toy[True]["results"]
    for name in ("max_score", "entropy", "top3"):
        diff = abs(res["scaled_1e3"][name]["fpr"] - res["test"][name]["fpr"])
        assert diff <= 0.02, (name, res["test"][name]["fpr"], res["scaled_1e3"][name]["fpr"])


def test_fit_score_attacks_structure(toy):
    attacks = toy[False]["attacks"]
    assert list(attacks) == list(SCORE_ATTACKS)
    for name, attack in attacks.items():
        assert attack.name == name and attack.num_classes == CLASSES
        assert (attack.top3 is not None) == (name == "top3")
        assert attack.needs_labels == (name == "loss")
    assert attacks["top3"].threshold == 0.0


# --------------------------------------------------------------------------------------------
# Threshold fitting against brute force.
# --------------------------------------------------------------------------------------------


def _np_scores(name, z, y=None):
    z = np.asarray(z, np.float64)
    top = z.max(1, keepdims=True)
    if name == "max_score":
        first = np.argmax(z, 1)
        others = np.where(np.arange(z.shape[1]) == first[:, None], -np.inf, z - top)
        return -np.log(np.sum(np.exp(others), 1))
    logp = z - top - np.log(np.sum(np.exp(z - top), 1, keepdims=True))
    if name == "entropy":
        return np.sum(np.exp(logp) * logp, 1)
    assert name == "loss"
    onehot = np.arange(z.shape[1]) == np.asarray(y)[:, None]
    z_y = z[onehot]
    rest = np.where(onehot, -np.inf, z)
    m = rest.max(1)
    return z_y - (m + np.log(np.sum(np.exp(rest - m[:, None]), 1)))


def _shadow(seed=0, n=60, c=3):
    rng = np.random.default_rng(seed)
    member = np.repeat([1, 0], n // 2)
    z = rng.normal(size=(n, c)) * np.where(member[:, None] == 1, 3.0, 1.0)
    y = rng.integers(0, c, n)
    return jnp.asarray(z, jnp.float32), jnp.asarray(y), member


def test_thresholds_match_brute_force():
    z, y, member = _shadow()
    names = ("max_score", "entropy", "loss")
    fitted = fit_score_attacks(z, y, member, key=jax.random.key(0), names=names)
    for name, criterion in (("max_score", "youden"), ("entropy", "accuracy"), ("loss", "youden")):
        s = np.asarray(fitted[name].score(z, y), np.float64)
        np.testing.assert_allclose(s, _np_scores(name, z, y), rtol=1e-4, atol=1e-5)
        best, best_t = -np.inf, None
        for t in np.concatenate([[np.inf], np.sort(np.unique(s))[::-1]]):  # high to low
            pred = s >= t
            tpr, fpr = pred[member == 1].mean(), pred[member == 0].mean()
            value = tpr - fpr if criterion == "youden" else np.mean(pred == (member == 1))
            if value > best + 1e-12:
                best, best_t = value, t
        assert fitted[name].threshold == best_t, name


def test_entropy_threshold_maximizes_accuracy_not_youden_on_unbalanced_data():
    # 3 members (low entropy), 1 non-member: accuracy and Youden's J pick different points.
    z = jnp.array([[5.0, 0.0], [4.0, 0.0], [0.2, 0.0], [0.0, 0.0]])
    member = np.array([1, 1, 1, 0])
    fitted = fit_score_attacks(z, None, member, key=jax.random.key(0), names=("entropy",))
    s = np.asarray(fitted["entropy"].score(z))
    assert np.asarray(fitted["entropy"].predict(z)).tolist() == [True, True, True, False]
    assert fitted["entropy"].threshold == s[2]


def test_fitted_attack_is_a_pytree_under_jit_and_vmap():
    z, y, member = _shadow()
    fitted = fit_score_attacks(z, y, member, key=jax.random.key(0), names=("max_score", "loss"))
    for attack in fitted.values():
        eager = attack.predict(z, y)
        jitted = jax.jit(lambda a, zz, yy: a.predict(zz, yy))(attack, z, y)
        np.testing.assert_array_equal(jitted, eager)
        batched = jax.vmap(lambda zz, yy: attack.score(zz, yy))(
            z.reshape(6, 10, 3), y.reshape(6, 10))
        np.testing.assert_allclose(batched.reshape(-1), attack.score(z, y), rtol=1e-6)
        leaves, treedef = jax.tree.flatten(attack)
        assert jax.tree.unflatten(treedef, leaves) == attack


# --------------------------------------------------------------------------------------------
# evaluate_shift against a NumPy reference on hand-built logits.
# --------------------------------------------------------------------------------------------


def _np_reference(name, t, mz, my, nz, ny):
    ms, ns = _np_scores(name, mz, my), _np_scores(name, nz, ny)
    mp, npred = ms >= t, ns >= t
    pm, pn = max_reference(mz), max_reference(nz)
    tp, fn, fp, tn = mp.sum(), (~mp).sum(), npred.sum(), (~npred).sum()
    scores = np.concatenate([ms, ns])
    labels = np.concatenate([np.ones(ms.size), np.zeros(ns.size)])
    fpr95 = min((ns >= u).mean() for u in scores if (ms >= u).mean() >= 0.95)

    def mean(v, m):
        return v[m].mean() if m.any() else np.nan

    correct = np.argmax(np.asarray(nz), 1) == np.asarray(ny)
    return {
        "fpr": fp / (fp + tn), "recall": tp / (tp + fn),
        "precision": tp / (tp + fp) if tp + fp else np.nan,
        "accuracy": (tp + tn) / scores.size,
        "auroc": roc_auc_score(labels, scores), "aupr": average_precision_score(labels, scores),
        "fpr@95%tpr": fpr95,
        "mmps_tp": mean(pm, mp), "mmps_fn": mean(pm, ~mp), "mmps_fp": mean(pn, npred),
        "mmps_tn": mean(pn, ~npred),
        "fpr_argmax_eq_label": mean(npred.astype(float), correct),
        "fpr_argmax_ne_label": mean(npred.astype(float), ~correct),
        "tp": tp, "fp": fp, "fn": fn, "tn": tn,
        "num_argmax_eq_label": correct.sum(), "num_argmax_ne_label": (~correct).sum(),
    }


def max_reference(z):
    p = np.exp(np.asarray(z, np.float64))
    return (p / p.sum(1, keepdims=True)).max(1)


def _hand_data(seed=1):
    rng = np.random.default_rng(seed)
    mz = (rng.normal(size=(40, 3)) * 2.0).astype(np.float32)
    nz = rng.normal(size=(30, 3)).astype(np.float32)
    my, ny = rng.integers(0, 3, 40), rng.integers(0, 3, 30)
    return mz, my, nz, ny


def _mid_threshold(name, mz, my, nz, ny):
    """A threshold halfway between two adjacent reference scores (no float32 flips)."""
    s = np.sort(np.concatenate([_np_scores(name, mz, my), _np_scores(name, nz, ny)]))
    i = s.size // 2
    return float((s[i] + s[i + 1]) / 2)


@pytest.mark.parametrize("name", ["max_score", "entropy", "loss"])
def test_evaluate_shift_matches_numpy_reference(name):
    mz, my, nz, ny = _hand_data()
    t = _mid_threshold(name, mz, my, nz, ny)
    attack = FittedScoreAttack(name, 3, t)
    out = evaluate_shift({name: attack}, mz, my, {"set": (nz, ny)})
    got, ref = out["set"][name], _np_reference(name, t, mz, my, nz, ny)
    for key, value in ref.items():
        if isinstance(value, (int, np.integer)):
            assert got[key] == value, key
        else:
            np.testing.assert_allclose(got[key], value, rtol=1e-6, atol=1e-9, err_msg=key)
    assert got["threshold"] == t and got["num_members"] == 40 and got["num_nonmembers"] == 30
    assert not got["skipped"] and got["skip_reason"] is None
    assert set(got) == {*FLOAT_KEYS, *COUNT_KEYS, "skipped", "skip_reason"}
    assert all(isinstance(got[k], float) for k in FLOAT_KEYS)
    assert all(isinstance(got[k], int) for k in COUNT_KEYS)


def test_evaluate_shift_empty_cells_are_nan():
    mz, my, nz, ny = _hand_data()
    out = evaluate_shift({"m": FittedScoreAttack("max_score", 3, 1e9)}, mz, my, {"s": (nz, None)})
    r = out["s"]["m"]
    assert r["tp"] == r["fp"] == 0 and r["fpr"] == 0.0 and r["recall"] == 0.0
    assert np.isnan(r["precision"]) and np.isnan(r["mmps_tp"]) and np.isnan(r["mmps_fp"])
    np.testing.assert_allclose(r["mmps_fn"], max_reference(mz).mean(), rtol=1e-12)
    np.testing.assert_allclose(r["mmps_tn"], max_reference(nz).mean(), rtol=1e-12)
    # No labels: the argmax split is NaN with zero counts.
    assert np.isnan(r["fpr_argmax_eq_label"]) and np.isnan(r["fpr_argmax_ne_label"])
    assert r["num_argmax_eq_label"] == r["num_argmax_ne_label"] == 0


def test_evaluate_shift_skips_label_aware_attacks_with_reasons():
    mz, my, nz, ny = _hand_data()
    attacks = {"max_score": FittedScoreAttack("max_score", 3, 0.5),
               "loss": FittedScoreAttack("loss", 3, 0.0)}
    out = evaluate_shift(attacks, mz, my, {"labelled": (nz, ny), "unlabelled": (nz, None)})
    assert list(out) == ["labelled", "unlabelled"]
    assert list(out["unlabelled"]) == ["max_score", "loss"]
    assert not out["labelled"]["loss"]["skipped"]
    skipped = out["unlabelled"]["loss"]
    assert skipped["skipped"] and "'unlabelled' has no labels" in skipped["skip_reason"]
    assert all(np.isnan(skipped[k]) for k in FLOAT_KEYS)
    assert skipped["tp"] == 0 and skipped["num_nonmembers"] == 30 and skipped["num_members"] == 40
    assert set(skipped) == set(out["labelled"]["loss"])
    # No member labels: skipped on every set, with that reason.
    out = evaluate_shift(attacks, mz, None, {"labelled": (nz, ny)})
    assert out["labelled"]["loss"]["skipped"]
    assert "member_labels is None" in out["labelled"]["loss"]["skip_reason"]
    assert not out["labelled"]["max_score"]["skipped"]


def test_max_prediction_score_and_calibration_summary():
    mz, my, _, _ = _hand_data()
    np.testing.assert_allclose(max_prediction_score(mz), max_reference(mz), rtol=1e-12)
    out = calibration_summary(mz, my)
    p = np.exp(mz.astype(np.float64))
    p /= p.sum(1, keepdims=True)
    conf, correct = p.max(1), np.argmax(p, 1) == my
    ece = oe = 0.0
    for b in range(15):
        lo, hi = b / 15, (b + 1) / 15
        sel = (conf > lo) & (conf <= hi)
        if sel.any():
            gap = conf[sel].mean() - correct[sel].mean()
            ece += sel.mean() * abs(gap)
            oe += sel.mean() * conf[sel].mean() * max(gap, 0.0)
    assert out["accuracy"] == pytest.approx(correct.mean())
    assert out["mmps"] == pytest.approx(conf.mean())
    assert out["ece"] == pytest.approx(ece) and out["oe"] == pytest.approx(oe)
    assert out["num_examples"] == 40


# --------------------------------------------------------------------------------------------
# Validation errors.
# --------------------------------------------------------------------------------------------


def test_fit_score_attacks_validation():
    z, y, member = _shadow()
    key = jax.random.key(0)
    cases = [
        (dict(shadow_logits=z[:, :1]), "shadow_logits.shape\\[-1\\]"),
        (dict(shadow_logits=z[0]), "shadow_logits must be 2-D"),
        (dict(shadow_logits=jnp.zeros((60, 3), jnp.int32)), "float"),
        (dict(shadow_logits=z.at[0, 0].set(jnp.inf)), "finite"),
        (dict(shadow_is_member=np.ones(60)), "shadow_is_member must contain both"),
        (dict(shadow_is_member=member[:-2]), "shadow_is_member must have shape"),
        (dict(shadow_labels=y[:-1]), "labels must have shape"),
        (dict(shadow_labels=y + 5), "labels must be in"),
        (dict(shadow_labels=None), "shadow_labels must be given"),
        (dict(names=()), "names must be a non-empty"),
        (dict(names="loss"), "names must be a non-empty"),
        (dict(names=("loss", "bogus")), "names must be one of"),
        (dict(names=("loss", "loss")), "must not repeat"),
        (dict(shadow_logits=z[:, :2], shadow_labels=y % 2, names=("top3",)), "at least 3 classes"),
        (dict(key=None), "key must be a jax.random key"),
        (dict(top3_max_epochs=0), "top3_max_epochs"),
    ]
    for overrides, match in cases:
        kw = dict(shadow_logits=z, shadow_labels=y, shadow_is_member=member, key=key,
                  names=("max_score", "loss"), top3_max_epochs=5)
        kw.update(overrides)
        args = (kw.pop("shadow_logits"), kw.pop("shadow_labels"), kw.pop("shadow_is_member"))
        with pytest.raises(ValueError, match=match):
            fit_score_attacks(*args, **kw)


def test_evaluate_shift_validation():
    mz, my, nz, ny = _hand_data()
    good = {"m": FittedScoreAttack("max_score", 3, 0.5)}
    cases = [
        ((), dict(attacks={}), "attacks must be a non-empty mapping"),
        ((), dict(attacks={"m": "x"}), "must be a FittedScoreAttack"),
        ((), dict(attacks={1: good["m"]}), "attacks keys must be strings"),
        ((), dict(attacks={"m": FittedScoreAttack("other", 3, 0.5)}), "name must be one of"),
        ((), dict(attacks={"m": FittedScoreAttack("max_score", 3, np.nan)}),
         "threshold must be a finite"),
        ((), dict(attacks={"m": FittedScoreAttack("max_score", 4, 0.5)}), "num_classes=4"),
        ((), dict(member_logits=mz[0]), "member_logits must be 2-D"),
        ((), dict(member_logits=mz[:0]), "at least 1 example"),
        ((), dict(member_logits=np.where(mz > 0, np.nan, mz)), "finite"),
        ((), dict(member_labels=my[:-1]), "member_labels must have shape"),
        ((), dict(member_labels=my + 3), "member_labels must be in"),
        ((), dict(nonmember_sets={}), "nonmember_sets must be a non-empty mapping"),
        ((), dict(nonmember_sets={"s": nz}), "must be a pair"),
        ((), dict(nonmember_sets={1: (nz, ny)}), "keys must be strings"),
        ((), dict(nonmember_sets={"s": (nz[:, :2], None)}), "num_classes=3"),
        ((), dict(nonmember_sets={"s": (nz, ny[:-1])}), "labels must have shape"),
        ((), dict(nonmember_sets={"s": (nz, ny.astype(np.float32))}), "integer class indices"),
    ]
    for _, overrides, match in cases:
        kw = dict(attacks=good, member_logits=mz, member_labels=my, nonmember_sets={"s": (nz, ny)})
        kw.update(overrides)
        with pytest.raises(ValueError, match=match):
            evaluate_shift(kw["attacks"], kw["member_logits"], kw["member_labels"],
                           kw["nonmember_sets"])


def test_score_predict_and_summary_validation():
    mz, my, _, _ = _hand_data()
    loss = FittedScoreAttack("loss", 3, 0.0)
    with pytest.raises(ValueError, match="labels must be given"):
        loss.score(mz)
    with pytest.raises(ValueError, match="num_classes=3"):
        FittedScoreAttack("max_score", 3, 0.0).predict(mz[:, :2])
    with pytest.raises(ValueError, match="logits must be 2-D"):
        max_prediction_score(mz[0])
    with pytest.raises(ValueError, match="labels must be given"):
        calibration_summary(mz, None)
    with pytest.raises(ValueError, match="num_bins"):
        calibration_summary(mz, my, num_bins=0)
    with pytest.raises(ValueError, match="^labels must be in"):
        calibration_summary(mz, my + 3)
