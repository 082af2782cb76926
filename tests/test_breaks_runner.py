"""tests/breaks/run.py tells a test that caught its break from one that never got as far as its assertions.

A break is caught when its tests fail in their own bodies. A test whose fixture fails in set-up errors before
its assertions run: it would "fail" under any break, so it catches none (tests/README.md).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

RUNNER = Path(__file__).resolve().parent / "breaks" / "run.py"

SCRATCH_TESTS = """
import pytest

@pytest.fixture
def broken():
    raise RuntimeError("the fixture fails in set-up")

@pytest.fixture
def fails_after():
    yield
    raise RuntimeError("the fixture fails in tear-down")

def test_fixture_fails(broken):
    assert False, "never reached"

def test_fails():
    assert 1 == 2

def test_passes():
    assert True

def test_passes_then_teardown_fails(fails_after):
    assert True

@pytest.mark.parametrize("case", ["errors", "fails"])
def test_one_case_errors_one_fails(request, case):
    if case == "errors":
        request.getfixturevalue("broken")
    assert case != "fails"
"""


def _runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("breaks_run", RUNNER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_a_test_that_errors_in_set_up_has_not_caught_its_break(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # not this project's configuration
    (tmp_path / "test_scratch.py").write_text(SCRATCH_TESTS)
    report = tmp_path / "junit.xml"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={report}",
            "test_scratch.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        timeout=120,
        check=False,
    )
    run = _runner()
    outcomes = run.outcomes_of(report)
    assert outcomes == {
        "test_fixture_fails": "error",
        "test_fails": "failed",
        "test_passes": "passed",
        "test_passes_then_teardown_fails": "error",
        "test_one_case_errors_one_fails": "failed",
    }
    assert not run.caught({"test_fixture_fails": outcomes["test_fixture_fails"]})
    assert not run.caught({"test_fails": "failed", "test_fixture_fails": "error"})
    assert run.caught({"test_fails": "failed", "test_one_case_errors_one_fails": "failed"})
    assert run.caught({"test_passes": "passed"}, clean=True)
    assert not run.caught({})
