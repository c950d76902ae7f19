"""SELENA's Split-AI: the assignment, the sub-models' keep rows, the soft labels (against slow
loops written here), the spec part and the presets."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hampjax.defenses import split_ai_assignment, split_ai_keep, split_ai_soft_labels
from hampjax.training import (
    CrossEntropyParams,
    DistillationParams,
    RecipeSpec,
    SplitAISpec,
    preset_spec,
    teacher_spec,
)
from hampjax.training.presets import SELENA, UNDEFENDED


# ---------------------------------------------------------------------------------------------
# Assignment.


def test_every_member_is_excluded_from_exactly_L_submodels():
    members = np.random.default_rng(1).random(500) < 0.5
    excluded = split_ai_assignment(members, 25, 10, seed=0)
    assert excluded.shape == (500, 25) and excluded.dtype == np.bool_
    np.testing.assert_array_equal(excluded[members].sum(axis=1), 10)
    assert excluded[~members].all()  # no sub-model trains on a non-member
    # A member's choice does not depend on which other examples are members.
    np.testing.assert_array_equal(split_ai_assignment(500, 25, 10, seed=0)[members],
                                  excluded[members])


def test_assignment_is_seeded_and_uniform():
    a = split_ai_assignment(4000, 5, 2, seed=(0, 3))
    np.testing.assert_array_equal(a, split_ai_assignment(4000, 5, 2, seed=(0, 3)))
    assert not np.array_equal(a, split_ai_assignment(4000, 5, 2, seed=(0, 4)))
    assert not np.array_equal(a, split_ai_assignment(4000, 5, 2, seed=1))
    # Each of the C(5, 2) = 10 subsets about equally often (4000 / 10 = 400, sd ~19).
    codes = a.astype(int) @ (1 << np.arange(5))
    counts = np.bincount(codes, minlength=32)[codes.min():]
    subsets = counts[counts > 0]
    assert len(subsets) == math.comb(5, 2) and subsets.min() > 300 and subsets.max() < 500


@pytest.mark.parametrize("kwargs, match", [
    (dict(members=10, num_submodels=1, num_excluded=1), "num_submodels"),
    (dict(members=10, num_submodels=4, num_excluded=4), r"num_excluded must be an integer in \[1, 3\]"),
    (dict(members=10, num_submodels=4, num_excluded=0), "num_excluded"),
    (dict(members=0, num_submodels=4, num_excluded=1), "members"),
    (dict(members=np.ones(3, int), num_submodels=4, num_excluded=1), "members"),
    (dict(members=10, num_submodels=4, num_excluded=1, seed=-1), "seed"),
])
def test_assignment_errors_name_the_argument(kwargs, match):
    kwargs.setdefault("seed", 0)
    with pytest.raises(ValueError, match=match):
        split_ai_assignment(**kwargs)


def test_submodel_keep_rows_are_members_minus_excluded():
    keep = np.random.default_rng(0).random((3, 40)) < 0.5
    sub_keep, excluded = split_ai_keep(keep, 4, 1, assignment_seed=7)
    assert sub_keep.shape == (12, 40) and excluded.shape == (3, 40, 4)
    for m in range(3):
        np.testing.assert_array_equal(excluded[m], split_ai_assignment(keep[m], 4, 1,
                                                                       seed=(7, m)))
        for k in range(4):
            want = [bool(keep[m, n] and not excluded[m, n, k]) for n in range(40)]
            np.testing.assert_array_equal(sub_keep[m * 4 + k], want)
    # Prefix-stable: fewer models give the first rows (a finished run extends).
    np.testing.assert_array_equal(split_ai_keep(keep[:2], 4, 1, assignment_seed=7)[0],
                                  sub_keep[:8])
    with pytest.raises(ValueError, match="sub-model .* of model 0 has no member"):
        split_ai_keep(np.array([[True, False, False]]), 4, 3, assignment_seed=0)
    with pytest.raises(ValueError, match="keep must be a bool"):
        split_ai_keep(keep.astype(int), 4, 1, assignment_seed=0)


# ---------------------------------------------------------------------------------------------
# Soft labels.


def _slow_soft_labels(logits, excluded, average):
    k, n, c = logits.shape
    out = np.zeros((n, c))
    for i in range(n):
        chosen = [j for j in range(k) if excluded[i, j]]
        if average == "logits":
            out[i] = sum(np.asarray(logits[j, i], np.float64) for j in chosen) / len(chosen)
        else:
            probs = []
            for j in chosen:
                z = np.asarray(logits[j, i], np.float64)
                e = np.exp(z - z.max())
                probs.append(e / e.sum())
            out[i] = np.log(sum(probs) / len(chosen))
    return out


@pytest.mark.parametrize("average", ["logits", "probs"])
def test_soft_labels_equal_a_slow_loop(average):
    rng = np.random.default_rng(0)
    logits = (rng.normal(size=(6, 30, 5)) * 4).astype(np.float32)
    excluded = split_ai_assignment(rng.random(30) < 0.7, 6, 2, seed=0)
    got = split_ai_soft_labels(logits, excluded, average=average)
    assert got.shape == (30, 5) and got.dtype == jnp.float32
    np.testing.assert_allclose(got, _slow_soft_labels(logits, excluded, average), rtol=1e-5,
                               atol=1e-5)
    if average == "probs":  # softmax of the labels is the mean of the probabilities
        np.testing.assert_allclose(jnp.sum(jnp.exp(got), -1), 1.0, rtol=1e-5)
    # Under jit and vmap (a stack of models).
    jitted = jax.jit(split_ai_soft_labels, static_argnames="average")
    np.testing.assert_allclose(jitted(logits, excluded, average=average), got, rtol=1e-6)
    stacked = jax.vmap(lambda z, e: split_ai_soft_labels(z, e, average=average))(
        jnp.stack([logits, logits[::-1]]), jnp.stack([excluded, excluded]))
    np.testing.assert_allclose(stacked[1], _slow_soft_labels(logits[::-1], excluded, average),
                               rtol=1e-5, atol=1e-5)


def test_probability_average_stays_finite_for_extreme_logits():
    from hampjax.defenses import distillation_loss

    logits = np.array([[[0.0, 1000.0, -1000.0]], [[0.0, -1000.0, 1000.0]]], np.float32)
    labels = split_ai_soft_labels(logits, np.ones((1, 2), bool), average="probs")
    assert np.all(np.isfinite(labels))  # log(mean p) of a ~0 probability: ~ -1000, not -inf
    np.testing.assert_allclose(jnp.exp(labels[0, 1:]), [0.5, 0.5], rtol=1e-6)
    loss = distillation_loss(jnp.zeros((1, 3)), jnp.array([1]), labels, temperature=1.0,
                             kl_weight=1.0)
    assert np.isfinite(float(loss[0]))


def test_soft_label_errors():
    logits, excluded = np.zeros((3, 4, 2), np.float32), np.ones((4, 3), bool)
    with pytest.raises(ValueError, match="average"):
        split_ai_soft_labels(logits, excluded, average="mean")
    with pytest.raises(ValueError, match=r"excluded must be a boolean mask of shape \(4, 3\)"):
        split_ai_soft_labels(logits, excluded.T)
    with pytest.raises(ValueError, match="excluded must be a boolean mask"):
        split_ai_soft_labels(logits, excluded.astype(int))
    with pytest.raises(ValueError, match=r"submodel_logits must have shape \[K, N, C\]"):
        split_ai_soft_labels(logits[None], excluded)
    excluded[2] = False
    with pytest.raises(ValueError, match=r"excluded\[2\] has no True entry"):
        split_ai_soft_labels(logits, excluded)


# ---------------------------------------------------------------------------------------------
# Spec and presets.


def test_split_ai_spec_round_trips_and_is_checked():
    spec = preset_spec("selena", "purchase100")
    assert spec.split_ai == SplitAISpec(kind="selena")
    assert RecipeSpec.from_dict(spec.to_dict()) == spec
    changed = spec.replace(**{"split_ai.average": "probs", "split_ai.num_submodels": 5,
                              "split_ai.num_excluded": 2, "split_ai.assignment_seed": 3})
    assert RecipeSpec.from_dict(changed.to_dict()) == changed
    assert changed.split_ai.average == "probs"
    # The sub-models' recipe: the preset's teacher; the default teacher has no Split-AI.
    assert teacher_spec(spec) == spec.teacher
    assert teacher_spec(spec.replace(teacher=None)).split_ai == SplitAISpec()
    cases = [
        ({"split_ai.kind": "bagging"}, "split_ai.kind"),
        ({"split_ai.num_submodels": 1}, "split_ai.num_submodels"),
        ({"split_ai.num_excluded": 25}, r"split_ai.num_excluded must be in \[1, "
                                        r"split_ai.num_submodels=25\)"),
        ({"split_ai.num_excluded": 0}, "split_ai.num_excluded"),
        ({"split_ai.average": "mean"}, "split_ai.average"),
        ({"split_ai.assignment_seed": -1}, "split_ai.assignment_seed"),
        ({"split_ai.num_submodels": 2.5}, "split_ai.num_submodels"),
    ]
    for changes, match in cases:
        with pytest.raises(ValueError, match=match):
            spec.replace(**changes)
    plain = preset_spec("undefended", "purchase100")
    with pytest.raises(ValueError, match=r"split_ai.num_submodels is not used with "
                                         r"split_ai.kind='none'"):
        plain.replace(**{"split_ai.num_submodels": 5})
    with pytest.raises(ValueError, match="split_ai.kind='selena' needs a defense"):
        plain.replace(**{"split_ai.kind": "selena"})
    with pytest.raises(ValueError, match="split_ai.kind='selena' needs a defense"):
        spec.replace(defense=CrossEntropyParams(), teacher=None)
    with pytest.raises(ValueError, match=r"teacher.split_ai.kind='none'"):
        spec.replace(**{"teacher": spec.teacher.replace(
            defense=DistillationParams(), **{"split_ai.kind": "selena"})})
    bad = spec.to_dict()
    bad["split_ai"]["num_excluded"] = 30
    with pytest.raises(ValueError, match="split_ai.num_excluded"):
        RecipeSpec.from_dict(bad)


# The table of baselines.md section 4: distill lr, distill epochs, batch, sub-model epochs.
_TABLE = {"purchase100": (1.0, 200, 32, 100), "texas100": (1.0, 100, 32, 20),
          "location30": (1.0, 100, 64, 50), "cifar10": (0.5, 200, 64, 100),
          "cifar100": (1.0, 200, 64, 100)}


@pytest.mark.parametrize("dataset", list(_TABLE) + ["digits"])
def test_selena_presets(dataset):
    spec = preset_spec("selena", dataset)
    assert spec is SELENA[dataset] and spec.name == "selena"
    d = spec.defense
    assert (d.kind, d.temperature, d.kl_weight, d.kl_reduction) == (
        "distillation", 1.0, 1.0, "mean_over_classes")
    o = spec.optimizer
    assert (o.kind, o.momentum, o.weight_decay, o.coupled_weight_decay) == ("sgd", 0.99, 1e-5,
                                                                             True)
    assert spec.schedule.milestones == (60, 90, 150) and spec.schedule.factor == 0.1
    assert spec.reset_optimizer_each_epoch and spec.shuffle == "once"
    assert (spec.split_ai.num_submodels, spec.split_ai.num_excluded, spec.split_ai.average) == (
        25, 10, "logits")
    teacher = teacher_spec(spec)
    if dataset == "digits":
        assert spec.selection == "last" and teacher.epochs == spec.epochs == 30
        return
    lr, epochs, batch, sub_epochs = _TABLE[dataset]
    assert (o.learning_rate, spec.epochs, spec.batch_size, spec.selection) == (
        lr, epochs, batch, "best_val")
    assert teacher.epochs == sub_epochs and teacher.selection == "best_val"
    want = UNDEFENDED[dataset]
    if dataset == "texas100":  # the table's sub-models add wd 1e-3 to the undefended Adam
        want = want.replace(**{"optimizer.weight_decay": 1e-3})
    assert teacher == want.replace(name="selena_submodel")
