"""The experiment entry point under the local multi-process launcher (2 CPU processes, the code
path of a TPU pod): both processes train their share, process 0 writes, and the report equals a
single-process run's."""

import importlib.util
import json
import os
from pathlib import Path

import pytest

from hampjax.repro import run_experiment

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "experiments" / "configs" / "hamp_entropy.py"


def _load_launcher():
    spec = importlib.util.spec_from_file_location("hampjax_launch", ROOT / "tpu_scripts" / "launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _accuracies(report):
    return {name: (d["train_acc"], d["test_acc"]) for name, d in report["defenses"].items()}


def _aucs(report):
    return {(name, a): v["auc"] for name, d in report["defenses"].items()
            for a, v in d["attacks"].items()}


@pytest.mark.slow  # ~55 s; two local processes training one run: tests/training/test_distributed.py
def test_two_processes_match_one(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("XLA_FLAGS", "")  # One CPU device per process (no fake devices).
    launch = _load_launcher()
    workdir = tmp_path / "multi"
    rc = launch.main(["local", "-n", "2", "--platform", "cpu", "--timeout", "400",
                      "--log-dir", str(tmp_path / "logs"), "--workdir", str(workdir),
                      str(ROOT / "experiments" / "run.py"), "--",
                      f"--config={CONFIG}:quick,undefended", "--progress=false"])
    logs = "".join(p.read_text() for p in sorted((tmp_path / "logs").iterdir()))
    assert rc == 0, logs[-4000:]
    # Both processes trained their share: 4 models, one model range each (engine layout).
    train = workdir / "digits" / "train" / "undefended"
    assert len([c for c in os.listdir(train) if c.startswith("models_")]) == 4
    with open(workdir / "digits" / "report.json") as f:
        multi = json.load(f)

    spec = importlib.util.spec_from_file_location("config_entropy", CONFIG)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config("quick,undefended")
    single_dir = tmp_path / "single"
    run_experiment(config, str(single_dir), progress=False)
    with open(single_dir / "digits" / "report.json") as f:
        single = json.load(f)
    # The same models (same accuracies). This process has 8 fake CPU devices and the workers one
    # each, so float rounding of the sharded predictions may differ in the last bits: AUCs agree
    # to a small tolerance rather than bit for bit.
    assert _accuracies(multi) == _accuracies(single)
    aucs_multi, aucs_single = _aucs(multi), _aucs(single)
    assert aucs_multi.keys() == aucs_single.keys()
    for k in aucs_multi:
        assert abs(aucs_multi[k] - aucs_single[k]) < 5e-3, k
