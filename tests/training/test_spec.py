"""Recipe specs: JSON round trips, dotted replace, field-naming errors, presets, and recipes
rebuilt from a recorded spec training bit-identically."""

import importlib.util
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from hampjax.models import get_model
from hampjax.training import (
    DEFENSES,
    PRESETS,
    ConfidencePenaltyParams,
    CrossEntropyParams,
    ExampleStateSpec,
    HampParams,
    MemGuardSpec,
    OptimizerSpec,
    OutputSpec,
    RecipeSpec,
    ScheduleSpec,
    WeightedSmoothingParams,
    balanced_keep,
    build_recipe,
    diff_paths,
    hamp_recipe,
    preset_spec,
    train_many,
    weighted_smoothing_recipe,
)
from hampjax.training import recipes

DEMO = os.path.join(os.path.dirname(__file__), "..", "..", "experiments", "demo.py")
ALL_PRESETS = [(d, k) for d, table in PRESETS.items() for k in table]


def _demo_defenses(epochs):
    spec = importlib.util.spec_from_file_location("hampjax_demo_spec", DEMO)
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    return demo.defenses(epochs)


def _json(spec):
    return json.loads(json.dumps(spec.to_dict()))


@pytest.mark.parametrize("defense,key", ALL_PRESETS)
def test_every_preset_round_trips(defense, key):
    spec = preset_spec(defense, key)
    assert RecipeSpec.from_dict(spec.to_dict()) == spec
    again = RecipeSpec.from_dict(_json(spec))
    assert again == spec and hash(again) == hash(spec) and again.to_dict() == spec.to_dict()
    recipe = build_recipe(again)
    assert recipe.config == spec.to_dict() and recipe.name == spec.name
    assert (recipe.example_state is None) == (spec.example_state.kind == "none")


def test_tables_are_read_only_and_kinds_registered_once():
    with pytest.raises(TypeError):
        PRESETS["hamp"]["new"] = preset_spec("hamp", "digits")
    assert {spec.defense.kind for t in PRESETS.values() for spec in t.values()} <= set(DEFENSES)
    for kind, entry in DEFENSES.items():
        assert entry.params.kind == kind


def test_hamp_recipe_records_its_optimizer():
    config = hamp_recipe("purchase100").config
    assert config["optimizer"] == {
        "kind": "sgd", "learning_rate": 0.5, "momentum": 0.99, "nesterov": False, "b1": 0.9,
        "b2": 0.999, "eps": 1e-8, "weight_decay": 1e-5, "coupled_weight_decay": True,
        "clip_norm": None}
    assert config["schedule"] == {"kind": "step", "milestones": [60, 90, 150], "factor": 0.1,
                                  "decay": 1.0}
    assert config["defense"] == {"kind": "hamp", "entropy_threshold": 0.8, "alpha": 0.01,
                                 "method": "grid", "kl_reduction": "mean_over_classes"}
    assert config["output"] == {"kind": "hamp", "pool_size": 1000, "random_inputs": "dataset",
                                "break_ties": True, "memguard": MemGuardSpec().to_dict()}
    assert (config["shuffle"], config["selection"], config["epochs"]) == ("once", "best_val", 200)
    assert hamp_recipe("cifar10").config["min_improvement"] == 0.01


def test_moved_preset_values():
    rl = PRESETS["relaxloss"]
    assert set(rl) == {"cifar10_resnet20", "cifar10_vgg11_bn", "cifar100_resnet20",
                       "cifar100_vgg11_bn", "purchase100_fc", "texas100_fc"}
    t, c = rl["texas100_fc"], rl["cifar100_resnet20"]
    assert (t.defense.alpha, t.defense.upper, t.epochs, t.schedule.milestones,
            t.defense.variant) == (2.5, 0.1, 120, (50, 100), "tabular")
    assert (c.defense.alpha, c.defense.upper, c.epochs, c.schedule.milestones, c.batch_size,
            c.defense.variant) == (3.0, 1.0, 300, (150, 225), 128, "cifar")
    assert rl["cifar10_vgg11_bn"].defense.alpha == 0.4
    assert rl["purchase100_fc"].defense.upper == 0.3
    for p in rl.values():
        assert (p.optimizer.learning_rate, p.optimizer.weight_decay, p.optimizer.momentum,
                p.schedule.factor) == (0.1, 1e-4, 0.9, 0.1)
    ws = PRESETS["weighted_smoothing"]
    c10, ham = ws["cifar10"], ws["ham10000"]
    assert (c10.optimizer.learning_rate, c10.schedule.decay, c10.batch_size,
            c10.optimizer.clip_norm) == (0.022, 0.991, 128, 10.0)
    assert (ham.optimizer.learning_rate, ham.schedule.decay, ham.batch_size) == (0.004, 0.992, 64)
    assert weighted_smoothing_recipe(sigma=0.1, dataset="ham10000").batch_size == 64


def test_replace_with_dotted_keys():
    spec = preset_spec("hamp", "digits")
    new = spec.replace(epochs=3, reset_optimizer_each_epoch=True, **{
        "optimizer.learning_rate": 0.2, "defense.alpha": 0, "schedule.milestones": [5]})
    assert (new.epochs, new.optimizer.learning_rate, new.defense.alpha,
            new.schedule.milestones) == (3, 0.2, 0.0, (5,))
    assert isinstance(new.defense.alpha, float)
    assert diff_paths(spec.to_dict(), new.to_dict()) == [
        "defense.alpha", "epochs", "optimizer.learning_rate", "reset_optimizer_each_epoch",
        "schedule.milestones"]
    assert spec.replace(defense=CrossEntropyParams()).defense.kind == "cross_entropy"
    assert spec.replace(optimizer=spec.optimizer.to_dict()) == spec  # a part given as a dict
    # The recipe replaces through its spec.
    r = build_recipe(spec).replace(**{"optimizer.learning_rate": 0.2})
    assert r.spec == spec.replace(**{"optimizer.learning_rate": 0.2})


@pytest.mark.parametrize("changes,match", [
    ({"learning_rate": 0.1}, r"unknown field 'learning_rate'; valid fields: name, defense"),
    ({"optimizer.lr": 0.1}, r"unknown field 'optimizer.lr'; valid fields: kind, learning_rate"),
    ({"defense.kind": "relaxloss"}, "defense.kind cannot be changed by itself"),
    ({"epochs.x": 1}, "epochs has no fields"),
    ({"optimizer.learning_rate": 0.0}, r"optimizer.learning_rate must be in \(0, inf\)"),
    ({"defense.entropy_threshold": 1.0}, r"defense.entropy_threshold must be in \[0, 1\)"),
    ({"defense.alpha": "0.1"}, "defense.alpha must be a number"),
    ({"schedule.milestones": (5, 3)}, "schedule.milestones must be strictly increasing"),
    ({"optimizer.b2": 0.9}, "optimizer.b2 is not used with optimizer.kind='sgd'"),
    ({"schedule.kind": "exponential"}, "schedule.milestones is not used"),
    ({"output.pool_size": 64, "output.kind": "none"}, "output.pool_size is not used"),
    ({"example_state.kind": "ws_noise_scale"}, "example_state.kind must be 'none'"),
    ({"defense": WeightedSmoothingParams(sigma=0.1)},
     "example_state.kind must be 'ws_noise_scale'"),
    ({"epochs": 2.0}, "epochs must be an integer >= 1"),
    ({"shuffle": "never"}, "shuffle must be one of"),
    ({"reset_optimizer_each_epoch": 1}, "reset_optimizer_each_epoch must be a Python bool"),
    ({"optimizer.nesterov": True, "optimizer.momentum": 0.0}, "nesterov needs"),
    ({"optimizer.coupled_weight_decay": False}, "only available with optimizer.kind='adam'"),
])
def test_errors_name_the_field(changes, match):
    with pytest.raises(ValueError, match=match):
        preset_spec("hamp", "purchase100").replace(**changes)
    with pytest.raises(ValueError, match=r"defense.beta must be in \[0, inf\)"):
        ConfidencePenaltyParams(beta=-1.0)


def test_from_dict_errors_name_the_field():
    good = preset_spec("hamp", "digits").to_dict()
    cases = [
        ({**good, "lr": 1}, "unknown field 'lr'; valid fields: name, defense, optimizer"),
        ({k: v for k, v in good.items() if k != "epochs"}, "missing field 'epochs'"),
        ({**good, "optimizer": {**good["optimizer"], "betas": 1}},
         "unknown field 'optimizer.betas'"),
        ({**good, "schedule": {"kind": "step"}}, "missing field 'schedule.milestones'"),
        ({**good, "defense": {**good["defense"], "kind": "nope"}}, "defense.kind must be one of"),
        ({**good, "defense": {"alpha": 0.1}}, "missing field 'defense.kind'"),
        ({**good, "defense": {"kind": "hamp", "alpha": 0.1}},
         "missing field 'defense.entropy_threshold'"),
        ({**good, "output": [1]}, "output must be a dict or a OutputSpec"),
    ]
    for data, match in cases:
        with pytest.raises(ValueError, match=match):
            RecipeSpec.from_dict(data)


def test_diff_paths():
    a = {"a": 1, "b": {"c": [1, 2], "d": "x"}, "e": 1}
    assert diff_paths(a, a) == []
    assert diff_paths(a, {"a": 1.0, "b": {"c": (1, 2), "d": "y"}, "f": 0}) == ["b.d", "e", "f"]


def test_equal_specs_share_callables():
    spec = preset_spec("weighted_smoothing", "cifar10")
    a, b = build_recipe(spec), build_recipe(RecipeSpec.from_dict(_json(spec)))
    assert a == b and a.loss is b.loss and a.optimizer is b.optimizer
    c = a.replace(epochs=3, name="short")  # Neither changes what a step computes.
    assert (c.loss, c.optimizer, c.learning_rate, c.example_state) == (
        a.loss, a.optimizer, a.learning_rate, a.example_state)


def _updates(make, grads, params, steps=3):
    tx = optax.inject_hyperparams(make)(learning_rate=0.1)
    state = tx.init(params)
    out = []
    for _ in range(steps):
        u, state = tx.update(grads, state, params)
        out.append(u["w"])
    return np.stack(out)


@pytest.mark.parametrize("optimizer,chain", [
    (OptimizerSpec(kind="sgd", learning_rate=1.0, momentum=0.99, weight_decay=1e-5),
     lambda learning_rate: optax.chain(optax.add_decayed_weights(1e-5),
                                       optax.sgd(learning_rate, momentum=0.99))),
    (OptimizerSpec(kind="sgd", learning_rate=1.0, momentum=0.9, nesterov=True),
     lambda learning_rate: optax.chain(optax.sgd(learning_rate, momentum=0.9, nesterov=True))),
    (OptimizerSpec(kind="adam", learning_rate=1.0, clip_norm=0.5, weight_decay=1e-3, b1=0.8),
     lambda learning_rate: optax.chain(optax.clip_by_global_norm(0.5),
                                       optax.add_decayed_weights(1e-3),
                                       optax.adam(learning_rate, b1=0.8))),
    (OptimizerSpec(kind="adam", learning_rate=1.0, weight_decay=1e-2, coupled_weight_decay=False),
     lambda learning_rate: optax.chain(optax.adamw(learning_rate, weight_decay=1e-2))),
])
def test_optimizer_chains(optimizer, chain):
    spec = preset_spec("undefended", "digits", optimizer=optimizer)
    params, grads = {"w": jnp.array([2.0, -1.0, 0.5])}, {"w": jnp.array([0.3, 4.0, -0.2])}
    np.testing.assert_array_equal(_updates(build_recipe(spec).optimizer, grads, params),
                                  _updates(chain, grads, params))


def test_schedules():
    base = preset_spec("undefended", "digits")
    step = ScheduleSpec(kind="step", milestones=(2, 4), factor=0.5)
    lr = build_recipe(base.replace(schedule=step, **{"optimizer.learning_rate": 0.5}))
    got = [float(lr.learning_rate(jnp.int32(e))) for e in range(5)]
    assert got == [0.5, 0.5, 0.25, 0.25, 0.125]
    ex = build_recipe(base.replace(schedule=ScheduleSpec(kind="exponential", decay=0.9)))
    assert float(ex.learning_rate(jnp.int32(2))) == pytest.approx(1e-3 * 0.81)
    assert float(build_recipe(base).learning_rate(jnp.int32(59))) == pytest.approx(1e-3)


def test_parts_validate_and_default():
    assert ExampleStateSpec().kind == "none" and OutputSpec().kind == "none"
    assert HampParams(entropy_threshold=0, alpha=1).to_dict() == {
        "kind": "hamp", "entropy_threshold": 0.0, "alpha": 1.0, "method": "grid",
        "kl_reduction": "mean_over_classes"}
    with pytest.raises(ValueError, match="output.pool_size must be an integer >= 1"):
        OutputSpec(kind="hamp", pool_size=0)


def test_demo_records_what_it_trains():
    ws = {d.name: d.recipe for d in _demo_defenses(40)}["weighted_smoothing"].config
    assert ws["optimizer"]["learning_rate"] == 1e-3 and ws["schedule"] == {
        "kind": "exponential", "milestones": [], "factor": 0.1, "decay": 0.99}
    assert (ws["batch_size"], ws["epochs"], ws["defense"]["sigma"]) == (32, 40, 0.2)


def _clear_caches():
    for fn in (recipes._loss, recipes._optimizer, recipes._learning_rate, recipes._example_state):
        fn.cache_clear()


def test_rebuilt_from_recorded_config_trains_bit_identically():
    from sklearn.datasets import load_digits

    recipes_ = [d.recipe for d in _demo_defenses(2)]
    recorded = [json.loads(json.dumps(r.config)) for r in recipes_]
    # Equal specs give the identical callables, hence the identical compiled program.
    assert [build_recipe(RecipeSpec.from_dict(c)) for c in recorded] == recipes_
    # Weighted Smoothing (whose recorded settings once drifted) trained again from fresh
    # callables; its noise starts at epoch 4, so let it act from epoch 1 here.
    ws = [r.name for r in recipes_].index("weighted_smoothing")
    original = recipes_[ws].replace(batch_size=16, **{"example_state.start_epoch": 1})
    recorded = json.loads(json.dumps(original.config))
    digits = load_digits()
    x = (digits.data[:64] / 16.0).astype(np.float32)
    y = digits.target[:64].astype(np.int32)
    keep = balanced_keep(2, len(x), seed=0)
    model = get_model("fc", 10, hidden_sizes=(8,))
    want = train_many(model, original, x, y, keep, seed=3, progress=False)
    _clear_caches()
    rebuilt = build_recipe(RecipeSpec.from_dict(recorded))
    assert rebuilt.spec == original.spec and rebuilt.loss is not original.loss
    got = train_many(model, rebuilt, x, y, keep, seed=3, progress=False)
    jax.tree_util.tree_map(np.testing.assert_array_equal, got.variables, want.variables)
    np.testing.assert_array_equal(got.train_loss, want.train_loss)


@pytest.mark.parametrize("spec", [preset_spec(d, k) for d, k in ALL_PRESETS] + [
    d.recipe.spec for d in _demo_defenses(40)], ids=lambda spec: spec.name)
def test_fresh_callables_compute_the_same(spec):
    logits = jnp.linspace(-3.0, 3.0, 40).reshape(4, 10)
    labels = jnp.array([0, 3, 9, 9])
    ctx = recipes.LossContext(jnp.int32(5), jax.random.key(0), jnp.ones(4, bool),
                              jnp.full(4, 0.5), targets=jnp.flip(logits, -1))  # a "teacher"
    params, grads = {"w": jnp.array([2.0, -1.0, 0.5])}, {"w": jnp.array([0.3, 4.0, -0.2])}

    def outputs(r):
        return (r.loss(logits, labels, ctx), r.learning_rate(jnp.int32(160)),
                _updates(r.optimizer, grads, params, steps=2))

    want = outputs(build_recipe(spec))
    _clear_caches()
    got = outputs(build_recipe(RecipeSpec.from_dict(_json(spec))))
    jax.tree_util.tree_map(np.testing.assert_array_equal, got, want)


def test_teacher_recipe_round_trips_and_is_checked():
    from hampjax.training import teacher_spec

    student = preset_spec("distillation", "cifar10_resnet20")
    plain = preset_spec("undefended", "purchase100")
    spec = student.replace(teacher=plain)
    assert RecipeSpec.from_dict(spec.to_dict()) == spec
    assert teacher_spec(spec) == plain
    assert teacher_spec(student).defense.kind == "cross_entropy"
    assert spec.replace(**{"teacher.epochs": 3}).teacher.epochs == 3
    bad = spec.to_dict()
    bad["teacher"]["optimizer"]["learning_rate"] = 0.0
    with pytest.raises(ValueError, match=r"teacher .*optimizer\.learning_rate"):
        RecipeSpec.from_dict(bad)
    with pytest.raises(ValueError, match="teacher is only used"):
        plain.replace(teacher=plain)
    with pytest.raises(ValueError, match="teacher must be a plain recipe"):
        student.replace(teacher=spec)
