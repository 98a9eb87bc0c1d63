"""RELIABILITY B1 and issue #5: `kill -9` of the deployer at each step of a deployment.

The deployer runs inside `obeya serve` with a 3 s lease. Hooks that sleep and a slow health
command make the steps last long enough to be seen; the test polls the deployment's step in
the database and kills the server there: during prepare (made slow by a half-unpacked
release a crash left behind, which it must clear), before_switch, restart (after the switch)
and health. Right after each kill ``current`` still points at a complete release. A new
server, once the dead one's lease has run out, resolves the deployment: failed before the
switch, rolled back after it, with the previous release restarted; no lease stays held.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.deploy_processes import LEASE_S, Stack, deploying_stack, kill_9, wait_for
from tests.e2e.test_server_crash import Served

pytestmark = pytest.mark.e2e

SPEC = """\
stages: [package, staging]
jobs:
  package:
    stage: package
    script: [echo "packaging $(cat VERSION)"]
    artifacts: {paths: [VERSION, STATUS, app]}
  to-staging:
    stage: staging
    environment: staging
    deploy: {artifact: package}
"""
SLOW_S = 0.6  # each hook and each health check: long enough to be seen, short to wait for
STAGING = {
    "hooks": {
        "before_switch": f"sleep {SLOW_S}",
        "restart": f'echo "$OBEYA_RELEASE_ID" >> "$OBEYA_SHARED_DIR/restarts"; sleep {SLOW_S}',
    },
    "health": {"kind": "command", "command": f"sleep {SLOW_S}; grep -q healthy STATUS"},
    "health_passes": 1,
    "health_interval_ms": 100,
    "warmup_s": 10,
    "hook_timeout_s": 30,
}
# The step to kill the deployer in, and how the deployment must end after the restart.
KILLS = [
    (("prepare", "unpack", "before_switch"), "failed"),  # best effort: these two are quick
    (("before_switch",), "failed"),
    (("restart",), "rolled_back"),
    (("health",), "rolled_back"),
]


def _files(version: str) -> dict[str, str]:
    app = {f"app/part-{n}.txt": f"{version} part {n}\n" for n in range(20)}
    return {"VERSION": f"{version}\n", "STATUS": "healthy\n", **app}


def _hashes(top: Path) -> dict[str, str]:
    found = {}
    for directory, _, files in os.walk(top):
        for name in files:
            path = Path(directory) / name
            found[path.relative_to(top).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def complete_release(stack: Stack) -> str:
    """The release ``current`` points at, after checking every file matches its manifest."""
    root = stack.target("staging")
    link = os.readlink(root / "current")
    assert link.startswith("releases/"), link
    release = link.removeprefix("releases/")
    [(manifest,)] = stack.rows("SELECT manifest FROM deploy_release WHERE release_id = %s", release)
    manifest = json.loads(manifest) if isinstance(manifest, str) else manifest
    assert _hashes(root / "current") == manifest, f"{release} is not whole"
    return release


def _plant_half_unpacked_release(stack: Stack) -> None:
    """What a crash during unpack leaves: prepare must clear it, which takes a moment."""
    junk = stack.target("staging") / "releases" / ".incoming-20000101T000000.000000-d0"
    for number in range(20):
        part = junk / f"dir-{number}"
        part.mkdir(parents=True)
        for name in range(100):
            (part / f"file-{name}").write_text("x")


def _kill_during(
    stack: Stack, server: Served, steps: tuple[str, ...], version: str
) -> dict[str, Any]:
    """Commit ``version``, let ``server`` deploy it, and kill it during one of ``steps``."""
    stack.repo.commit(_files(version), f"version {version}")
    deployment = stack.deployment_of_run(stack.run(server))

    def at_step() -> dict[str, Any] | None:
        seen = stack.deployment(deployment)
        if seen["status"] == "running" and seen["step"] in steps:
            return seen
        assert seen["status"] in {"queued", "running"}, f"missed {steps}: {seen}"
        return None

    seen = wait_for(at_step, 60, f"deployment {deployment} to reach {steps}")
    kill_9(server)
    assert stack.lease("staging")[1], "the dead deployer's lease is still held"
    return seen


def test_kill_9_of_the_deployer_at_each_step_is_resolved_after_a_restart(
    tmp_path: Path,
) -> None:
    files = {"obeya.yml": SPEC, **_files("1")}
    with deploying_stack(tmp_path, files, {"staging": STAGING}) as stack:
        [server] = stack.start()
        first = stack.settled(stack.deployment_of_run(stack.run(server)))
        assert first["status"] == "succeeded", first["reason"]
        good = first["release_id"]
        for number, (steps, outcome) in enumerate(KILLS, start=2):
            if steps[0] == "prepare":
                _plant_half_unpacked_release(stack)
            killed = _kill_during(stack, server, steps, str(number))
            assert complete_release(stack) in {good, killed["release_id"]}
            [server] = stack.start()  # it takes the next deployment, after resolving this one
            done = stack.settled(killed["id"], timeout_s=LEASE_S + 60)
            assert done["status"] == outcome, (steps, done)
            assert f"stopped during {killed['step'].replace('_', ' ')}" in done["reason"]
            assert f"({good})" in done["reason"] or f"rolled back to {good}" in done["reason"]
            wait_for(lambda: stack.lease("staging") == (None, "", None), 10, "the lease")
            assert complete_release(stack) == good, steps
            releases = os.listdir(stack.target("staging") / "releases")
            assert not [name for name in releases if name.startswith(".")], releases
            restarts = (stack.target("staging") / "shared" / "restarts").read_text().split()
            if outcome == "rolled_back":
                assert restarts[-1] == good, "the previous release is restarted, last"
            else:
                assert killed["release_id"] not in restarts
                assert killed["release_id"] not in releases, "moved to archive/"
        assert stack.server_errors() == []
