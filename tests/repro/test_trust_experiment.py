"""The Trust experiment: split, the quick config end to end, and its results table."""

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest

from hampjax.repro import run_experiment
from hampjax.repro.results import load_run, render
from hampjax.repro.trust import trust_split

ROOT = Path(__file__).resolve().parents[2]


def load_config(arg="quick"):
    path = ROOT / "experiments" / "configs" / "trust_cifar10.py"
    spec = importlib.util.spec_from_file_location("config_trust", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


def test_trust_split_is_stratified_disjoint_and_seeded():
    rng = np.random.default_rng(0)
    y_train = np.repeat(np.arange(4), 50)
    y_test = np.concatenate([np.repeat(np.arange(4), 10), [0, 0, 1]])  # class 2, 3 rarest
    rng.shuffle(y_train)
    s = trust_split(y_train, y_test, num_train=80, attack_size=5, seed=3)
    assert s.train.shape == (2, 40) and s.test.shape == (2, 20)
    assert not set(s.train[0]) & set(s.train[1]) and not set(s.test[0]) & set(s.test[1])
    for half in s.train:
        assert np.array_equal(np.bincount(y_train[half], minlength=4), [10] * 4)
    for half in s.test:
        assert np.array_equal(np.bincount(y_test[half], minlength=4), [5] * 4)
    again = trust_split(y_train, y_test, num_train=80, attack_size=5, seed=3)
    assert np.array_equal(again.train, s.train) and np.array_equal(again.test, s.test)
    other = trust_split(y_train, y_test, num_train=80, attack_size=5, seed=4)
    assert not np.array_equal(other.train, s.train)


def test_trust_split_errors():
    y = np.repeat(np.arange(2), 10)
    with pytest.raises(ValueError, match="num_train"):
        trust_split(y, y, num_train=21, attack_size=1, seed=0)
    with pytest.raises(ValueError, match="attack_size"):
        trust_split(y, y, num_train=20, attack_size=10, seed=0)  # no held-out test example left
    with pytest.raises(ValueError, match="too few examples"):
        trust_split(y, y, num_train=2, attack_size=1, seed=0)
    with pytest.raises(ValueError, match="class 1 has 3 examples"):
        trust_split(np.array([0] * 10 + [1] * 3), y, num_train=12, attack_size=1, seed=0)


@pytest.mark.slow  # ~55 s; the harness's parts are tested above and in tests/attacks, tests/report
def test_trust_quick_config(tmp_path, capsys):
    config = load_config()
    workdir = str(tmp_path / "trust")
    record = run_experiment(config, workdir, progress=False)
    cell = "digits_fc"
    assert record["cells"] == [cell] and record["data"][cell]["scheme"] == "trust"
    with open(os.path.join(workdir, cell, "summary.json")) as f:
        summary = json.load(f)
    assert list(summary) == list(config.variants)
    sets = ["test", "sample_crops", "permuted", "scaled_x255", "scaled_x1000", "uniform_noise"]
    for variant, entry in summary.items():
        assert list(entry["fpr"]) == sets
        assert 0.5 < entry["test_acc"] <= 1.0
        with open(os.path.join(workdir, cell, variant, "trust.json")) as f:
            trust = json.load(f)
        assert trust["nonmember_sets"] == sets
        assert trust["attacks"] == list(config.attacks_fitted)
        assert set(trust["score_distributions"]["emd"]) == set(sets)
        assert trust["calibration"]["test"]["ece"] >= 0
        assert trust["results"]["uniform_noise"]["loss"]["skipped"]  # no labels: skipped, said so
    # Theorem 1 on a trained ReLU MLP: scaled inputs are flagged as members by the score attacks.
    for s in ("scaled_x255", "scaled_x1000"):
        assert summary["standard"]["fpr"][s]["max_score"] >= 0.95
        assert summary["standard"]["fpr"][s]["entropy"] >= 0.95
    # HAMP's outputs on scaled inputs look like its outputs on everything else.
    assert summary["hamp"]["fpr"]["scaled_x255"]["max_score"] < 0.5
    hamp = summary["hamp"]["fpr"]
    for s in ("scaled_x255", "scaled_x1000"):
        assert abs(hamp[s]["max_score"] - hamp["test"]["max_score"]) < 0.1
    text = render(load_run(workdir))
    assert "Trust: max-score attack FPR" in text and "| digits_fc | llla | max_score |" in text
    # Resuming skips the finished cell.
    capsys.readouterr()
    run_experiment(config, workdir, progress=False)
    assert "done already" in capsys.readouterr().out


def test_trust_config_validation(tmp_path):
    config = load_config()
    config.variants = ("standard", "dropout")
    with pytest.raises(ValueError, match="config.variants"):
        run_experiment(config, str(tmp_path / "a"))
    config = load_config()
    config.attacks_fitted = ("lira",)
    with pytest.raises(ValueError, match="config.attacks_fitted"):
        run_experiment(config, str(tmp_path / "b"))
    config = load_config("resnet18")
    with pytest.raises(ValueError, match="data_dir is required"):
        run_experiment(config, str(tmp_path / "c"))
