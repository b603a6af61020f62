"""scripts/benchmark_suite.py reads pytest's own figures, and refuses a run that did not pass."""

import runpy

import pytest
from conftest import ROOT

SCRIPT = runpy.run_path(str(ROOT / "scripts" / "benchmark_suite.py"))

OUTPUT = """\
........................................................................ [ 30%]
============================= slowest 15 durations =============================
51.75s call     tests/test_tuning.py::test_a_killed_driver
19.32s setup    tests/test_resume.py::test_a_run_killed_at_a_random_moment_resumes_identical
60.10s call     tests/test_reinforce.py::test_reinforce_sigterm_then_rerun_ends_identical
================= 234 passed, 91 warnings in 359.74s (0:05:59) =================
"""


def test_the_summary_and_the_slowest_tests_come_from_pytests_output():
    assert SCRIPT["pytest_summary"](OUTPUT) == {"passed": 234, "seconds": 359.74}
    assert SCRIPT["pytest_summary"]("205 passed, 33 warnings in 59.74s") == {
        "passed": 205, "seconds": 59.74}
    slowest = SCRIPT["slowest"](OUTPUT, count=2)
    assert [(p["seconds"], p["phase"]) for p in slowest] == [(60.10, "call"), (51.75, "call")]
    assert slowest[0]["test"].endswith("test_reinforce_sigterm_then_rerun_ends_identical")


@pytest.mark.parametrize("line, message", [
    ("==== 1 failed, 233 passed in 359.74s ====", "did not pass"),
    ("==== 233 passed, 1 error in 359.74s ====", "did not pass"),
    ("no tests ran in 0.01s", "no 'N passed in S s' line"),
], ids=["failed", "error", "none-passed"])
def test_a_run_that_did_not_pass_has_no_suite_time(line, message):
    with pytest.raises(ValueError, match=message):
        SCRIPT["pytest_summary"](line)
