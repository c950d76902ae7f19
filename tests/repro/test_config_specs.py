"""Experiment configs hold recipe specs: every config's recorded spec round-trips, a recipe
rebuilt from the recorded spec trains bit-identically, the RelaxLoss baseline records what ran,
and a running experiment locks its workdir. (experiments/run.py: tests/experiments/test_run.py.)"""

import importlib.util
import json
from pathlib import Path

import jax
import numpy as np
import pytest

from hampjax.repro import rundir, trust
from hampjax.repro.cells import cell_specs
from hampjax.repro.configs import cell, spec_config, sweep_key
from hampjax.repro.datasets import default_model, load_experiment_data
from hampjax.training import DEFENSES, RecipeSpec, build_recipe, diff_paths, preset_spec, train_many

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted(p.stem for p in (ROOT / "experiments" / "configs").glob("*.py"))


def load_config(name: str, arg: str | None = "quick"):
    spec = importlib.util.spec_from_file_location(
        f"config_{name}", ROOT / "experiments" / "configs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


def _recorded_specs(config):
    """{(cell, defense): RecipeSpec} as rebuilt from the JSON that experiment.json records
    (the Trust config's ``recipes`` under the cell ``"recipes"``)."""
    recorded = json.loads(json.dumps(rundir.config_dict(config)))
    out = {(c, d): RecipeSpec.from_dict(s) for c, cell_ in recorded.get("cells", {}).items()
           for d, s in cell_["defenses"].items()}
    out.update({("recipes", n): RecipeSpec.from_dict(s)
                for n, s in recorded.get("recipes", {}).items()})
    return out


def _run_specs(config):
    """The specs the runners build from the config itself."""
    out = {(c, d): s for c, cell_ in config.get("cells", {}).items()
           for d, s in cell_specs(cell_, f"config.cells.{c}").items()}
    if "recipes" in config:
        out.update({("recipes", n): s for n, s in trust._specs(config).items()})
    return out


@pytest.mark.parametrize("arg", [None, "quick"])
def test_every_config_spec_round_trips(arg):
    for name in CONFIGS:
        config = load_config(name, arg)
        ran = _run_specs(config)
        assert ran or config.experiment == "hamp_overhead", name  # (no recipes: a benchmark)
        assert ran == _recorded_specs(config), name
        for spec in ran.values():
            assert RecipeSpec.from_dict(spec.to_dict()) == spec
            assert spec_config(spec).to_dict() == json.loads(json.dumps(spec.to_dict()),
                                                             object_hook=_tuples)


def _tuples(d):
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}


@pytest.mark.slow  # ~40 s; the default run rebuilds one recorded spec bit-identically
# (tests/training/test_spec.py::test_rebuilt_from_recorded_config_trains_bit_identically).
def test_recorded_specs_train_bit_identically():
    """One defense of each kind the quick configs use: the recipe rebuilt from the recorded
    spec trains the same parameters, bit for bit, as the recipe built from the config."""
    by_kind = {}
    for name in CONFIGS:
        config = load_config(name)
        for (c, d), spec in _recorded_specs(config).items():
            by_kind.setdefault(spec.defense.kind, (config, c, d, spec))
    assert set(by_kind) == {"cross_entropy", "hamp", "relaxloss", "weighted_smoothing",
                            "smooth_labels", "confidence_penalty", "distillation"}
    data = load_experiment_data("digits", seed=0)
    x, y = data.eval_data.x[:96], data.eval_data.y[:96]
    keep = np.zeros((2, 96), bool)
    keep[0, :48], keep[1, 48:] = True, True
    model = default_model("digits", 10)
    for kind, (config, c, d, recorded) in sorted(by_kind.items()):
        original = _run_specs(config)[c, d].replace(epochs=1, selection="last")
        rebuilt = recorded.replace(epochs=1, selection="last")
        targets = None  # distillation: any per-example teacher logits
        if DEFENSES[kind].targets != "none":
            targets = np.random.default_rng(0).normal(size=(2, 96, 10)).astype(np.float32)
        a = train_many(model, build_recipe(original), x, y, keep, seed=0, progress=False,
                       targets=targets)
        b = train_many(model, build_recipe(rebuilt), x, y, keep, seed=0, progress=False,
                       targets=targets)
        leaves = jax.tree_util.tree_leaves
        for u, v in zip(leaves(a.variables), leaves(b.variables)):
            np.testing.assert_array_equal(np.asarray(u), np.asarray(v), err_msg=f"{kind} {c}.{d}")


def test_cell_helper_checks():
    hamp = preset_spec("hamp", "digits")
    with pytest.raises(ValueError, match="Python identifiers"):
        cell("digits", {"gamma=0.8": hamp})
    assert sweep_key("gamma", 0.8) == "gamma_0p8" and sweep_key("alpha", 5e-5) == "alpha_5em05"
    c = cell("digits", {"hamp": hamp}, quick=True)
    assert c.defenses.hamp.epochs == 2 and c.defenses.hamp.output.pool_size == 50
    assert c.defenses.hamp.optimizer.clip_norm is None
    c.defenses.hamp.optimizer.clip_norm = 1.0  # A typed placeholder: settable by flag.
    assert cell_specs(c, "c")["hamp"].optimizer.clip_norm == 1.0


def test_relaxloss_baseline_records_what_ran():
    config = load_config("relaxloss_table", None)
    specs = cell_specs(config.cells.purchase100_fc, "purchase100_fc")
    base, defended = specs["undefended"], specs["relaxloss_nonadaptive"]
    assert base.defense.kind == "cross_entropy" and base.name == "undefended"
    assert diff_paths(base.to_dict(), defended.to_dict()) == [
        "defense.alpha", "defense.kind", "defense.schedule", "defense.stop_gradient",
        "defense.upper", "defense.variant", "name"]
    assert config.cells.purchase100_fc.non_adaptive_shadows.relaxloss_nonadaptive == "undefended"


def test_a_running_experiment_locks_its_workdir(tmp_path):
    from hampjax.repro import run_experiment
    from hampjax.runlock import RunLock, RunLockError

    config = load_config("hamp_overhead")
    workdir = str(tmp_path / "w")
    with RunLock(workdir, what="experiment"):
        with pytest.raises(RunLockError, match="locked by pid"):
            run_experiment(config, workdir, progress=False)


def test_attack_settings_come_from_the_config():
    from hampjax.repro.cells import _settings, check_cells

    full, quick = load_config("hamp_main", None), load_config("hamp_main")
    settings = _settings(full, full.cells.purchase100)
    assert settings.boundary_samples == 100 and settings.nn_epochs == 200  # Table VIII's column.
    assert settings.boundary_attack == "auto" and settings.boundary_cw_steps == 100
    assert settings.role_fractions == tuple(full.cells.purchase100.role_fractions)
    assert 0 < _settings(quick, quick.cells.digits).boundary_samples <= 10
    quick.attacks.boundary_colour = 1
    with pytest.raises(ValueError, match="config.attacks .*boundary_colour"):
        check_cells(quick)


def test_quick_spec_of_every_preset():
    """Every preset has a quick form: AdvReg's warm-up fits the quick epochs, a teacher
    recipe is made quick too."""
    from hampjax.repro.configs import QUICK_EPOCHS, quick_spec
    from hampjax.training import PRESETS, preset_spec

    for name, table in PRESETS.items():
        for dataset in table:
            quick = quick_spec(preset_spec(name, dataset))
            assert quick.epochs == QUICK_EPOCHS, (name, dataset)
            assert quick.adversary.warmup_epochs < QUICK_EPOCHS or quick.adversary.kind == "none"
            assert quick.teacher is None or quick.teacher.epochs == QUICK_EPOCHS
    advreg = quick_spec(preset_spec("advreg", "cifar10_resnet20"))
    assert advreg.adversary.warmup_epochs == QUICK_EPOCHS - 1
