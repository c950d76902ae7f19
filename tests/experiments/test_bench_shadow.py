"""The shadow-training benchmark script runs and reports its figures (no timing asserted)."""

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "experiments"))
import bench_shadow  # noqa: E402


def test_fc_benchmark_reports_both_matmul_bounds(tmp_path):
    path = str(tmp_path / "bench.json")
    figures = bench_shadow.main(["--models", "2", "--epochs", "1", "--samples", "64",
                                 "--features", "12", "--classes", "3", "--json", path,
                                 "--quiet"])
    with open(path) as f:
        assert json.load(f) == figures
    assert figures["model"] == "fc" and figures["loop"] == "scan"
    for name in ("seconds_per_model_epoch", "speedup_vs_sequential", "matmul_peak_gflops",
                 "step_matmul_gflops"):
        assert figures[name] > 0, name
    assert figures["fraction_of_matmul_peak"] == pytest.approx(
        figures["achieved_gflops"] / figures["matmul_peak_gflops"])
    assert figures["fraction_of_step_matmuls"] == pytest.approx(
        figures["achieved_gflops"] / figures["step_matmul_gflops"])


def test_step_matmul_bound_counts_three_matmuls_per_layer(monkeypatch):
    # A fake clock that advances 1 s per call: each timed repeat then takes exactly 1 s.
    clock = iter(range(10**6))
    monkeypatch.setattr(bench_shadow.time, "perf_counter", lambda: float(next(clock)))
    gflops = bench_shadow.step_matmul_gflops(4, [3, 2], batch=5, steps=2, repeats=2)
    assert gflops == pytest.approx(2 * 3 * (2 * 5 * 4 * 3 + 2 * 5 * 3 * 2) / 1e9)
