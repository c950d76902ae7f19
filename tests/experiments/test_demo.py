"""Smoke test of the quickstart demo with tiny settings (the real run takes a few minutes).

Two of the five defenses keep it fast; every defense's recipe is trained by
tests/training/test_engine.py and tests/evaluation/test_pipeline.py. The same work directory
is then extended from 4 to 6 models: only the 2 new models are trained (``-m slow``).
"""

import importlib.util
import json
import os

import pytest

from hampjax.report import verify_run_dir

DEMO = os.path.join(os.path.dirname(__file__), "..", "..", "experiments", "demo.py")


@pytest.fixture(scope="module")
def demo():
    spec = importlib.util.spec_from_file_location("hampjax_demo", DEMO)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(demo, workdir, models, defenses="undefended,hamp", extra=()):
    return demo.main(["--workdir", workdir, "--models", str(models), "--epochs", "1",
                      "--nn-epochs", "1", "--defenses", defenses, "--quiet", *extra])


def test_demo_quick(demo, tmp_path, capsys):
    workdir = str(tmp_path / "demo")
    report = _run(demo, workdir, 4)
    out = capsys.readouterr().out
    assert "Summary (max over all attacks" in out and "hamp" in out
    # --targets defaults to 4: each of models 0..3 in turn the target of the cheap attacks.
    assert "Mean ± std over 4 targets" in out and "lira_online_fixed_variance" in out
    with open(os.path.join(workdir, "report.json")) as f:
        on_disk = json.load(f)
    assert on_disk == json.loads(json.dumps(report))
    assert sorted(on_disk["defenses"]) == ["hamp", "undefended"]
    for name in ("undefended", "hamp"):
        d = on_disk["defenses"][name]
        assert {"train_acc", "test_acc", "max_tpr@0.1%fpr", "max_tnr@0.1%fnr"} <= set(d)
        for attack in d["attacks"].values():
            assert {"auc", "tpr@0.1%fpr", "tnr@0.1%fnr"} <= set(attack)
    assert on_disk["defenses"]["hamp"]["config"]["output"]["kind"] == "hamp"
    assert on_disk["defenses"]["undefended"]["config"]["output"]["kind"] == "none"
    verify_run_dir(workdir)
    assert [on_disk["defenses"][n]["models_trained"] for n in ("undefended", "hamp")] == [4, 4]
    multi = on_disk["defenses"]["hamp"]["multi_target"]
    assert multi["targets"] == [0, 1, 2, 3] and "rmia" in multi["attacks"]
    assert multi["attacks"]["loss"]["auc"]["per_target"][0] == on_disk["defenses"]["hamp"]["attacks"]["loss"]["auc"]
    assert {"shokri", "risk_score"} <= set(on_disk["defenses"]["hamp"]["attacks"])


@pytest.mark.slow  # The engine's own extension test (tests/training) runs by default.
def test_demo_extends_a_finished_run(demo, tmp_path, capsys):
    workdir = str(tmp_path / "demo")
    _run(demo, workdir, 4, "undefended", ["--targets", "1"])
    # Trains only models 4 and 5.
    extended = _run(demo, workdir, 6, "undefended", ["--targets", "1"])
    d = extended["defenses"]["undefended"]
    assert (d["models_trained"], d["models_loaded"]) == (2, 4)
    assert extended["run"]["num_models"] == 6
    assert "undefended 2 trained / 4 loaded" in capsys.readouterr().out
    verify_run_dir(workdir)


def test_demo_flag_validation(demo):
    for argv in (["--models", "5"], ["--models", "2"], ["--epochs", "0"], ["--nn-epochs", "0"],
                 ["--defenses", "undefended,nope"], ["--models", "4", "--targets", "5"],
                 ["--targets", "0"]):
        with pytest.raises(SystemExit):
            demo.main(argv + ["--quiet"])
