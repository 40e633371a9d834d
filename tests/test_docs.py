"""The documentation's examples are tests: every public docstring and the README."""
import doctest
from pathlib import Path

import pytest

import cyconv

README = Path(__file__).resolve().parent.parent / "README.md"
FLAGS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS


@pytest.mark.parametrize("name", cyconv.__all__)
def test_docstring_examples(name):
    obj = getattr(cyconv, name)
    tests = doctest.DocTestFinder().find(obj, name, globs={})
    examples = sum(len(t.examples) for t in tests)
    assert examples > 0, f"cyconv.{name} has no Examples"
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    for test in tests:
        runner.run(test)
    assert runner.failures == 0, f"{runner.failures} doctest failures in cyconv.{name}"


def test_readme_examples():
    result = doctest.testfile(str(README), module_relative=False, optionflags=FLAGS)
    assert result.attempted > 0
    assert result.failed == 0
