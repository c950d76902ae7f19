"""experiments/bad_inputs.py: the classifier of the bad-input campaign and a few of its cases.

The whole campaign (about 260 cases, a few minutes) is run by hand:
``python experiments/bad_inputs.py``; here only its logic and a handful of fast cases.
"""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bi():
    spec = importlib.util.spec_from_file_location("hampjax_bad_inputs", ROOT / "experiments" / "bad_inputs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve the module's annotations through it
    spec.loader.exec_module(module)
    return module


def test_campaign_size_and_coverage(bi):
    assert len(bi.CASES) >= 150
    functions = {c.function for c in bi.CASES}
    for entry in ("demo.py", "run.py", "results.py", "bench_shadow.py", "tpu_scripts/launch.py",
                  "hampjax.data.load_location30", "hampjax.training.load_keep",
                  "hampjax.repro.rundir.read_run"):
        assert entry in functions
    assert all(c.names for c in bi.CASES)


def test_classification(bi, tmp_path):
    fx = bi.Fixtures(str(tmp_path))

    def raise_(error):
        raise error

    cases = [
        bi.Case("f", "named", ("alpha",), lambda fx: raise_(ValueError("alpha must be > 0"))),
        bi.Case("f", "not named", ("alpha",), lambda fx: raise_(ValueError("bad value"))),
        bi.Case("f", "type error", ("alpha",), lambda fx: raise_(TypeError("alpha"))),
        bi.Case("f", "accepted", ("alpha",), lambda fx: np.ones(3)),
        bi.Case("f", "nan", ("alpha",), lambda fx: np.array([np.nan]), lambda fx: np.array([1.0])),
        bi.Case("f", "exact", ("alpha",), lambda fx: np.arange(3.0), lambda fx: np.arange(3.0)),
        bi.Case("g.py", "cli", ("--seed",), lambda fx: ["-c", "import sys; print('g.py: error: --seed "
                                                          "bad', file=sys.stderr); sys.exit(2)"],
                cli="subprocess"),
        bi.Case("g.py", "traceback", ("--seed",), lambda fx: ["-c", "raise ValueError('--seed')"],
                cli="subprocess"),
    ]
    records = bi.run_cases(cases, workers=2)
    assert [r["outcome"] for r in records] == [
        "clear", "unclear", "unclear", "silent", "silent", "clear", "clear", "unclear"]
    table = bi.markdown(records)
    assert "8 bad inputs over 2 functions" in table and "3 clear, 3 unclear, 2 silent" in table
    del fx


def test_a_few_real_cases_are_clear(bi):
    wanted = {("hampjax.data.load_location30", "hand-placed 5-row archive (287,293 bytes expected)"),
              ("hampjax.training.load_keep", "float32 keep.npy"),
              ("hampjax.data.load_tabular", "sha256=<wrong> with only the cache left"),
              ("hampjax.repro.rundir.read_run", "report.json truncated")}
    cases = [c for c in bi.CASES if (c.function, c.input) in wanted]
    assert len(cases) == len(wanted)
    records = bi.run_cases(cases)
    assert [r["outcome"] for r in records] == ["clear"] * len(wanted), records
