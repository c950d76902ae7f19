"""Every experiment config's ``quick`` variant runs end to end (a smoke test), and the runner
resumes, refuses a foreign workdir, and checks its config."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hampjax.repro import run_experiment
from hampjax.repro.results import load_run, render

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted(p.stem for p in (ROOT / "experiments" / "configs").glob("*.py"))
# The Trust experiment's quick variant is run by tests/repro/test_trust_experiment.py.
EVALUATION_CONFIGS = [c for c in CONFIGS if c != "trust_cifar10"]


def load_config(name: str, arg: str | None = "quick"):
    spec = importlib.util.spec_from_file_location(f"config_{name}", ROOT / "experiments" / "configs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


def expected_defenses(config, cell) -> list[str]:
    """The report's defenses: each defense, then its early-stopping snapshots."""
    names = []
    for name, spec in config.cells[cell].defenses.items():
        names += [name] + [f"{name}_e{e}" for e in spec.early_stopping_epochs]
    return names


def test_every_config_has_a_documented_quick_variant():
    assert len(CONFIGS) >= 9 and "trust_cifar10" in CONFIGS
    for name in CONFIGS:
        text = (ROOT / "experiments" / "configs" / f"{name}.py").read_text()
        doc = text.split('"""')[1]
        assert "python experiments/run.py --config=experiments/configs/" in doc, name
        assert "Expected runtime" in doc and "Paper" in doc, name
        full, quick = load_config(name, None), load_config(name)
        assert quick.name.endswith("_quick") and quick.experiment == full.experiment


# hamp_ablation's quick run (8 defenses, ~37 s), relaxloss_baselines' (10 results and a
# teacher, ~150 s on 2 loaded cores), hamp_baselines' (9 defenses and a snapshot, 76 s alone),
# ws_dp_tradeoff's (33 s), hamp_archs' (the fc net on digits, as hamp_main's), relaxloss_table's
# (~40 s; its non-adaptive shadows: tests/evaluation, its tables: tests/repro/test_results.py)
# and AdvReg through the pipeline (test_hamp_main_with_advreg, 49 s)
# run with -m slow; the others stay in the default run (DP-SGD through the pipeline:
# hamp_dp_grid; AdvReg's training: tests/training/test_advreg_engine.py).
SLOW_QUICK_RUNS = ("hamp_ablation", "relaxloss_baselines", "hamp_baselines", "ws_dp_tradeoff",
                   "hamp_archs", "relaxloss_table")


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_QUICK_RUNS
                                  else n for n in EVALUATION_CONFIGS])
def test_quick_variant_runs(name, tmp_path, capsys):
    config = load_config(name)
    workdir = str(tmp_path / name)
    record = run_experiment(config, workdir, progress=False)
    with open(os.path.join(workdir, "experiment.json")) as f:
        assert json.load(f) == json.loads(json.dumps(record))
    assert record["experiment"] == config.experiment and record["cells"]
    if config.experiment == "hamp_overhead":
        with open(os.path.join(workdir, "overhead.json")) as f:
            overhead = json.load(f)
        assert sorted(overhead) == sorted(config.datasets)
        for row in overhead.values():
            assert row["forward_ms"] > 0 and row["modify_output_ms"] > 0
            assert row["hamp_ms"] == pytest.approx(row["forward_ms"] + row["modify_output_ms"])
            assert row["memguard_search_ms"] > 0 and row["memguard_search_single_ms"] > 0
            assert row["memguard_ms"] == pytest.approx(row["forward_ms"]
                                                       + row["memguard_search_ms"])
            assert 0 < row["memguard_steps"] <= row["memguard_budget_steps"] == 7 * 299
            assert row["memguard_batch"] == config.memguard_batch
    else:
        assert set(record["data_hashes"]) == set(record["cells"])
        assert record["cells"] == list(config.cells)
        assert record["config"] == json.loads(json.dumps(config.to_dict()))  # specs included
        for cell in record["cells"]:
            with open(os.path.join(workdir, cell, "report.json")) as f:
                report = json.load(f)
            with open(os.path.join(workdir, cell, "stats.json")) as f:
                stats = json.load(f)
            info = record["cell_info"][cell]
            assert info["dataset"] == config.cells[cell].dataset
            assert sorted(info["sweep"]) == sorted(config.cells[cell].sweep)
            names = expected_defenses(config, cell)
            assert list(report["defenses"]) == names
            assert sorted(stats) == sorted(names)
            for d in report["defenses"].values():
                assert 0.0 <= d["test_acc"] <= 1.0 and "max_tpr@0.1%fpr" in d
            for name, s in stats.items():
                assert s["entropy_members"] > 0 and s["entropy_nonmembers"] > 0
                privacy = (config.cells[cell].defenses.get(name) or {}).get("privacy")
                if privacy is not None and privacy.kind == "dp_sgd":  # eps and the Poisson overflow are recorded
                    assert (s.get("dp_epsilon", 0) > 0) == (privacy.noise_multiplier > 0)
                    assert (s.get("dp_poisson_overflow") is not None) == (
                        privacy.sampling == "poisson")
            if config.experiment == "truth_serum":  # Pooled over every (model, target) pair.
                for d in report["defenses"].values():
                    (attack,) = d["attacks"].values()
                    assert attack["num_members"] + attack["num_nonmembers"] == (
                        config.num_models * config.poison.num_targets)
    text = render(load_run(workdir))
    assert config.name in text
    for cell in record["cells"]:
        assert cell in text
    if config.experiment == "relaxloss":
        check_non_adaptive(workdir)


def check_non_adaptive(workdir):
    with open(os.path.join(workdir, "digits", "evaluation.json")) as f:
        cfg = {d["name"]: d["config"] for d in json.load(f)["defenses"]}
    assert cfg["relaxloss_adaptive"]["shadow_recipe"] is None
    shadows = cfg["relaxloss_nonadaptive"]["shadow_recipe"]
    assert shadows["name"] == "undefended" and shadows["defense"] == {"kind": "cross_entropy"}
    assert cfg["relaxloss_nonadaptive"]["recipe"]["defense"]["kind"] == "relaxloss"
    # The baseline is the RelaxLoss recipe with a cross-entropy loss: same optimizer.
    assert shadows["optimizer"] == cfg["relaxloss_nonadaptive"]["recipe"]["optimizer"]
    # The non-adaptive run trained its shadows and its target separately.
    train = os.path.join(workdir, "digits", "train", "relaxloss_nonadaptive")
    assert sorted(os.listdir(train)) == ["shadows", "target"]


def test_resume_skips_finished_cells_and_refuses_other_configs(tmp_path, capsys):
    config = load_config("hamp_entropy")
    workdir = str(tmp_path / "entropy")
    run_experiment(config, workdir, progress=False)
    report = os.path.join(workdir, "digits", "report.json")
    before = os.stat(report).st_mtime_ns
    capsys.readouterr()
    run_experiment(config, workdir, progress=False)
    assert "done already" in capsys.readouterr().out
    assert os.stat(report).st_mtime_ns == before
    other = load_config("hamp_entropy")
    other.seed = 1
    with pytest.raises(ValueError, match=r"different config \(fields differ: seed\)"):
        run_experiment(other, workdir, progress=False)


def test_config_validation(tmp_path):
    config = load_config("hamp_main")
    bad = load_config("hamp_main")
    bad.experiment = "nope"
    with pytest.raises(ValueError, match="config.experiment"):
        run_experiment(bad, str(tmp_path / "a"))
    bad = load_config("hamp_main")
    bad.num_models = 5
    with pytest.raises(ValueError, match="num_models must be an even integer >= 4"):
        run_experiment(bad, str(tmp_path / "b"))
    bad = load_config("hamp_main")
    bad.cells.digits.dataset = "mnist"
    with pytest.raises(ValueError, match="config.cells.digits.dataset"):
        run_experiment(bad, str(tmp_path / "c"))
    bad = load_config("hamp_main")
    bad.cells.digits.defenses.hamp.optimizer.kind = "rmsprop"
    with pytest.raises(ValueError, match=r"config.cells.digits.defenses.hamp: .*optimizer.kind"):
        run_experiment(bad, str(tmp_path / "d"))
    bad = load_config("ws_sigma")
    bad.cells.digits.sweep.noise_on_logits = "defense.colour"
    with pytest.raises(ValueError, match=r"config.cells.digits.sweep.noise_on_logits: .*colour"):
        run_experiment(bad, str(tmp_path / "e"))
    bad = load_config("hamp_main")
    bad.cells.digits.dataset = "purchase100"
    with pytest.raises(ValueError, match="data_dir is required"):
        run_experiment(bad, str(tmp_path / "f"))
    with pytest.raises(ValueError, match="config argument 'mnist' is not a dataset"):
        load_config("hamp_main", "quick,mnist")
    assert list(config.cells) == ["digits"] and not os.listdir(tmp_path)


def test_overhead_checks_memguard_fields():
    from hampjax.repro.overhead import check_overhead

    config = load_config("hamp_overhead")
    check_overhead(config)
    bad = config.copy_and_resolve_references()
    bad.memguard.max_steps = 0
    with pytest.raises(ValueError, match="config.memguard: output.memguard.max_steps must be"):
        check_overhead(bad)
    bad = config.copy_and_resolve_references()
    bad.memguard_batch = 0
    with pytest.raises(ValueError, match="config.memguard_batch must be an integer >= 1"):
        check_overhead(bad)


def test_run_entry_point(tmp_path):
    workdir = tmp_path / "overhead"
    cmd = [sys.executable, str(ROOT / "experiments" / "run.py"),
           f"--config={ROOT / 'experiments' / 'configs' / 'hamp_overhead.py'}:quick",
           "--config.datasets=('digits',)", "--config.repeats=1", f"--workdir={workdir}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    with open(workdir / "overhead.json") as f:
        assert list(json.load(f)) == ["digits"]
    bad = subprocess.run(cmd[:2] + [f"--workdir={workdir}"], capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "config" in bad.stderr


@pytest.mark.slow
def test_hamp_main_with_advreg(tmp_path):
    """AdvReg end to end through the adaptive pipeline (the shadows play the game too)."""
    config = load_config("hamp_main", "quick,advreg")
    assert list(config.cells.digits.defenses) == ["advreg"]
    workdir = str(tmp_path / "advreg")
    run_experiment(config, workdir, progress=False)
    with open(os.path.join(workdir, "digits", "report.json")) as f:
        (d,) = json.load(f)["defenses"].values()
    assert 0.0 <= d["test_acc"] <= 1.0 and "lira_online" in d["attacks"]
    with open(os.path.join(workdir, "digits", "evaluation.json")) as f:
        (cfg,) = [e["config"] for e in json.load(f)["defenses"]]
    assert cfg["recipe"]["adversary"]["kind"] == "advreg" and cfg["shadow_recipe"] is None


@pytest.mark.slow
@pytest.mark.parametrize("defense, part", [("selena", "split_ai"), ("dmp", "reference"),
                                           ("memguard", "output")])
def test_hamp_main_with_a_baseline_of_issue_13(tmp_path, defense, part):
    """SELENA, DMP and MemGuard end to end through hamp_main's quick variant: every adaptive
    shadow is a whole defended model (SELENA's / DMP's own teachers first; MemGuard's released
    outputs post-processed)."""
    config = load_config("hamp_main", f"quick,{defense}")
    assert list(config.cells.digits.defenses) == [defense]
    workdir = str(tmp_path / defense)
    run_experiment(config, workdir, progress=False)
    with open(os.path.join(workdir, "digits", "report.json")) as f:
        (d,) = json.load(f)["defenses"].values()
    assert 0.0 <= d["test_acc"] <= 1.0 and "lira_online" in d["attacks"]
    with open(os.path.join(workdir, "digits", "evaluation.json")) as f:
        (cfg,) = [e["config"] for e in json.load(f)["defenses"]]
    assert cfg["recipe"][part]["kind"] != "none"
    assert (cfg["recipe"]["teacher"] is not None) == (defense != "memguard")
    text = render(load_run(workdir))
    assert defense in text
