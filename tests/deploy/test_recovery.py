"""A deployer that dies mid-deployment, in-process: every step, including the rollback itself.

The death is an exception no handler of the deployer catches (like ``kill -9``, nothing of
the deployer runs after it): the deployment stays ``running`` and the lease stays held. Once
the lease has run out, ``recover_lost`` resolves it: failed before the switch, rolled back
after it, and ``current`` on a complete release. tests/e2e/test_deploy_crash.py does the same
with real processes and real signals.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from obeya.core.actors import system_actor
from obeya.deploy import deployer
from obeya.deploy import services as deploy
from obeya.deploy.models import Deployment, Environment, Release
from obeya.deploy.targets import LocalHost
from tests.conftest import actor
from tests.deploy.conftest import Shop, environment

RESTART = 'echo "$OBEYA_RELEASE_ID" >> "$OBEYA_SHARED_DIR/restarts"'


class Killed(BaseException):
    """The deployer's process is gone: no except clause of the deployer sees this."""


def _with_restart_hook(shop: Shop, **more: Any) -> None:
    deploy.update_environment(
        actor(shop.owner), "shop", "staging", hooks={"restart": RESTART, **more}
    )


def _first_release(shop: Shop) -> str:
    shop.build("1.0.0")
    done = deployer.work_once()
    assert done is not None and done.status == "succeeded", done and done.reason
    return done.release_id


def _killed_during(shop: Shop, monkeypatch: pytest.MonkeyPatch, step: str) -> Deployment:
    """Deploy 2.0.0 and die once the deployment has entered ``step``."""
    original = deployer.Work.step

    def step_then_die(self: deployer.Work, name: str) -> None:
        original(self, name)
        if name == step:
            raise Killed(name)

    monkeypatch.setattr(deployer.Work, "step", step_then_die)
    shop.commit("second")
    shop.build("2.0.0")
    with pytest.raises(Killed):
        deployer.work_once()
    monkeypatch.undo()
    dead = Deployment.objects.get(version__in=["", "2.0.0"], status="running")
    assert dead.step == step
    return dead


def _lease_runs_out() -> None:
    Environment.objects.exclude(lease_token="").update(
        lease_expires_at=system_actor().now() - timedelta(seconds=1)
    )


def _restarts(shop: Shop) -> list[str]:
    path = shop.target("staging") / "shared" / "restarts"
    return path.read_text().split() if path.exists() else []


def _complete(root: Path) -> str:
    """The release ``current`` points at, after checking it matches its manifest."""
    current = LocalHost(str(root)).current()
    assert current is not None
    release = Release.objects.get(environment__name="staging", release_id=current)
    assert LocalHost(str(root)).manifest() == release.manifest
    assert not [p for p in (root / "releases").iterdir() if p.name.startswith(".")]
    return current


@pytest.mark.parametrize("step", ["prepare", "unpack", "before_switch"])
def test_a_deployer_dead_before_the_switch_leaves_current_and_fails_the_deployment(
    shop: Shop, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    _with_restart_hook(shop, before_switch="true")
    first = _first_release(shop)
    dead = _killed_during(shop, monkeypatch, step)
    assert deployer.recover_lost() == 0, "nothing is taken while the lease runs"
    _lease_runs_out()
    assert deployer.recover_lost() == 1
    dead.refresh_from_db()
    assert dead.status == "failed", dead.reason
    assert "before the switch" in dead.reason and f"during {step.replace('_', ' ')}" in dead.reason
    root = shop.target("staging")
    assert _complete(root) == first
    assert _restarts(shop) == [first]
    assert environment("staging").lease_token == ""
    assert not (root / "releases" / dead.release_id).exists()
    if step == "before_switch":  # unpacked whole, then moved aside
        assert (root / "archive" / dead.release_id / "VERSION").read_text() == "2.0.0\n"
        assert Release.objects.get(release_id=dead.release_id).state == "archived"
    assert dead.release_id not in [r.release_id for r in deploy.kept_releases(dead.environment)]


@pytest.mark.parametrize("step", ["switch", "restart", "health", "rollback"])
def test_a_deployer_dead_after_the_switch_is_rolled_back_and_restarted(
    shop: Shop, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    _with_restart_hook(shop)
    first = _first_release(shop)
    if step == "rollback":  # the release fails its health check, and the rollback dies
        (shop.target("staging") / "shared").mkdir(exist_ok=True)
        shop.commit("break")
        shop.build("2.0.0", status="broken")
        original = deployer.Work.hook

        def die_before_restarting_the_old_one(self: deployer.Work, name: str, *a: Any) -> None:
            if self.deployment.step == "rollback":
                raise Killed("rollback")
            original(self, name, *a)

        monkeypatch.setattr(deployer.Work, "hook", die_before_restarting_the_old_one)
        with pytest.raises(Killed):
            deployer.work_once()
        monkeypatch.undo()
        dead = Deployment.objects.get(status="running")
        assert LocalHost(str(shop.target("staging"))).current() == first, "switched back"
    elif step == "switch":  # `current` was replaced, nothing after it happened
        original_switch = LocalHost.switch

        def switch_then_die(self: LocalHost, release_id: str) -> None:
            original_switch(self, release_id)
            raise Killed("switch")

        monkeypatch.setattr(LocalHost, "switch", switch_then_die)
        shop.commit("second")
        shop.build("2.0.0")
        with pytest.raises(Killed):
            deployer.work_once()
        monkeypatch.undo()
        dead = Deployment.objects.get(status="running")
        assert dead.switched_at is None
        assert LocalHost(str(shop.target("staging"))).current() == dead.release_id
    else:
        dead = _killed_during(shop, monkeypatch, step)
    _lease_runs_out()
    assert deployer.recover_lost() == 1
    dead.refresh_from_db()
    assert dead.status == "rolled_back", dead.reason
    assert f"rolled back to {first}" in dead.reason
    assert _complete(shop.target("staging")) == first
    assert _restarts(shop)[-1] == first, "the old release was restarted after going back"
    assert environment("staging").lease_token == ""
    assert deploy.environment_state(environment("staging")).health == "rolled back"


def test_a_deployer_dead_while_tidying_up_keeps_the_healthy_release(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    _with_restart_hook(shop)
    _first_release(shop)
    dead = _killed_during(shop, monkeypatch, "retention")
    _lease_runs_out()
    assert deployer.recover_lost() == 1
    dead.refresh_from_db()
    assert dead.status == "succeeded", dead.reason
    assert _complete(shop.target("staging")) == dead.release_id
    assert environment("staging").lease_token == ""


@pytest.mark.django_db(transaction=True)
def test_a_recovery_longer_than_the_lease_keeps_it(
    shop: Shop, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    """Nobody else may resolve the same deployment while its recovery still runs."""
    settings.OBEYA_LEASE_SECONDS = 2
    _with_restart_hook(shop)
    _first_release(shop)
    dead = _killed_during(shop, monkeypatch, "health")
    deploy.update_environment(
        actor(shop.owner), "shop", "staging", hooks={"restart": f"sleep 3; {RESTART}"}
    )
    _lease_runs_out()
    others: list[int] = []
    done = threading.Event()

    def another_deployer() -> None:
        try:
            while not done.is_set():
                others.append(deployer.recover_lost())
                done.wait(0.2)
        finally:
            from django.db import connection

            connection.close()

    competitor = threading.Thread(target=another_deployer)
    started = threading.Event()
    original = deployer._recover

    def recover_then_compete(*args: Any) -> None:
        if not started.is_set():
            started.set()
            competitor.start()
        original(*args)

    monkeypatch.setattr(deployer, "_recover", recover_then_compete)
    try:
        assert deployer.recover_lost() == 1
    finally:
        done.set()
        if competitor.is_alive() or started.is_set():
            competitor.join(timeout=10)
    dead.refresh_from_db()
    assert dead.status == "rolled_back", dead.reason
    assert others and not any(others), "the other deployer never took the recovery over"
    assert _restarts(shop).count(dead.previous_release_id) == 2  # first deploy, then recovery


def test_a_hook_left_running_by_a_dead_deployer_is_stopped_before_the_next_one_runs(
    tmp_path: Path,
) -> None:
    """Its process group is killed; a service it started detached and a process of another
    root are left alone."""
    root = tmp_path / "target"
    host = LocalHost(str(root))
    host.prepare()
    other = tmp_path / "other"
    script = (
        'setsid sleep 60 & echo $! > "$OBEYA_ROOT/daemon.pid"; '
        'sleep 60 & echo $! > "$OBEYA_ROOT/child.pid"; wait'
    )
    env = {"PATH": os.environ["PATH"], "OBEYA_ROOT": str(root)}
    hook = subprocess.Popen(["bash", "-c", script], env=env, start_new_session=True)
    stranger = subprocess.Popen(
        ["sleep", "60"], env={**env, "OBEYA_ROOT": str(other)}, start_new_session=True
    )
    try:
        (root / ".running").write_text(str(hook.pid))  # as LocalHost.run records it
        deadline = time.monotonic() + 10
        # The shell creates the file before echo writes to it: wait for its line.
        child_pid = root / "child.pid"
        while not (child_pid.exists() and child_pid.read_text().endswith("\n")):
            assert time.monotonic() < deadline, "the hook did not start its children"
            time.sleep(0.05)
        daemon = int((root / "daemon.pid").read_text())
        child = int((root / "child.pid").read_text())
        host.discard_incoming()
        assert hook.wait(timeout=10) == -signal.SIGKILL
        assert _gone(child)
        assert not (root / ".running").exists()
        os.kill(daemon, 0)  # still there: started detached, in a group of its own
        assert stranger.poll() is None
        os.kill(daemon, signal.SIGKILL)
    finally:
        for process in (hook, stranger):
            if process.poll() is None:
                process.kill()
            process.wait()


def _gone(pid: int) -> bool:
    """Whether ``pid`` has ended (a zombie waiting for a parent that is not us counts)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


def test_a_hook_records_its_process_group_only_while_it_runs(tmp_path: Path) -> None:
    host = LocalHost(str(tmp_path / "target"), deployer.keepers())
    host.prepare()
    seen: list[str] = []
    code = host.run(
        # the deployer writes the record just after the hook starts: wait for it a moment
        'for _ in $(seq 100); do test -s "$OBEYA_ROOT/.running" && break; sleep 0.05; done;'
        ' cat "$OBEYA_ROOT/.running"; echo',
        {"PATH": os.environ["PATH"], "OBEYA_ROOT": host.root},
        host.root,
        10,
        seen.append,
    )
    assert code == 0, seen
    group = int(seen[0])  # the host's process group of the hook (its sandbox's pids differ)
    assert group > 1
    assert not (tmp_path / "target" / ".running").exists()


def test_a_deployer_whose_lease_was_taken_over_starts_no_further_step(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deployer stalled past its lease (another one took the environment over) stops at
    its next step, before the heartbeat even notices: no restart of its release."""
    _with_restart_hook(shop)
    first = _first_release(shop)
    original_switch = LocalHost.switch

    def switch_then_stall(self: LocalHost, release_id: str) -> None:
        original_switch(self, release_id)
        Environment.objects.filter(name="staging").update(lease_token="taken-over")

    monkeypatch.setattr(LocalHost, "switch", switch_then_stall)
    shop.commit("second")
    shop.build("2.0.0")
    stopped = deployer.work_once()
    assert stopped is not None and stopped.status == "running", "left to the new holder"
    assert _restarts(shop) == [first]
