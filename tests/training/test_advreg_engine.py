"""AdvReg's game in the engine (hampjax.training.advreg): the schedule against a slow
reference of the authors' loop, the reference set, train_many on 2 tiny models, vmap ==
one model at a time, the spec and its presets."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from hampjax.models import get_model, model_functions
from hampjax.training import (
    PRESETS,
    AdversarySpec,
    RecipeSpec,
    advreg_recipe,
    model_key,
    preset_spec,
    train_many,
)
from hampjax.training import advreg, engine

N, D, C, B = 64, 6, 3, 8
MEMBERS = (32, 16)  # c = 4 and 2 full batches: 2 rounds and 1 round


# ---------------------------------------------------------------------------------------------
# The schedule against a slow reference of the authors' loop.


def slow_round(c: int, i: int, steps: int) -> tuple[int, int]:
    """One call of the authors' loop: walk the c batches, skip the first ``steps * i mod c``,
    stop after ``steps``; returns (first batch, steps made)."""
    skip = (steps * i) % c
    made = 0
    for batch in range(c):
        if batch < skip:
            continue
        if batch - skip >= steps:
            break
        made += 1
    return skip, made


def slow_epoch_counts(n: int, r: int, spec: RecipeSpec, *, warmup: bool) -> tuple[int, int]:
    """(inference-model steps, classifier game steps) of one epoch of one model."""
    adv = spec.adversary
    if warmup:
        b = adv.warmup_attack_batch_size
        return adv.warmup_attack_epochs * min(math.ceil(n / b), math.ceil(r / b)), 0
    c = n // spec.batch_size
    attack = classify = 0
    for i in range(c // 2):
        attack += slow_round(c, i, adv.attack_steps)[1]
        classify += slow_round(c, i, adv.classifier_steps)[1]
    return attack, classify


@pytest.mark.parametrize("steps", [1, 2, 52])
def test_round_schedule_matches_the_authors_loop(steps):
    cases = [(c, i) for c in (1, 2, 3, 7, 26, 53, 156, 157) for i in range(c // 2 + 3)]
    c, i = np.array(cases).T  # rounds past the last one make no steps
    a_start, a_count, k_start, k_count = map(np.asarray, advreg.round_schedule(c, i, steps, 2))
    for j, (cj, ij) in enumerate(cases):
        if ij < cj // 2:
            assert (a_start[j], a_count[j]) == slow_round(cj, ij, steps)
            assert (k_start[j], k_count[j]) == slow_round(cj, ij, 2)
        else:
            assert a_count[j] == k_count[j] == 0


# ---------------------------------------------------------------------------------------------
# Reference set.


def test_reference_set_is_the_non_members():
    keep = np.random.default_rng(0).random((3, 40)) < 0.5
    np.testing.assert_array_equal(advreg.reference_mask(keep), ~keep)
    half = advreg.reference_half(40)
    assert half.sum() == 20
    np.testing.assert_array_equal(advreg.reference_half(40), half)  # fixed
    np.testing.assert_array_equal(advreg.reference_mask(keep, "disjoint"), ~keep & half)
    with pytest.raises(ValueError, match="reference"):
        advreg.reference_mask(keep, "pool")


# ---------------------------------------------------------------------------------------------
# The engine on 2 tiny models.


def _recipe(**changes) -> "advreg.Recipe":
    return advreg_recipe("digits", epochs=2, batch_size=B, selection="best_val", **{
        "adversary.attack_batch_size": 4, "adversary.attack_steps": 3,
        "adversary.warmup_batch_size": 32, "adversary.warmup_attack_epochs": 1,
        "adversary.warmup_attack_batch_size": 8, "adversary.attack_arch": "relaxloss_cifar",
        **changes})


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, D)).astype(np.float32)
    y = rng.integers(0, C, N)
    order = rng.permutation(N)
    keep = np.zeros((2, N), bool)
    keep[0, order[:MEMBERS[0]]] = True
    keep[1, order[MEMBERS[0]:sum(MEMBERS)]] = True
    # "disjoint" reference: the non-members outside the fixed half are never read, so
    # examples in no model and outside the half may hold NaN without reaching any model.
    unseen = ~keep.any(axis=0) & ~advreg.reference_half(N)
    assert unseen.sum() >= 4
    x[unseen] = np.nan
    val = (rng.normal(size=(12, D)).astype(np.float32), rng.integers(0, C, 12))
    model = get_model("fc", C, hidden_sizes=(8,))
    recipe = _recipe(**{"adversary.reference": "disjoint"})
    result = train_many(model, recipe, x, y, keep, seed=0, val_data=val,
                        devices=jax.devices()[:1], chunk_size=2, progress=False)
    return dict(x=x, y=y, keep=keep, val=val, model=model, recipe=recipe, result=result)


def test_train_many_trains_and_records(setup):
    result, keep = setup["result"], setup["keep"]
    assert result.train_loss.shape == result.val_acc.shape == (2, 2)
    assert np.isfinite(result.train_loss).all() and np.isfinite(result.val_acc).all()
    assert all(np.isfinite(leaf).all() for leaf in jax.tree_util.tree_leaves(result.variables))
    np.testing.assert_array_equal(result.best_epoch, [1, 1])  # the warm-up is never selected
    np.testing.assert_array_equal(result.keep, keep)
    assert result.performance["loop"] == "scan"


def _by_hand(setup, epochs):
    """The engine's chunk loop written out, on the programs train_many compiled (cached)."""
    keep, recipe = setup["keep"], setup["recipe"]
    init_fn, apply_fn = model_functions(setup["model"])
    programs = advreg.build_programs(setup["model"], init_fn, apply_fn, recipe, keep=keep,
                                     sample_x=setup["x"][:1], has_val=True,
                                     eval_batch_size=1024, donate=False)
    mesh = Mesh(np.asarray(jax.devices()[:1]), ("models",))
    sharded, replicated = NamedSharding(mesh, PartitionSpec("models")), NamedSharding(
        mesh, PartitionSpec())
    put = lambda a: jax.device_put(a, replicated)
    data = engine.TrainData(put(setup["x"]), put(setup["y"].astype(np.int32)),
                            put(setup["val"][0]), put(setup["val"][1].astype(np.int32)))
    keys = jax.device_put(jax.vmap(lambda i: model_key(0, i))(jnp.arange(2)), sharded)
    state = jax.device_put(programs.init_chunk(keys, data.x[:1]), sharded)
    keep_chunk = jax.device_put(keep, sharded)
    states = []
    for epoch in range(epochs):
        state, _ = programs.epoch_fn(state, keys, keep_chunk, jnp.int32(epoch), data)
        states.append(state)
    return states


def test_schedule_counts_in_the_engine(setup):
    keep, recipe = setup["keep"], setup["recipe"]
    states = _by_hand(setup, 2)
    references = advreg.reference_mask(keep, "disjoint").sum(axis=1)
    for m in range(2):
        n, r = int(keep[m].sum()), int(references[m])
        warm_attack, _ = slow_epoch_counts(n, r, recipe.spec, warmup=True)
        game_attack, game_classify = slow_epoch_counts(n, r, recipe.spec, warmup=False)
        assert int(states[0].aux.attack_steps[m]) == warm_attack
        assert int(states[0].aux.classifier_steps[m]) == 0
        assert int(states[1].aux.attack_steps[m]) == warm_attack + game_attack
        assert int(states[1].aux.classifier_steps[m]) == game_classify
    assert game_classify == 2 and int(states[1].aux.classifier_steps[0]) == 4
    # The same programs as train_many: the same models.
    got = jax.tree_util.tree_leaves(states[1].best_variables)
    for a, b in zip(got, jax.tree_util.tree_leaves(setup["result"].variables)):
        np.testing.assert_array_equal(np.asarray(a), b)
    # Two optimizer states per model: the classifier's and the inference model's (Adam).
    assert jax.tree_util.tree_leaves(states[1].aux.opt_state)[0].shape[0] == 2


def test_vmap_over_models_equals_one_model_at_a_time(setup):
    """The game epoch of the 2-model (vmapped) program == the 1-model program, per model."""
    states = _by_hand(setup, 2)
    init_fn, apply_fn = model_functions(setup["model"])
    programs = advreg.build_programs(setup["model"], init_fn, apply_fn, setup["recipe"],
                                     keep=setup["keep"], sample_x=setup["x"][:1], has_val=True,
                                     eval_batch_size=1024, donate=False)
    data = engine.TrainData(jnp.asarray(setup["x"]), jnp.asarray(setup["y"], jnp.int32),
                            jnp.asarray(setup["val"][0]), jnp.asarray(setup["val"][1], jnp.int32))
    keys = jax.vmap(lambda i: model_key(0, i))(jnp.arange(2))
    for m in range(2):
        row = lambda t: jax.tree_util.tree_map(lambda a: a[m:m + 1], t)
        one, metrics = programs.epoch_fn.game(row(states[0]), row(keys),
                                              jnp.asarray(setup["keep"][m:m + 1]), jnp.int32(1),
                                              data)
        for a, b in zip(jax.tree_util.tree_leaves(one), jax.tree_util.tree_leaves(
                row(states[1]))):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(metrics.train_loss, setup["result"].train_loss[m:m + 1, 1],
                                   rtol=1e-5)


def test_host_loop_falls_back_to_scan(setup):
    host = train_many(setup["model"], setup["recipe"], setup["x"], setup["y"], setup["keep"],
                      seed=0, val_data=setup["val"], devices=jax.devices()[:1], chunk_size=2,
                      progress=False, loop="host")
    assert host.performance["loop"] == "scan" and "loop_fallback" in host.performance
    jax.tree_util.tree_map(np.testing.assert_array_equal, host.variables,
                           setup["result"].variables)


class _Interrupt(Exception):
    pass


def test_resume_restores_both_optimizer_states(setup, tmp_path, monkeypatch):
    class Bar:  # raises at the second epoch's update, after epoch 0's checkpoint
        calls = 0

        def update(self, n=1):
            Bar.calls += 1
            if Bar.calls > 1:
                raise _Interrupt()

        def set_postfix(self, **kwargs):
            pass

        def close(self):
            pass

    kwargs = dict(seed=0, val_data=setup["val"], devices=jax.devices()[:1], chunk_size=2,
                  workdir=str(tmp_path / "run"), save_every=1)
    args = (setup["model"], setup["recipe"], setup["x"], setup["y"], setup["keep"])
    with monkeypatch.context() as mp:
        mp.setattr(engine, "_progress_bar", lambda total, enabled: Bar())
        with pytest.raises(_Interrupt):
            train_many(*args, **kwargs)
    ran_before = engine.TRACE_COUNTS["epochs_run"]
    resumed = train_many(*args, progress=False, **kwargs)
    assert engine.TRACE_COUNTS["epochs_run"] - ran_before == 1  # the game epoch only
    jax.tree_util.tree_map(np.testing.assert_array_equal, resumed.variables,
                           setup["result"].variables)
    np.testing.assert_array_equal(resumed.train_loss, setup["result"].train_loss)


@pytest.mark.slow  # ~6 s of compiles (its own init and game programs) on 2 quiet cores
def test_epochs_game_and_frozen_hidden_layer():
    """RelaxLoss CIFAR's game: one inference-model epoch, then one classifier epoch; its
    hidden layer never trains."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, D)).astype(np.float32)
    y = rng.integers(0, C, 40)
    keep = np.zeros((2, 40), bool)
    keep[0, :24], keep[1, 24:] = True, True
    recipe = _recipe(**{"adversary.game": "epochs", "adversary.attack_steps": 52,
                        "adversary.warmup_epochs": 0, "adversary.attack_hidden": "frozen",
                        "adversary.attack_input": "sorted_logits"}).replace(selection="last")
    model = get_model("fc", C, hidden_sizes=(8,))
    init_fn, apply_fn = model_functions(model)
    programs = advreg.build_programs(model, init_fn, apply_fn, recipe, keep=keep,
                                     sample_x=x[:1], has_val=False, eval_batch_size=1024,
                                     donate=False)
    data = engine.TrainData(jnp.asarray(x), jnp.asarray(y, jnp.int32), jnp.zeros((1, D)),
                            jnp.zeros((1,), jnp.int32))
    keys = jax.vmap(lambda i: model_key(0, i))(jnp.arange(2))
    state0 = programs.init_chunk(keys, data.x[:1])
    state, metrics = programs.epoch_fn(state0, keys, jnp.asarray(keep), jnp.int32(0), data)
    n, r = keep.sum(1), (~keep).sum(1)
    np.testing.assert_array_equal(state.aux.attack_steps, np.minimum(np.ceil(n / 4),
                                                                     np.ceil(r / 4)))
    np.testing.assert_array_equal(state.aux.classifier_steps, np.ceil(n / B))
    assert np.isfinite(np.asarray(metrics.train_loss)).all()
    jax.tree_util.tree_map(np.testing.assert_array_equal, state.aux.variables["frozen"],
                           state0.aux.variables["frozen"])
    moved = jax.tree_util.tree_map(lambda a, b: float(jnp.abs(a - b).max()),
                                   state.aux.variables["params"], state0.aux.variables["params"])
    assert min(jax.tree_util.tree_leaves(moved)) > 0


def test_in_program_reference_row():
    keep = np.random.default_rng(1).random(40) < 0.5

    class Config:  # only what reference_row reads
        num_examples = 40

    for reference in ("authors", "disjoint"):
        Config.adversary = type("A", (), {"spec": AdversarySpec(kind="advreg",
                                                                  reference=reference)})
        got = advreg.GameConfig.reference_row(Config, jnp.asarray(keep))
        np.testing.assert_array_equal(got, advreg.reference_mask(keep, reference))


# ---------------------------------------------------------------------------------------------
# Spec and presets.


def test_spec_round_trip_and_presets():
    table = PRESETS["advreg"]
    assert {"purchase100", "texas100", "location30", "cifar10", "cifar100", "digits",
            "purchase100_fc", "texas100_fc", "cifar10_resnet20", "texas100_authors_shadow"} <= set(
        table)
    for spec in table.values():
        assert RecipeSpec.from_dict(spec.to_dict()) == spec
        assert spec.adversary.kind == "advreg"
    hamp = {k: (s.adversary.weight, s.optimizer.kind, s.optimizer.learning_rate, s.batch_size,
                s.epochs, s.schedule.milestones) for k, s in table.items()}
    assert hamp["purchase100"] == (3.0, "adam", 5e-4, 64, 50, (25,))
    assert hamp["texas100"] == (10.0, "adam", 1e-3, 64, 20, ())
    assert hamp["location30"] == (10.0, "adam", 1e-3, 64, 50, (25,))
    assert hamp["cifar10"] == hamp["cifar100"] == (6.0, "sgd", 1.0, 256, 200, (60, 90, 150))
    assert hamp["texas100_authors_shadow"][:3] == (3.0, "adam", 5e-4)
    rl = table["cifar10_resnet20"].adversary
    assert (rl.weight, rl.attack_input, rl.game, rl.warmup_epochs, rl.attack_hidden) == (
        1.0, "sorted_logits", "epochs", 3, "frozen")
    tab = table["purchase100_fc"].adversary
    assert (tab.attack_arch, tab.attack_steps, tab.attack_learning_rate) == (
        "relaxloss_tabular", 50, 1e-3)
    # Default spec: no adversary; the field round-trips with the rest.
    plain = preset_spec("undefended", "digits")
    assert plain.adversary == AdversarySpec() and plain.to_dict()["adversary"]["kind"] == "none"


def test_double_decay():
    twice = advreg_recipe("purchase100")
    once = advreg_recipe("purchase100", **{"adversary.double_decay": False})
    assert float(twice.learning_rate(24)) == pytest.approx(5e-4)
    assert float(twice.learning_rate(25)) == pytest.approx(5e-6)
    assert float(once.learning_rate(25)) == pytest.approx(5e-5)


@pytest.mark.parametrize("changes, match", [
    ({"adversary.weight": -1.0}, "adversary.weight"),
    ({"adversary.attack_input": "probs"}, "adversary.attack_input"),
    ({"adversary.attack_hidden": "frozen"}, "adversary.attack_hidden"),
    ({"adversary.warmup_epochs": 2}, "adversary.warmup_epochs"),
    ({"adversary.attack_batch_size": 9}, "adversary.attack_batch_size"),
    ({"adversary.reference": "pool"}, "adversary.reference"),
])
def test_spec_validation_names_the_field(changes, match):
    with pytest.raises(ValueError, match=match):
        preset_spec("advreg", "digits", epochs=2, batch_size=8, **changes)


def test_unused_settings_keep_their_defaults():
    with pytest.raises(ValueError, match="adversary.weight is not used"):
        preset_spec("undefended", "digits", **{"adversary.weight": 2.0})
    with pytest.raises(ValueError, match="adversary.attack_steps is not used"):
        preset_spec("advreg", "cifar10_resnet20", **{"adversary.attack_steps": 3})


def test_engine_refuses_a_keep_row_without_reference():
    keep = np.ones((2, 20), bool)
    with pytest.raises(ValueError, match="no reference example"):
        advreg.game_shape(_recipe(), keep)
    keep = np.zeros((2, 20), bool)
    keep[:, :10] = True  # 10 members: one full batch of 8, no round
    with pytest.raises(ValueError, match="2 full batches"):
        advreg.game_shape(_recipe(), keep)
