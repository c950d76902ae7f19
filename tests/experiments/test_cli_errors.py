"""Every entry point's user errors: exit status 2, ONE line on stderr naming the flag or the
file, no traceback (issue 15). demo.py and the benchmarks through their main() (the errors come
before any computation); run.py and results.py in subprocesses (absl parses there).

experiments/bad_inputs.py runs many more such cases (``python experiments/bad_inputs.py``).
"""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hampjax import cli

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / "experiments" / "configs" / "hamp_main.py")


def _script(name):
    spec = importlib.util.spec_from_file_location(f"hampjax_cli_{name}", ROOT / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def demo():
    return _script("demo")


def _one_line_exit_2(capsys, call, *needles):
    with pytest.raises(SystemExit) as exc:
        call()
    assert exc.value.code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("argv, needles", [
    (["--seed", "-1"], ["argument --seed", "'-1'"]),
    (["--seed", "1.5"], ["argument --seed", "expected an integer"]),
    (["--models", "3"], ["argument --models", ">= 4"]),
    (["--models", "5"], ["--models must be an even number"]),
    (["--targets", "0"], ["argument --targets"]),
    (["--models", "4", "--targets", "5"], ["--targets must be in [1, --models=4]"]),
    (["--epochs", "0"], ["argument --epochs"]),
    (["--nn-epochs", "x"], ["argument --nn-epochs"]),
    (["--defenses", "hamp,nope"], ["--defenses: unknown ['nope']"]),
    (["--defenses", "hamp,hamp"], ["--defenses", "twice"]),
    (["--defenses", ""], ["--defenses: unknown ['']"]),
    (["--no-such-flag"], ["unrecognized arguments: --no-such-flag"]),
])
def test_demo_flags(demo, capsys, argv, needles):
    line = _one_line_exit_2(capsys, lambda: demo.main(argv), *needles)
    assert line.startswith("demo.py: error: ")


def test_demo_workdir_that_is_a_file(demo, capsys, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    _one_line_exit_2(capsys, lambda: demo.main(["--workdir", str(afile)]), "--workdir", "is a file")
    _one_line_exit_2(capsys, lambda: demo.main(["--workdir", str(afile / "sub")]),
                     "--workdir: cannot create", "is a file")


def test_demo_corrupt_run_directory_file_is_one_line(demo, capsys, tmp_path, monkeypatch):
    """A library ValueError naming a run-directory file ends the demo in one line, exit 2."""
    def corrupt(*args, **kwargs):
        raise ValueError(f"{tmp_path}/train/undefended/keep.npy is corrupt or truncated\n(EOF)")

    monkeypatch.setattr(demo, "evaluate_defenses", corrupt)
    line = _one_line_exit_2(capsys, lambda: demo.main(["--workdir", str(tmp_path), "--models", "4",
                                                       "--defenses", "undefended", "--quiet"]),
                            "keep.npy is corrupt or truncated (EOF)")
    assert line.startswith("demo.py: error: ")
    monkeypatch.setenv("HAMPJAX_TRACEBACK", "1")
    with pytest.raises(ValueError, match="keep.npy"):
        demo.main(["--workdir", str(tmp_path), "--models", "4", "--defenses", "undefended", "--quiet"])


@pytest.mark.parametrize("name, argv, needles", [
    ("bench_attacks", ["--models", "0"], ["argument --models"]),
    ("bench_attacks", ["--json", "/"], ["--json", "is a directory"]),
    ("bench_shadow", ["--seed", "-3"], ["argument --seed"]),
    ("bench_shadow", ["--models", "3"], ["--models must be even"]),
    ("bench_modify_output", ["--budget", "nan"], ["argument --budget"]),
    ("bench_modify_output", ["--json", "/no/such/dir/x.json"], ["--json", "does not exist"]),
])
def test_bench_flags(capsys, name, argv, needles):
    module = _script(name)
    _one_line_exit_2(capsys, lambda: module.main(argv), *needles)


def _run(script, *args):
    out = subprocess.run([sys.executable, str(ROOT / "experiments" / script), *args],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    return lines[0]


def test_run_py_absl_errors_are_one_line(tmp_path):
    line = _run("run.py", f"--config={CONFIG}:quick", "--config.seed=abc", "--no_such_flag",
                f"--workdir={tmp_path / 'w'}")
    assert line.startswith("error: ") and ("--config.seed=abc" in line or "no_such_flag" in line)
    assert not (tmp_path / "w").exists()


def test_results_py_corrupt_report_names_the_file(tmp_path):
    workdir = tmp_path / "run"
    (workdir / "digits").mkdir(parents=True)
    (workdir / "experiment.json").write_text(json.dumps(
        {"experiment": "hamp_main", "name": "x", "config": {}, "cells": ["digits"]}))
    report = workdir / "digits" / "report.json"
    report.write_text('{"defenses": {')
    line = _run("results.py", str(workdir))
    assert str(report) in line and "report.json must be valid JSON" in line


def test_cli_helpers(tmp_path):
    parse = cli.int_at_least(2)
    assert parse("2") == 2
    for bad in ("1", "x", "2.0"):
        with pytest.raises(Exception, match="expected an integer"):
            parse(bad)
    assert cli.float_in_range(0, 1)("0.5") == 0.5
    with pytest.raises(Exception, match="expected a number in"):
        cli.float_in_range(0, 1)("inf")
    afile = tmp_path / "f"
    afile.write_text("")
    with pytest.raises(ValueError, match="--out: .* is a directory"):
        cli.check_output_file("--out", str(tmp_path))
    with pytest.raises(ValueError, match="--w: cannot create"):
        cli.check_workdir("--w", str(afile / "a" / "b"))
    assert cli.one_line("a\n  b\tc") == "a b c"
    assert np.iinfo(np.int64).max == cli.MAX_SEED
