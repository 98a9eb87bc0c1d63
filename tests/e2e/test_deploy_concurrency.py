"""RELIABILITY B3: one deployment per environment at a time, newest wins, across servers.

Two `obeya serve` processes share one database (SQLite, and PostgreSQL when
OBEYA_TEST_POSTGRES_URL is set), each with an embedded runner and two deployer threads.
Ten pipeline runs of ten commits are asked for at once through both servers' APIs; each
run packages its commit and asks for a deployment to staging. The restart hook appends
``start``/``end`` stamps (deployment, version, the server's pid) to a file in shared/:
no two restarts overlap, deployments that ran did so in commit order, the newest commit
ends deployed and the rest are ``outdated``.

Then the server holding the lease is killed mid-restart: once its lease runs out the other
server resolves that deployment (rolled back, the hook the dead server left running is
stopped first) and goes on with the next one.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.e2e.deploy_processes import LEASE_S, Stack, deploying_stack, kill_9, wait_for

pytestmark = pytest.mark.e2e
POSTGRES = os.environ.get("OBEYA_TEST_POSTGRES_URL", "")
COMMITS = 10
SPEC = """\
stages: [package, staging]
jobs:
  package:
    stage: package
    script: [echo "packaging $(cat VERSION)"]
    artifacts: {paths: [VERSION]}
  to-staging:
    stage: staging
    environment: staging
    deploy: {artifact: package}
"""
# The restart of the version named in shared/slow waits until that file changes.
RESTART = """\
v=$(cat VERSION)
echo "start $OBEYA_DEPLOYMENT $v $PPID" >> "$OBEYA_SHARED_DIR/stamps"
while [ "$v" = "$(cat "$OBEYA_SHARED_DIR/slow" 2>/dev/null)" ]; do sleep 0.05; done
sleep 0.1
echo "end $OBEYA_DEPLOYMENT $v $PPID" >> "$OBEYA_SHARED_DIR/stamps"
"""
STAGING = {"hooks": {"restart": RESTART}, "retention": 20}


def _commit(stack: Stack, monkeypatch: pytest.MonkeyPatch, version: int) -> str:
    """Commit ``version``, one minute after the one before: the commit order is plain."""
    moment = f"2026-03-01T09:{version:02d}:00+00:00"
    monkeypatch.setenv("GIT_AUTHOR_DATE", moment)
    monkeypatch.setenv("GIT_COMMITTER_DATE", moment)
    return stack.repo.commit({"VERSION": f"{version}\n"}, f"version {version}")


def _stamps(stack: Stack) -> list[tuple[str, int, int, int]]:
    path = stack.target("staging") / "shared" / "stamps"
    lines = path.read_text().splitlines() if path.exists() else []
    return [(kind, int(d), int(v), int(pid)) for kind, d, v, pid in map(str.split, lines)]


def _server_running_hook_of(deployment: int, servers: list[int]) -> int:
    """Which of ``servers`` runs ``deployment``'s hook: the hook runs in its root's sandbox,
    whose pids ($PPID included) mean nothing out here, so it is found by its environment
    and followed up its parents on the host."""
    marker = f"OBEYA_DEPLOYMENT={deployment}".encode()
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if marker not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            pid = int(entry.name)
            while pid > 1:
                if pid in servers:
                    return pid
                status = Path(f"/proc/{pid}/status").read_text()
                pid = int(status.split("\nPPid:")[1].split()[0])
        except (OSError, IndexError, ValueError):
            continue
    raise AssertionError(f"no server runs a hook of deployment {deployment}")


def _one_at_a_time(
    stamps: list[tuple[str, int, int, int]], dead: tuple[int, int] | None = None
) -> None:
    """Every restart ends before the next starts; only the dead server's restart (its
    deployment and version: pids in the sandbox tell nothing of servers) may stay open."""
    running = None
    for stamp in stamps:
        kind, deployment, version, _ = stamp
        if kind == "start":
            assert running is None or (running[1:3] == dead and stamp[1:3] != dead), (
                f"two restarts at once: {running} and {stamp}"
            )
            running = stamp
        else:
            assert running is not None and running[:3] == ("start", deployment, version), (
                f"{stamp} ends a restart it did not start (running: {running})"
            )
            running = None


@pytest.mark.parametrize(
    "database",
    [
        "sqlite",
        pytest.param(
            "postgres",
            marks=pytest.mark.skipif(not POSTGRES, reason="needs OBEYA_TEST_POSTGRES_URL"),
        ),
    ],
)
def test_ten_concurrent_deploys_through_two_servers_run_one_at_a_time_newest_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database: str
) -> None:
    files = {"obeya.yml": SPEC, "VERSION": "0\n"}
    postgres = POSTGRES if database == "postgres" else ""
    with deploying_stack(
        tmp_path, files, {"staging": STAGING}, postgres=postgres, OBEYA_DEPLOYERS="2"
    ) as stack:
        try:
            _newest_wins(stack, monkeypatch)
        finally:  # a restart hook the test made wait must never wait for ever
            (stack.target("staging") / "shared" / "slow").unlink(missing_ok=True)


def _newest_wins(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    shas = [_commit(stack, monkeypatch, version) for version in range(1, COMMITS + 1)]
    servers = stack.start(2)
    with ThreadPoolExecutor(COMMITS) as pool:
        numbers = list(pool.map(lambda n: stack.run(servers[n % 2], shas[n]), range(COMMITS)))
    deployments = [stack.deployment_of_run(number) for number in numbers]
    ended = [stack.settled(pk) for pk in deployments]
    version_of = {d["id"]: int(d["version"] or shas.index(d["sha"]) + 1) for d in ended}

    stamps = _stamps(stack)
    _one_at_a_time(stamps)
    started = [version for kind, _, version, _ in stamps if kind == "start"]
    assert started == sorted(set(started)), f"an older commit after a newer one: {started}"
    assert started[-1] == COMMITS
    by_status = {d["id"]: d["status"] for d in ended}
    assert by_status[deployments[-1]] == "succeeded"
    for pk, status in by_status.items():
        assert status in {"succeeded", "outdated"}, (pk, status)
        assert (status == "succeeded") == (version_of[pk] in started), (pk, status, started)
    assert sum(status == "outdated" for status in by_status.values()) == COMMITS - len(started)
    assert (stack.target("staging") / "current" / "VERSION").read_text() == f"{COMMITS}\n"
    assert stack.lease("staging")[1] == ""

    # The lease holder dies mid-restart; the other server resolves it and goes on.
    shared = stack.target("staging") / "shared"
    (shared / "slow").write_text(f"{COMMITS + 1}\n")
    _commit(stack, monkeypatch, COMMITS + 1)
    doomed = stack.deployment_of_run(stack.run(servers[0]))
    wait_for(
        lambda: any(s[:2] == ("start", doomed) for s in _stamps(stack)),
        60,
        f"deployment {doomed} to restart",
    )
    holder = _server_running_hook_of(doomed, [served.process.pid for served in servers])
    [dead] = [served for served in servers if served.process.pid == holder]
    [alive] = [served for served in servers if served is not dead]
    kill_9(dead)
    _commit(stack, monkeypatch, COMMITS + 2)
    latest = stack.deployment_of_run(stack.run(alive))
    resolved = stack.settled(doomed, timeout_s=LEASE_S + 60)
    assert resolved["status"] == "rolled_back", resolved["reason"]
    assert "stopped during restart" in resolved["reason"]
    assert stack.settled(latest)["status"] == "succeeded"
    assert (shared.parent / "current" / "VERSION").read_text() == f"{COMMITS + 2}\n"
    assert stack.lease("staging")[1] == ""
    (shared / "slow").unlink()
    after = _stamps(stack)
    _one_at_a_time(after, dead=(doomed, COMMITS + 1))
    left_open = [s[:3] for s in after if s[1:3] == (doomed, COMMITS + 1)]
    assert left_open == [("start", doomed, COMMITS + 1)]  # the dead server's, never ended
    assert stack.server_errors() == []
    assert [s[:3] for s in after if s[1] in {doomed, latest}][-4:] == [
        ("start", doomed, COMMITS),  # the survivor restarts the release it went back to
        ("end", doomed, COMMITS),
        ("start", latest, COMMITS + 2),
        ("end", latest, COMMITS + 2),
    ]
