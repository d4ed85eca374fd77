"""What a pytest run said, read from its JUnit XML report (`--junitxml`)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

TAIL_CHARS = 3000
"""Characters of pytest's output kept where something went wrong (enough for a traceback)."""


@dataclass(frozen=True)
class TestCounts:
    """Tests passed, failed, errored and skipped, with what failed and why tests skipped."""

    __test__ = False  # not a test class, whatever pytest makes of its name

    exit_code: int
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    problems: list[str] = field(default_factory=list)
    """"test: first line of its message" of each failure and error."""
    skip_reasons: list[str] = field(default_factory=list)
    """Each distinct reason tests were skipped for."""
    output_tail: str = ""
    """The end of pytest's output, where it exited with an error."""

    def problem(self) -> str | None:
        """One line saying what went wrong; None where pytest exited cleanly."""
        if self.exit_code == 0:
            return None
        if self.failed or self.errors:
            return f"{self.failed} failed, {self.errors} errors: {'; '.join(self.problems)}"
        return f"pytest exited with code {self.exit_code} ({self.passed} passed)"


def read_junit(path: Path, exit_code: int, output: str) -> TestCounts:
    """The counts of `path`, a JUnit XML report of a pytest run that exited with
    `exit_code` after printing `output`; only the code and output where pytest wrote none."""
    tail = output[-TAIL_CHARS:] if exit_code != 0 else ""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return TestCounts(exit_code, output_tail=output[-TAIL_CHARS:])
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    problems: list[str] = []
    reasons: list[str] = []
    for case in root.iter("testcase"):
        name = f"{case.get('classname', '')}.{case.get('name', '')}".lstrip(".")
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed" if child.tag == "failure" else "errors"
                message = (child.get("message") or child.text or "").strip().splitlines()
                problems.append(f"{name}: {message[0] if message else child.tag}")
            elif child.tag == "skipped" and outcome == "passed":
                outcome = "skipped"
                reason = child.get("message") or "skipped"
                if reason not in reasons:
                    reasons.append(reason)
        counts[outcome] += 1
    return TestCounts(exit_code, **counts, problems=problems, skip_reasons=reasons,
                      output_tail=tail)  # fmt: skip
