"""The CUDA tests' results as the suite reads them from pytest's JUnit XML report."""

from __future__ import annotations

from pathlib import Path

from benchmarks.gpu_suite.pytest_counts import read_junit

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="5" failures="1" errors="1" skipped="2">
 <testcase classname="tests.detector.test_cuda" name="test_a"/>
 <testcase classname="tests.detector.test_cuda" name="test_b[fp16]">
  <failure message="AssertionError: assert 0.91 &gt;= 0.95&#10;more">trace</failure></testcase>
 <testcase classname="tests.detector.test_cuda" name="test_c">
  <error message="failed on setup with &quot;OSError&quot;">trace</error></testcase>
 <testcase classname="tests.detector.test_cuda" name="test_d">
  <skipped type="pytest.skip" message="needs a CUDA GPU">why</skipped></testcase>
 <testcase classname="tests.detector.test_cuda" name="test_e">
  <skipped type="pytest.skip" message="needs a CUDA GPU">why</skipped></testcase>
</testsuite></testsuites>
"""


def test_counts_failures_with_their_first_line_and_distinct_skip_reasons(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    path.write_text(JUNIT)
    counts = read_junit(path, 1, "x" * 5000)
    assert (counts.passed, counts.failed, counts.errors, counts.skipped) == (1, 1, 1, 2)
    assert counts.problems == [
        "tests.detector.test_cuda.test_b[fp16]: AssertionError: assert 0.91 >= 0.95",
        'tests.detector.test_cuda.test_c: failed on setup with "OSError"',
    ]
    assert counts.skip_reasons == ["needs a CUDA GPU"]
    assert counts.problem() == f"1 failed, 1 errors: {'; '.join(counts.problems)}"
    assert 0 < len(counts.output_tail) < 5000


def test_a_run_that_wrote_no_report_keeps_its_exit_code_and_output(tmp_path: Path) -> None:
    counts = read_junit(tmp_path / "missing.xml", 4, "ERROR: file or directory not found")
    assert (counts.passed, counts.failed, counts.skipped) == (0, 0, 0)
    assert counts.problem() == "pytest exited with code 4 (0 passed)"
    assert counts.output_tail == "ERROR: file or directory not found"


def test_a_clean_run_has_no_problem_and_keeps_no_output(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    path.write_text(
        JUNIT.replace("<failure", "<system-out")
        .replace("</failure>", "</system-out>")
        .replace("<error", "<system-err")
        .replace("</error>", "</system-err>")
    )
    counts = read_junit(path, 0, "all good")
    assert (counts.passed, counts.failed, counts.errors) == (3, 0, 0)
    assert counts.problem() is None and counts.output_tail == ""
