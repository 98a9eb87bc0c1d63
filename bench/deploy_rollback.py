"""How soon a local target serves its previous release again once the new one is judged
unhealthy (issue #5: at most 1 s plus the restart command's own time).

Real deployments by the deployer, in-process, on SQLite in the bench data dir: a service
whose pipeline packages a release (run through the runner protocol in-process) and deploys
it to one environment on a local target in a temporary directory. A healthy build is
deployed once; then every sample deploys a broken build (its STATUS file says "broken"),
whose warm-up fails, so the deployer switches ``current`` back, runs the restart hook and
warms the previous release up again, as it does in production.

The figures come from the deployment's own log. The deployer writes a row right after each
thing it does, from one thread, and ``at`` is taken as the row is written: so the gap
between two rows is what happened between them plus one SQLite commit. The clock starts
at the warm-up's verdict on the new release ("unhealthy: …") and stops at the verdict of
the previous release's warm-up ("healthy: N check(s) in a row passed"): by then
``current`` points at the previous release and its health check has passed as many times
in a row as the environment asks. The first passing check, the switch back and the restart
hook are read from the rows in between.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.database import migrated
from bench.timing import summary_ms
from obeya.catalog import services as catalog
from obeya.core import services as core
from obeya.core.actors import Actor
from obeya.deploy import deployer
from obeya.deploy import services as deploy
from obeya.deploy.models import Deployment, DeploymentLog, DeploymentStatus, Environment
from obeya.pipelines import artifacts, leases, runners, runs
from obeya.pipelines.models import Runner

SLUG = "bench-deploy"
ENVIRONMENT = "bench"
PASSWORD = "a long enough bench password"  # noqa: S105 (a throwaway user in a temp dir)
SPEC = f"""\
stages: [package, deploy]
jobs:
  package:
    stage: package
    script: [echo package]
    artifacts: {{paths: [app/]}}
  to-{ENVIRONMENT}:
    stage: deploy
    environment: {ENVIRONMENT}
    deploy: {{artifact: package}}
"""
COMMAND_CHECK = {"kind": "command", "command": "grep -q healthy STATUS"}
WARMUP_S = 2  # how long the broken release is given; not part of the measured time
SAMPLES = 12  # per case, after one discarded warm-up sample
FIGURE = "judged unhealthy → previous release healthy again (the figure)"


@dataclass(frozen=True)
class Case:
    """One way of configuring the environment: health check, restart hook, warm-up."""

    name: str
    check: str  # command | http
    restart: str
    restart_nominal_ms: int
    passes: int
    interval_ms: int


def _cases() -> list[Case]:
    defaults = Environment()  # what a new environment gets unless told otherwise
    passes, interval = defaults.health_passes, defaults.health_interval_ms
    return [
        Case("command check, restart `true`, defaults", "command", "true", 0, passes, interval),
        Case(
            "command check, restart `sleep 0.2`, defaults",
            "command",
            "sleep 0.2",
            200,
            passes,
            interval,
        ),
        Case(
            "http check (tiny app), restart `true`, defaults", "http", "true", 0, passes, interval
        ),
        Case("command check, restart `true`, 1 pass", "command", "true", 0, 1, interval),
    ]


# ---- the service, its pipeline and its environment ---------------------------------------


@dataclass
class Shop:
    """The deploying service: its owner, the runner that packages, the target's root."""

    owner: Actor
    runner: Runner
    root: Path


def _git(path: Path, *args: str) -> None:
    identity = ["-c", "user.name=Bench", "-c", "user.email=bench@example.com"]
    subprocess.run(["git", "-C", str(path), *identity, *args], check=True, capture_output=True)


def _shop(top: Path) -> Shop:
    system = Actor(user=None, channel="cli")
    user = core.create_user(system, "bench", PASSWORD, is_admin=True, check_password_strength=False)
    owner = Actor(user=user, channel="cli")
    repository = top / "repo"
    repository.mkdir()
    (repository / "obeya.yml").write_text(SPEC)
    _git(repository, "init", "-q", "-b", "main")
    _git(repository, "add", "-A")
    _git(repository, "commit", "-q", "-m", "bench")
    catalog.create_service(owner, SLUG, "Bench deploy", repository_url=str(repository))
    runner, _ = runners.register_runner(system, "bench-runner", [])
    root = top / "target"
    deploy.create_environment(
        owner,
        SLUG,
        ENVIRONMENT,
        tier="staging",
        target={"kind": "local", "root": str(root)},
        health=COMMAND_CHECK,
        hooks={"restart": "true"},
        warmup_s=WARMUP_S,
    )
    return Shop(owner, runner, root)


def _release_tar(status: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in (("VERSION", "1.0.0\n"), ("STATUS", f"{status}\n")):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _deploy(shop: Shop, status: str) -> Deployment:
    """Run the pipeline with a release whose STATUS is ``status``; deploy it to its end."""
    runs.create_run(shop.owner, SLUG, "main")
    claim = leases.claim(shop.runner)
    if claim is None or claim.job.name != "package":
        raise RuntimeError(f"expected the package job to be claimable, got {claim}")
    archive = io.BytesIO(_release_tar(status))
    artifacts.upload(shop.runner, claim.job.pk, claim.lease_token, "package", archive)
    leases.complete(shop.runner, claim.job.pk, claim.lease_token, "succeeded", 0)
    done = deployer.work_once()
    if done is None:
        raise RuntimeError("the deploy job did not become a deployment")
    return done


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _tiny_app(root: Path) -> Iterator[dict[str, Any]]:
    """A static HTTP server serving ``<root>/current`` (it follows the link per request)."""
    port = _free_port()
    command = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    process = subprocess.Popen(
        [*command, "--directory", str(root / "current")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the tiny health app did not start") from None
                time.sleep(0.05)
        yield {"kind": "http", "url": f"http://{{host}}:{port}/STATUS", "contains": "healthy"}
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# ---- reading a rolled-back deployment's log -----------------------------------------------


@dataclass(frozen=True)
class Timeline:
    """When each step of a rollback was logged, from the deployment's own log rows."""

    first_failure: datetime  # the new release's first failing check
    judged: datetime  # the warm-up's verdict: unhealthy
    switched_back: datetime  # current → the previous release
    restart_began: datetime
    restarted: datetime
    first_pass: datetime  # the previous release's first passing check
    healthy: datetime  # the previous release's warm-up verdict: healthy
    ended: datetime  # the deployment recorded as rolled back


def _timeline(deployment: Deployment) -> Timeline:
    rows = list(
        DeploymentLog.objects.filter(deployment=deployment)
        .order_by("id")
        .values_list("at", "step", "line")
    )
    position = 0

    def next_row(step: str, test: str, *, start: bool = False) -> datetime:
        nonlocal position
        for index in range(position, len(rows)):
            at, row_step, line = rows[index]
            if row_step == step and (line.startswith(test) if start else test in line):
                position = index + 1
                return at
        lines = "\n".join(f"{at:%H:%M:%S.%f} [{step}] {line}" for at, step, line in rows)
        raise RuntimeError(f"deployment {deployment.pk}: no {step} row with {test!r}:\n{lines}")

    return Timeline(
        first_failure=next_row("health", ": FAIL — "),
        judged=next_row("health", "local: unhealthy:", start=True),
        switched_back=next_row("rollback", f"current → releases/{deployment.previous_release_id}"),
        restart_began=next_row("restart", "local: $ ", start=True),
        restarted=next_row("restart", "local: restart ok", start=True),
        first_pass=next_row("health", ": pass — "),
        healthy=next_row("rollback", "local: healthy:", start=True),
        ended=next_row("end", DeploymentStatus.ROLLED_BACK, start=True),
    )


def _seconds(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds()


# ---- the samples and their figures -------------------------------------------------------


def _sample(shop: Shop, good_release: str) -> Timeline:
    done = _deploy(shop, "broken")
    current = os.readlink(shop.root / "current")
    if done.status != DeploymentStatus.ROLLED_BACK or current != f"releases/{good_release}":
        raise RuntimeError(
            f"deployment {done.pk} ended {done.status} ({done.reason}) with current → {current}"
        )
    if "still unhealthy" in done.reason:
        raise RuntimeError(f"deployment {done.pk}: {done.reason}")
    return _timeline(done)


def _figures(case: Case, health: dict[str, Any], timelines: list[Timeline]) -> dict[str, Any]:
    def spans(start: str, end: str) -> list[float]:
        return [_seconds(getattr(t, start), getattr(t, end)) for t in timelines]

    total = spans("judged", "healthy")
    restart = spans("restart_began", "restarted")
    without_restart = [whole - own for whole, own in zip(total, restart, strict=True)]
    figure = summary_ms(total)
    target_ms = 1000 + case.restart_nominal_ms
    breakdown = {
        "judged unhealthy → current switched back": spans("judged", "switched_back"),
        "switched back → restart hook done": spans("switched_back", "restarted"),
        "restart hook done → first passing check": spans("restarted", "first_pass"),
        "first passing check → warm-up verdict healthy": spans("first_pass", "healthy"),
    }
    medians = {name: summary_ms(values)["p50_ms"] for name, values in breakdown.items()}
    dominant = max(medians, key=lambda name: medians[name])
    return {
        "settings": {
            "health": health,
            "restart_hook": case.restart,
            "health_passes": case.passes,
            "health_interval_ms": case.interval_ms,
            "warmup_s": WARMUP_S,
        },
        FIGURE: figure,
        "judged unhealthy → first passing check of the previous release": summary_ms(
            spans("judged", "first_pass")
        ),
        "restart hook as run (its own time + one log commit)": summary_ms(restart),
        "the figure less the restart hook's own time": summary_ms(without_restart),
        "breakdown_p50_ms": medians,
        "dominated_by": f"{dominant}: {medians[dominant]} of {figure['p50_ms']} ms at p50",
        "context: first failing check → judged unhealthy (the warm-up window)": summary_ms(
            spans("first_failure", "judged")
        ),
        "context: healthy again → deployment recorded rolled back": summary_ms(
            spans("healthy", "ended")
        ),
        "target_ms": target_ms,
        "target": f"≤ 1000 ms + the restart command's own time (`{case.restart}`, "
        f"nominally {case.restart_nominal_ms} ms)",
        "target_met_p50": summary_ms(without_restart)["p50_ms"] <= 1000,
        "target_met_p90": summary_ms(without_restart)["p90_ms"] <= 1000,
    }


def _additive(results: dict[str, dict[str, Any]], base: Case, slower: Case) -> dict[str, Any]:
    """How much the slower restart hook adds to the figure, against its nominal cost."""
    added = results[slower.name][FIGURE]["p50_ms"] - results[base.name][FIGURE]["p50_ms"]
    return {
        f"p50 with `{slower.restart}` - p50 with `{base.restart}` (ms)": round(added, 3),
        "nominal difference (ms)": slower.restart_nominal_ms - base.restart_nominal_ms,
    }


def _measure(shop: Shop, case: Case, health: dict[str, Any], good: str) -> dict[str, Any]:
    deploy.update_environment(
        shop.owner,
        SLUG,
        ENVIRONMENT,
        health=health,
        hooks={"restart": case.restart},
        health_passes=case.passes,
        health_interval_ms=case.interval_ms,
    )
    _sample(shop, good)  # discarded: first use of this configuration
    return _figures(case, health, [_sample(shop, good) for _ in range(SAMPLES)])


def run() -> dict[str, object]:
    vendor = migrated()
    load_before = os.getloadavg()[0]
    results: dict[str, dict[str, Any]] = {}
    cases = _cases()
    with tempfile.TemporaryDirectory(prefix="obeya-bench-rollback-") as top:
        shop = _shop(Path(top))
        first = _deploy(shop, "healthy")
        if first.status != DeploymentStatus.SUCCEEDED:
            raise RuntimeError(f"the healthy release did not deploy: {first.reason}")
        with _tiny_app(shop.root) as http_check:
            for case in cases:
                health = http_check if case.check == "http" else COMMAND_CHECK
                results[case.name] = _measure(shop, case, health, first.release_id)
    return {
        "database": vendor,
        "method": (
            "Each sample is a real deployment of a broken build to a local target after a "
            "healthy one, carried out by deployer.work_once() in this process. Times are the "
            "`at` of the deployment's log rows, written by the deployer right after each "
            "step: from the new release's warm-up verdict (unhealthy) to the previous "
            "release's verdict (healthy), when current points back and its first check has "
            "passed (the rollback's warm-up needs one pass: that release was healthy moments "
            "before; health_passes applies to new releases). The restart hook's own time is "
            "the gap between its `$ command` row and its `restart ok` row; the target is "
            f"checked on the figure less that time. {SAMPLES} samples per case after one discarded."
        ),
        "load_average_1m_before": round(load_before, 1),
        "load_average_1m_after": round(os.getloadavg()[0], 1),
        "cases": results,
        "restart cost is additive": _additive(results, cases[0], cases[1]),
    }
