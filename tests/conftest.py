"""Test-wide setup: 8 fake CPU devices so multi-device code runs anywhere, and one XLA
compilation cache per test session.

Most of the suite's time is XLA compilation, and many tests compile the same programs: the
same model and shapes under a fresh closure (a new ``apply_fn``, a new attack target), or the
same program in the other xdist worker. JAX's persistent compilation cache is keyed on the
compiled program itself (its HLO, the compile options, the jax/jaxlib versions and the
backend), so a hit loads exactly the executable a compile would have produced; tracing, and
so every trace count a test checks, is unchanged. The cache lives in a fresh temporary
directory per session, shared by the xdist workers through ``HAMPJAX_TEST_XLA_CACHE`` (set
by whichever process loads this file first, the controller under ``-n``, and inherited by
the workers it starts) and removed when that process exits. Set ``HAMPJAX_TEST_XLA_CACHE``
yourself to keep a cache across sessions, or to ``off`` to compile everything afresh.
"""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)


def _compilation_cache_dir() -> str | None:
    path = os.environ.get("HAMPJAX_TEST_XLA_CACHE")
    if path == "off":
        return None
    if not path:
        path = tempfile.mkdtemp(prefix="hampjax-test-xla-cache-")
        os.environ["HAMPJAX_TEST_XLA_CACHE"] = path
        atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


_cache_dir = _compilation_cache_dir()
if _cache_dir is not None:
    jax.config.update("jax_compilation_cache_dir", _cache_dir)
    # Every compile looks the cache up; only programs that took >= 1 s to compile are stored
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
