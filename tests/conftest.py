"""Test-wide setup: 8 fake CPU devices so multi-device code runs anywhere, an optional XLA
compilation cache, and the order in which files start under ``-n 2 --dist loadfile``.

``HAMPJAX_TEST_XLA_CACHE=<dir>`` turns on JAX's persistent compilation cache in ``<dir>``
(kept across sessions, shared by the xdist workers). It is keyed on the compiled program
itself (its HLO, the compile options, the jax/jaxlib versions and the backend), so a hit loads
exactly the executable a compile would have produced, and tracing (every trace count a test
checks) is unchanged. It is off by default: in a fresh session it saved about 30% of the CPU
time of the training tests (programs recompiled under fresh closures) but cost about 20% more
in the evaluation and experiment-config tests (hashing and storing programs that close over
large arrays), about even over the suite. It pays off when rerunning the suite locally.
"""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)


_cache_dir = os.environ.get("HAMPJAX_TEST_XLA_CACHE")
if _cache_dir:
    os.makedirs(_cache_dir, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", _cache_dir)
    # Every compile looks the cache up; programs that took >= 1 s to compile are stored
    # (jax's default; storing the many small ones cost more CPU than their hits saved).
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


# With ``-n 2 --dist loadfile`` a test file is the unit of work. pytest-xdist queues files by
# number of tests, most first, so the heaviest files (a few long tests each) came last and
# one worker finished alone. Instead the files below, the heaviest measured with
# ``--durations`` (refresh the list when that changes), start first, heaviest first (longest
# processing time first); every other file follows in collection order.
HEAVY_FIRST = (
    "tests/repro/test_configs.py",
    "tests/training/test_engine.py",
    "tests/experiments/test_demo.py",
    "tests/core/test_docstrings.py",
    "tests/repro/test_multiprocess_experiment.py",
    "tests/evaluation/test_pipeline.py",
    "tests/training/test_loop_strategies.py",
    "tests/repro/test_config_specs.py",
    "tests/attacks/test_label_only.py",
    "tests/training/test_predict.py",
    "tests/attacks/test_lira.py",
    "tests/training/test_distributed.py",
    "tests/training/test_spec.py",
    "tests/models/test_model_functions.py",
    "tests/attacks/test_shift.py",
    "tests/attacks/test_nn_attacks.py",
    "tests/attacks/test_metric_attacks.py",
    "tests/training/test_mixed_precision.py",
)


def pytest_configure(config):
    if hasattr(config.option, "loadscopereorder"):  # pytest-xdist: keep the order below.
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(session, config, items):
    rank = {path: i for i, path in enumerate(HEAVY_FIRST)}

    def key(item):
        path = item.nodeid.split("::", 1)[0]
        return rank.get(path, len(HEAVY_FIRST))

    items.sort(key=key)  # stable: tests keep their order within a file and among the rest
