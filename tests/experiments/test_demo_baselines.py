"""The demo's opt-in baselines: ``--defenses`` accepts them, DP-SGD prints its eps."""

import importlib.util
import json
import os

import pytest

DEMO = os.path.join(os.path.dirname(__file__), "..", "..", "experiments", "demo.py")


@pytest.fixture(scope="module")
def demo():
    spec = importlib.util.spec_from_file_location("hampjax_demo_baselines", DEMO)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # ~45 s (every attack family); DP-SGD through the pipeline is also run by
# the hamp_dp_grid and ws_dp_tradeoff quick configs in the default suite.
def test_demo_runs_dp_sgd_and_prints_its_eps(demo, tmp_path, capsys):
    workdir = str(tmp_path / "demo")
    demo.main(["--workdir", workdir, "--models", "4", "--epochs", "2", "--nn-epochs", "1",
               "--targets", "1", "--defenses", "dp_sgd", "--quiet"])
    out = capsys.readouterr().out
    assert "dp_sgd: eps = " in out and "at delta = 1e-05" in out
    with open(os.path.join(workdir, "report.json")) as f:
        assert list(json.load(f)["defenses"]) == ["dp_sgd"]


def test_demo_names_the_baselines_and_refuses_bad_combinations(demo, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        demo.main(["--workdir", str(tmp_path / "a"), "--defenses", "hamp,purchase_gan"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "unknown ['purchase_gan']" in err and "advreg" in err and "early_stopping" in err
    assert all(name in err for name in ("selena", "dmp", "memguard"))
    with pytest.raises(SystemExit):  # AdvReg's warm-up epoch needs --epochs >= 2
        demo.main(["--workdir", str(tmp_path / "b"), "--epochs", "1", "--defenses", "advreg"])
    assert "warmup_epochs" in capsys.readouterr().err
