"""Acceptance tests: run the Given/When/Then scenarios of features/*.feature against the
real service over HTTP, and write a JUnit report (one test case per scenario).

A deliberately small runner (standard library only) so the example needs nothing to
install; the scenarios are ordinary Gherkin that any Cucumber-style tool can run too.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote
from urllib.request import urlopen
from xml.sax.saxutils import quoteattr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from hello.app import serve  # noqa: E402

Step = Callable[..., None]
STEPS: list[tuple[re.Pattern[str], Step]] = []


def step(pattern: str) -> Callable[[Step], Step]:
    def register(function: Step) -> Step:
        STEPS.append((re.compile(f"^{pattern}$"), function))
        return function
    return register


@step(r"the service is running")
def service_running(context: dict) -> None:
    with urlopen(context["url"] + "/health", timeout=5) as response:
        assert response.status == 200


@step(r'I ask for a greeting for "(.*)"')
def ask_named(context: dict, name: str) -> None:
    with urlopen(context["url"] + "/hello?name=" + quote(name), timeout=5) as response:
        context["answer"] = response.read().decode().strip()


@step(r"I ask for a greeting without a name")
def ask_anonymous(context: dict) -> None:
    with urlopen(context["url"] + "/hello", timeout=5) as response:
        context["answer"] = response.read().decode().strip()


@step(r'the answer is "(.*)"')
def answer_is(context: dict, expected: str) -> None:
    assert context["answer"] == expected, f"expected {expected!r}, got {context['answer']!r}"


@step(r"I ask for its health")
def ask_health(context: dict) -> None:
    with urlopen(context["url"] + "/health", timeout=5) as response:
        context["health"] = json.load(response)


@step(r"it says it is ok")
def health_ok(context: dict) -> None:
    assert context["health"]["status"] == "ok", context["health"]


def scenarios(path: Path) -> list[tuple[str, str, list[str]]]:
    """(feature, scenario, steps) for each scenario of a .feature file."""
    feature, found = "", []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.startswith("Feature:"):
            feature = line.removeprefix("Feature:").strip()
        elif line.startswith("Scenario:"):
            found.append((feature, line.removeprefix("Scenario:").strip(), []))
        elif found and re.match(r"^(Given|When|Then|And|But) ", line):
            found[-1][2].append(line.split(" ", 1)[1])
    return found


def run_scenario(url: str, lines: list[str]) -> str | None:
    """None when every step passes, else the failure."""
    context: dict = {"url": url}
    for line in lines:
        for pattern, function in STEPS:
            match = pattern.match(line)
            if match:
                try:
                    function(context, *match.groups())
                except Exception:  # noqa: BLE001 (a failing step is a test result)
                    return f"{line}: {traceback.format_exc(limit=1).strip().splitlines()[-1]}"
                break
        else:
            return f"no step matches: {line}"
    return None


def main(report: Path) -> int:
    server = serve(0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    cases, failures = [], 0
    for path in sorted(Path(__file__).parent.glob("*.feature")):
        for feature, name, lines in scenarios(path):
            started = time.perf_counter()
            problem = run_scenario(url, lines)
            took = time.perf_counter() - started
            failures += problem is not None
            print(f"{'PASS' if problem is None else 'FAIL'} {feature}: {name}"
                  + (f"\n  {problem}" if problem else ""))
            attrs = f"classname={quoteattr(feature)} name={quoteattr(name)} time=\"{took:.4f}\""
            cases.append(f"  <testcase {attrs}/>" if problem is None else
                         f"  <testcase {attrs}><failure message={quoteattr(problem)}/></testcase>")
    server.shutdown()
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text('<?xml version="1.0" encoding="utf-8"?>\n<testsuite name="acceptance">\n'
                      + "\n".join(cases) + "\n</testsuite>\n")
    print(f"{len(cases)} scenarios, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "reports/acceptance.xml")))
