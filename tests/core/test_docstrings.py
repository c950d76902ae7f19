"""Every example in a public docstring runs and prints what it says."""

import doctest
import importlib
import pkgutil

import pytest

import hampjax

MODULES = sorted(
    m.name for m in pkgutil.walk_packages(hampjax.__path__, prefix="hampjax.")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(
        module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
