"""The test session's own setup (tests/conftest.py): optional compilation cache and file order."""

import os

import jax

import conftest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_heavy_first_files_exist():
    # A renamed or removed file would silently drop out of the heavy-first order.
    missing = [p for p in conftest.HEAVY_FIRST if not os.path.isfile(os.path.join(ROOT, p))]
    assert not missing, missing


def test_compilation_cache_only_when_asked():
    path = os.environ.get("HAMPJAX_TEST_XLA_CACHE")
    if path:
        assert jax.config.jax_compilation_cache_dir == path and os.path.isdir(path)
    else:
        assert jax.config.jax_compilation_cache_dir is None
