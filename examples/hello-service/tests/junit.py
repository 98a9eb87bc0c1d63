"""Run the unit tests and write a JUnit XML report (standard library only)."""

from __future__ import annotations

import sys
import time
import unittest
from pathlib import Path
from xml.sax.saxutils import quoteattr


class Recorder(unittest.TextTestResult):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cases = []
        self._started = 0.0

    def startTest(self, test):  # noqa: N802
        self._started = time.perf_counter()
        super().startTest(test)

    def _record(self, test, status, message=""):
        took = time.perf_counter() - self._started
        self.cases.append((type(test).__module__ + "." + type(test).__name__,
                           test._testMethodName, status, message, took))

    def addSuccess(self, test):  # noqa: N802
        super().addSuccess(test)
        self._record(test, "passed")

    def addFailure(self, test, err):  # noqa: N802
        super().addFailure(test, err)
        self._record(test, "failure", self._exc_info_to_string(err, test))

    def addError(self, test, err):  # noqa: N802
        super().addError(test, err)
        self._record(test, "error", self._exc_info_to_string(err, test))

    def addSkip(self, test, reason):  # noqa: N802
        super().addSkip(test, reason)
        self._record(test, "skipped", reason)


def write(cases, path: Path) -> None:
    lines = ['<?xml version="1.0" encoding="utf-8"?>', '<testsuite name="unit">']
    for classname, name, status, message, took in cases:
        attrs = f"classname={quoteattr(classname)} name={quoteattr(name)} time=\"{took:.4f}\""
        if status == "passed":
            lines.append(f"  <testcase {attrs}/>")
        else:
            first = message.strip().splitlines()[-1] if message.strip() else status
            lines.append(f"  <testcase {attrs}><{status} message={quoteattr(first)}/></testcase>")
    lines.append("</testsuite>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    root = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root))
    suite = unittest.defaultTestLoader.discover(str(root / "tests"), top_level_dir=str(root))
    runner = unittest.TextTestRunner(resultclass=Recorder, verbosity=2)
    result = runner.run(suite)
    write(result.cases, Path(sys.argv[1] if len(sys.argv) > 1 else "reports/unit.xml"))
    sys.exit(0 if result.wasSuccessful() else 1)
