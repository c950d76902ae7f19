"""Run-directory integrity: the manifest, interrupted writes, corrupt files, per-defense extras."""

import json
import os

import numpy as np
import pytest

from hampjax.report import (
    DefenseResult,
    Evaluation,
    load_evaluation,
    load_report,
    verify_run_dir,
    write_report,
)
# Not `from hampjax.report import rebuild`: once the CLI module hampjax.report.rebuild is
# imported (test_report.py does), that package attribute is the module, not the function.
from hampjax.report.report import rebuild


def _evaluation(shift=0.0):
    attack = ([0.9 + shift, 0.1, 0.7, 0.3], [1, 0, 1, 0])
    result = DefenseResult(
        0.9, 0.7, {"loss": attack}, config={"recipe": {"name": "r", "lr": 0.1}},
        stats={"entropy_members": 0.5, "entropy_nonmembers": 0.9},
        timings={"train": 1.0, "lira": 0.5}, models_trained=4, models_loaded=0)
    return Evaluation({"hamp": result}, num_models=4, num_queries=1, seeds={"seed": 0},
                      config={"num_models": 4}, timings={}, keep=np.eye(4, dtype=bool))


def test_extras_round_trip_into_evaluation_and_report_json(tmp_path):
    report = write_report(tmp_path, _evaluation(), bootstrap_resamples=3, seed=0, plots=False)
    entry = report["defenses"]["hamp"]
    assert entry["config"] == {"recipe": {"name": "r", "lr": 0.1}}
    assert entry["stats"] == {"entropy_members": 0.5, "entropy_nonmembers": 0.9}
    assert (entry["models_trained"], entry["models_loaded"]) == (4, 0)
    assert report["run"]["timings"] == {"hamp/train": 1.0, "hamp/lira": 0.5}
    loaded = load_evaluation(tmp_path).defenses["hamp"]
    assert loaded.stats == _evaluation().defenses["hamp"].stats
    assert loaded.timings == {"train": 1.0, "lira": 0.5} and loaded.models_trained == 4
    before = (tmp_path / "report.json").read_bytes()
    assert rebuild(tmp_path, plots=False) == report
    assert (tmp_path / "report.json").read_bytes() == before
    verify_run_dir(tmp_path)
    assert load_report(tmp_path) == report


def test_a_kill_between_writes_is_detected_and_rebuild_fixes_it(tmp_path):
    write_report(tmp_path, _evaluation(), bootstrap_resamples=0, seed=0, plots=False)
    old_report = (tmp_path / "report.json").read_bytes()
    old_manifest = (tmp_path / "manifest.json").read_bytes()
    # A newer run wrote its sources, then was killed before the report and the manifest.
    write_report(tmp_path, _evaluation(shift=0.05), bootstrap_resamples=0, seed=0, plots=False)
    (tmp_path / "report.json").write_bytes(old_report)
    (tmp_path / "manifest.json").write_bytes(old_manifest)
    with pytest.raises(ValueError, match=r"scores.npz differs from the one manifest.json records"
                                         r".*python -m hampjax.report.rebuild"):
        verify_run_dir(tmp_path)
    with pytest.raises(ValueError, match="hampjax.report.rebuild"):
        load_report(tmp_path)
    assert load_evaluation(tmp_path).defenses["hamp"].attacks["loss"].scores[0] == pytest.approx(0.95)
    report = rebuild(tmp_path, plots=False)
    verify_run_dir(tmp_path)
    assert report["defenses"]["hamp"]["attacks"]["loss"]["auc"] == 1.0
    # A stale report.md alone is caught too, and so is a missing manifest.
    (tmp_path / "report.md").write_text("old")
    with pytest.raises(ValueError, match="report.md differs"):
        verify_run_dir(tmp_path)
    os.remove(tmp_path / "manifest.json")
    with pytest.raises(ValueError, match="manifest.json is missing.*rebuild"):
        verify_run_dir(tmp_path)


def test_sources_from_two_writes_are_refused(tmp_path):
    write_report(tmp_path, _evaluation(), bootstrap_resamples=0, seed=0, plots=False)
    meta = (tmp_path / "evaluation.json").read_bytes()
    write_report(tmp_path, _evaluation(shift=0.05), bootstrap_resamples=0, seed=0, plots=False)
    (tmp_path / "evaluation.json").write_bytes(meta)  # killed between the two source writes
    with pytest.raises(ValueError, match="scores.npz is not the one .*evaluation.json was written "
                                         "with.*rerun the evaluation"):
        load_evaluation(tmp_path)


@pytest.mark.parametrize("name, content, match", [
    ("evaluation.json", b'{"format": "hampjax.evalu', "evaluation.json is corrupt or truncated"),
    ("scores.npz", b"PK\x03\x04 truncated", "scores.npz is corrupt or truncated"),
])
def test_corrupt_sources_name_the_file_and_the_fix(tmp_path, name, content, match):
    write_report(tmp_path, _evaluation(), bootstrap_resamples=0, seed=0, plots=False)
    if name == "scores.npz":  # keep the recorded hash in step, to reach the npz reader
        meta = json.loads((tmp_path / "evaluation.json").read_text())
        del meta["scores_sha256"]
        (tmp_path / "evaluation.json").write_text(json.dumps(meta))
    (tmp_path / name).write_bytes(content)
    for fn in (load_evaluation, rebuild):
        with pytest.raises(ValueError, match=match + ".*rerun the evaluation") as info:
            fn(tmp_path)
        assert str(tmp_path / name) in str(info.value) and "allow_pickle" not in str(info.value)
    (tmp_path / "manifest.json").write_bytes(b"{")
    with pytest.raises(ValueError, match="manifest.json is corrupt or truncated.*rebuild"):
        verify_run_dir(tmp_path)


def test_defense_result_extras_validation():
    with pytest.raises(ValueError, match="stats"):
        DefenseResult(1.0, 0.5, {"loss": ([1.0, 0.0], [1, 0])}, stats={"e": float("nan")})
    with pytest.raises(ValueError, match="timings"):
        DefenseResult(1.0, 0.5, {"loss": ([1.0, 0.0], [1, 0])}, timings={"train": -1.0})
    with pytest.raises(ValueError, match="models_trained"):
        DefenseResult(1.0, 0.5, {"loss": ([1.0, 0.0], [1, 0])}, models_trained=-1)
    with pytest.raises(ValueError, match="config must be JSON-serializable"):
        DefenseResult(1.0, 0.5, {"loss": ([1.0, 0.0], [1, 0])}, config={"f": object()})


def test_pickled_scores_are_refused_without_a_pickle_hint(tmp_path):
    write_report(tmp_path, _evaluation(), bootstrap_resamples=0, seed=0, plots=False)
    meta = json.loads((tmp_path / "evaluation.json").read_text())
    del meta["scores_sha256"]
    (tmp_path / "evaluation.json").write_text(json.dumps(meta))
    np.savez(tmp_path / "scores.npz", **{"keep": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(ValueError, match="scores.npz is corrupt or truncated") as info:
        load_evaluation(tmp_path)
    assert "allow_pickle" not in str(info.value)
