"""`obeya metrics` and `obeya room` against a real `obeya serve` holding a hand-made
history: the five numbers with bands and trends, the checks, the value stream and maturity
as text or the API's JSON; a bad window or an unknown service is one line and exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.processes import clean_env, obeya_server, run_obeya

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent.parent
SEED = """
import django
django.setup()
from obeya.catalog import services as catalog
from obeya.core.actors import Actor
from obeya.core.models import User
from tests.metrics.recorded import history

olga = Actor(user=User.objects.get(username="olga"), channel="cli")
catalog.create_service(olga, "shop", "Shop")
history()
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One server whose database holds "shop" and its history; a read-scope token."""
    base = clean_env(tmp_path_factory.mktemp("metrics-cli") / "data")
    made = run_obeya("createuser", "olga", "--password-stdin", env=base, stdin="a long password\n")
    assert made.returncode == 0, made.stderr
    made = run_obeya("token", "create", "--user", "olga", "--scope", "read", env=base)
    token = made.stdout.strip().splitlines()[-1]
    seeded = subprocess.run(
        [sys.executable, "-c", SEED],
        env={**base, "DJANGO_SETTINGS_MODULE": "obeya.settings"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert seeded.returncode == 0, seeded.stderr
    with obeya_server(base) as url:
        yield {**base, "OBEYA_URL": url, "OBEYA_TOKEN": token}


def ok(env: dict[str, str], *args: str) -> str:
    result = run_obeya(*args, env=env)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def refused(env: dict[str, str], *args: str) -> str:
    result = run_obeya(*args, env=env)
    assert result.returncode == 2, (args, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("obeya: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def api(env: dict[str, str], path: str) -> Any:
    response = httpx.get(
        f"{env['OBEYA_URL']}/api{path}",
        headers={"Authorization": f"Bearer {env['OBEYA_TOKEN']}"},
        timeout=30,
    )
    response.raise_for_status()
    return response.json()


def squeeze(text: str) -> list[str]:
    return [" ".join(line.split()) for line in text.splitlines()]


def test_a_service_s_metrics_as_a_table(env: dict[str, str]) -> None:
    lines = squeeze(ok(env, "metrics", "shop"))
    assert lines[0].startswith("shop (Shop), the last 30 days: ")
    assert lines[2] == "METRIC VALUE BAND TREND"
    assert lines[3] == "deployment frequency 0.7/week medium up from 0.0/week, better"
    assert lines[4] == "change lead time 2h 0m elite no earlier data"
    assert lines[5] == "change fail rate 50% low no earlier data"
    assert lines[6] == "recovery time 15m 30s elite no earlier data"
    assert lines[7].startswith("rework rate 0% no band")
    checks = lines.index("GROUP RESULT CHECK SUMMARY")
    report = api(env, "/services/shop/metrics")
    listed = [("flow", c) for c in report["flow"]] + [("ci", c) for c in report["ci"]]
    assert listed
    for line, (group, check) in zip(lines[checks + 1 :], listed, strict=False):
        assert line == " ".join(
            f"{group} {check['result']} {check['title']} {check['summary']}".split()
        )
    assert any(line.startswith("value stream: ") for line in lines)
    maturity = lines.index("AREA LEVEL NEXT STEP")
    areas = lines[maturity + 1 :]
    assert len(areas) == len(report["maturity"]) == 5
    assert all(area["name"] in line for area, line in zip(report["maturity"], areas, strict=True))


def test_json_is_the_api_s_body_and_the_window_is_passed_on(env: dict[str, str]) -> None:
    body = json.loads(ok(env, "metrics", "shop", "--json"))
    expected = api(env, "/services/shop/metrics")
    assert set(body) == set(expected)
    assert body["dora"]["change_fail_rate"] == expected["dora"]["change_fail_rate"]
    week = json.loads(ok(env, "metrics", "shop", "--window", "1w", "--json"))
    assert week["days"] == 7 and week["dora"]["deployment_frequency"]["evidence"] == [4]


def test_the_room(env: dict[str, str]) -> None:
    lines = squeeze(ok(env, "room"))
    assert lines[0].startswith("shop (Shop, ") and lines[0].endswith("andon clear")
    assert lines[1] == "environments: none"
    assert lines[2] == (
        "DORA: 0.7/week (medium), lead 2h 0m (elite), fail 50% (low), "
        "recovery 15m 30s (elite), rework 0%"
    )
    tiles = json.loads(ok(env, "room", "--json"))["services"]
    assert [t["slug"] for t in tiles] == ["shop"]


@pytest.mark.parametrize("window", ["soon", "0d", "400d"])
def test_a_bad_window_is_one_line_naming_it(env: dict[str, str], window: str) -> None:
    line = refused(env, "metrics", "shop", "--window", window)
    assert "window" in line and ("30d" in line or "365" in line)


def test_an_unknown_service_is_one_line(env: dict[str, str]) -> None:
    line = refused(env, "metrics", "ghost")
    assert 'no service "ghost"' in line and "obeya service list" in line
