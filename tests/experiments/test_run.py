"""experiments/run.py reports command-line mistakes in one line on stderr with exit status 2,
before anything runs: unknown --config. fields (listing the valid ones), a missing config file,
a workdir that is a file, a workdir holding a run of a different config (the dotted field)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from hampjax.repro import rundir, run_experiment

ROOT = Path(__file__).resolve().parents[2]
RUN = str(ROOT / "experiments" / "run.py")


def load_config(name: str, arg: str | None = "quick"):
    spec = importlib.util.spec_from_file_location(
        f"config_{name}", ROOT / "experiments" / "configs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


def _run(*args, timeout=120):
    return subprocess.run([sys.executable, RUN, *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def test_run_reports_unknown_fields_missing_files_and_bad_workdirs(tmp_path):
    config = f"--config={ROOT / 'experiments' / 'configs' / 'hamp_main.py'}:quick"
    out = _run(config, "--config.no_such_field=1", f"--workdir={tmp_path / 'w'}")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert lines == [lines[0]] and lines[0].startswith(
        "error: --config.no_such_field: unknown field; valid fields: ")
    assert "cells" in lines[0] and "num_models" in lines[0] and "Traceback" not in out.stderr
    out = _run(config, "--config.cells.digits.defenses.hamp.optimizer.lr=0.1",
               f"--workdir={tmp_path / 'w'}")
    assert out.returncode == 2 and "learning_rate" in out.stderr
    assert "under config.cells.digits.defenses.hamp.optimizer" in out.stderr
    out = _run("--config=experiments/configs/nope.py", f"--workdir={tmp_path / 'w'}")
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "error: --config: config file 'experiments/configs/nope.py' does not exist")
    afile = tmp_path / "file"
    afile.write_text("x")
    out = _run(config, f"--workdir={afile}")
    assert out.returncode == 2 and out.stderr.strip() == (
        f"error: --workdir: '{afile}' is a file, not a directory")
    assert not (tmp_path / "w").exists()  # Nothing ran.


def test_resumed_workdir_names_the_changed_spec_field(tmp_path):
    config = load_config("hamp_main")
    workdir = str(tmp_path / "w")
    rundir.open_experiment(workdir, kind=config.experiment, name=config.name,
                           config=rundir.config_dict(config))
    config.cells.digits.defenses.hamp.optimizer.learning_rate = 0.2
    field = r"cells\.digits\.defenses\.hamp\.optimizer\.learning_rate"
    with pytest.raises(ValueError, match=field):
        run_experiment(config, workdir, progress=False)
    out = _run(f"--config={ROOT / 'experiments' / 'configs' / 'hamp_main.py'}:quick",
               "--config.cells.digits.defenses.undefended.epochs=3", f"--workdir={workdir}")
    assert out.returncode == 2
    assert "fields differ: cells.digits.defenses.undefended.epochs" in out.stderr


def test_corrupt_experiment_json_is_one_clear_line(tmp_path):
    workdir = tmp_path / "w"
    workdir.mkdir()
    (workdir / "experiment.json").write_text("{trunc")
    out = _run(f"--config={ROOT / 'experiments' / 'configs' / 'hamp_main.py'}:quick",
               f"--workdir={workdir}")
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert "experiment.json is corrupt or truncated" in out.stderr
