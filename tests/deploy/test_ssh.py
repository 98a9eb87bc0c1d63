"""SSH targets against real sshd hosts: rolling batches, rollback, host keys, bad archives.

Three Debian ``sshd`` processes on loopback ports are the hosts (``tests/deploy/sshd.py``);
the deployer drives them end to end through ``work_once()``, as it would in production.
"""

from __future__ import annotations

import io
import os
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from obeya.deploy import deployer, ssh
from obeya.deploy import services as deploy
from obeya.deploy.models import Deployment, DeploymentLog, Release
from obeya.deploy.targets import TargetError
from tests.conftest import actor
from tests.deploy.conftest import Shop, environment
from tests.deploy.sshd import Fleet, running_fleet

# healthy unless this host's shared/refuse names the version now current
HEALTH = {
    "kind": "command",
    "command": 'grep -qx healthy STATUS && test "$(cat VERSION)" != '
    '"$(cat "$OBEYA_SHARED_DIR/refuse" 2>/dev/null)"',
}


@pytest.fixture
def fleet(tmp_path: Path, settings: Any) -> Iterator[Fleet]:
    # The lease heartbeat is another thread; inside a test's transaction it could only
    # fight the test for the database, so it is kept from firing during these deploys.
    settings.OBEYA_LEASE_SECONDS = 900
    with running_fleet(tmp_path / "fleet", 3) as hosts:
        yield hosts


def _use_fleet(shop: Shop, fleet: Fleet, batch_size: int = 2, **settings: object) -> None:
    fields: dict[str, object] = {
        "target": fleet.target(batch_size),
        "health": HEALTH,
        "warmup_s": 1,
        "health_passes": 2,
        "health_interval_ms": 50,
    }
    fields.update(settings)
    deploy.update_environment(actor(shop.owner), "shop", "staging", **fields)


def _deploy(shop: Shop, version: str) -> Deployment:
    shop.commit(f"release {version}")
    shop.build(version)
    done = deployer.work_once()
    assert done is not None
    return done


def _log(deployment: Deployment) -> list[tuple[str, str]]:
    return [
        (entry.step, entry.line)
        for entry in DeploymentLog.objects.filter(deployment=deployment).order_by("id")
    ]


def _first(log: list[tuple[str, str]], step: str, text: str) -> int:
    return next(i for i, (s, line) in enumerate(log) if s == step and line.startswith(text))


def _current(fleet: Fleet) -> list[str]:
    return [os.readlink(host.disk / "current") for host in fleet.hosts]


def _tar(path: Path, members: list[tarfile.TarInfo]) -> Path:
    with tarfile.open(path, "w") as tar:
        for member in members:
            tar.addfile(member, io.BytesIO(b"x" * member.size) if member.isreg() else None)
    return path


def test_a_release_rolls_out_to_three_hosts_two_at_a_time(shop: Shop, fleet: Fleet) -> None:
    _use_fleet(
        shop, fleet, hooks={"before_switch": 'echo "$OBEYA_HOST" >> "$OBEYA_SHARED_DIR/ran"'}
    )
    done = _deploy(shop, "1.0.0")
    assert done.status == "succeeded", done.reason
    assert _current(fleet) == [f"releases/{done.release_id}"] * 3
    for host in fleet.hosts:
        assert (host.disk / "current" / "VERSION").read_text() == "1.0.0\n"
        assert {"releases", "shared", "archive"} <= {p.name for p in host.disk.iterdir()}
    # before_switch runs once, on the first host, like a database migration
    assert (fleet.hosts[0].disk / "shared" / "ran").read_text() == fleet.hosts[0].name + "\n"
    assert not (fleet.hosts[1].disk / "shared" / "ran").exists()

    log = _log(done)
    first, second, third = (host.name for host in fleet.hosts)
    batch_one_switched = max(_first(log, "switch", first), _first(log, "switch", second))
    batch_one_healthy = max(_first(log, "health", f"{n}: healthy") for n in (first, second))
    assert batch_one_switched < _first(log, "health", first)
    assert batch_one_healthy < _first(log, "switch", third)

    staging = environment("staging")
    release = Release.objects.get(environment=staging, release_id=done.release_id)
    assert release.manifest.keys() == {"VERSION", "STATUS"}
    hosts = ssh.hosts_for(staging.target)
    assert [host.manifest() for host in hosts] == [release.manifest] * 3
    assert deploy.current_release(staging) == done.release_id
    drift = deploy.drift(staging)
    assert drift is not None and not drift.found
    (fleet.hosts[0].disk / "current" / "VERSION").write_text("1.0.0-hotfixed-by-hand\n")
    (fleet.hosts[0].disk / "current" / "notes").symlink_to("VERSION")
    drift = deploy.drift(staging)
    assert drift is not None and drift.changed == ("VERSION",) and drift.added == ("notes",)
    assert hosts[0].manifest()["notes"] == "->VERSION"
    for host in hosts:
        host.close()


def test_an_unhealthy_host_in_the_second_batch_sends_every_switched_host_back(
    shop: Shop, fleet: Fleet
) -> None:
    _use_fleet(shop, fleet)
    first = _deploy(shop, "1.0.0")
    assert first.status == "succeeded", first.reason
    (fleet.hosts[2].disk / "shared" / "refuse").write_text("2.0.0\n")
    second = _deploy(shop, "2.0.0")
    assert second.status == "rolled_back", second.reason
    assert f"health check failed on {fleet.hosts[2].name} in batch 2" in second.reason
    assert _current(fleet) == [f"releases/{first.release_id}"] * 3
    for host in fleet.hosts:
        assert (host.disk / "current" / "VERSION").read_text() == "1.0.0\n"
        assert (host.disk / "releases" / second.release_id).is_dir()  # kept, never deleted
    log = _log(second)
    back = [line for step, line in log if step == "rollback" and "current →" in line]
    assert back == [f"{host.name}: current → releases/{first.release_id}" for host in fleet.hosts]


def test_a_failed_first_batch_stops_the_deploy_before_the_next_host(
    shop: Shop, fleet: Fleet
) -> None:
    _use_fleet(shop, fleet)
    first = _deploy(shop, "1.0.0")
    (fleet.hosts[1].disk / "shared" / "refuse").write_text("2.0.0\n")
    second = _deploy(shop, "2.0.0")
    assert second.status == "rolled_back", second.reason
    assert f"health check failed on {fleet.hosts[1].name} in batch 1" in second.reason
    assert _current(fleet) == [f"releases/{first.release_id}"] * 3
    third = fleet.hosts[2].name
    assert not [line for step, line in _log(second) if step == "switch" and third in line]


def test_a_host_lost_before_its_switch_sends_the_switched_hosts_back(
    shop: Shop, fleet: Fleet
) -> None:
    _use_fleet(shop, fleet)
    first = _deploy(shop, "1.0.0")
    # before_switch runs on host 1 after every host unpacked: it takes host 3 down
    gone = fleet.hosts[2].namespace
    kill = (
        f'for p in /proc/[0-9]*; do [ "$(readlink "$p/ns/mnt")" = "{gone}" ] '
        '&& kill -9 "${p#/proc/}"; done; :'
    )
    _use_fleet(shop, fleet, hooks={"before_switch": kill})
    second = _deploy(shop, "2.0.0")
    assert second.status == "rolled_back", second.reason
    assert fleet.hosts[2].name in second.reason
    assert _current(fleet) == [f"releases/{first.release_id}"] * 3


def test_an_unknown_host_key_is_refused_and_nothing_switches(
    shop: Shop, fleet: Fleet, tmp_path: Path
) -> None:
    missing = tmp_path / "known_hosts_without_host_2"
    missing.write_text(fleet.hosts[0].known_hosts_line + "\n" + fleet.hosts[2].known_hosts_line)
    _use_fleet(shop, fleet, target=fleet.target(2, known_hosts=str(missing)))
    done = _deploy(shop, "1.0.0")
    assert done.status == "failed"
    assert f"the host key of {fleet.hosts[1].name} is not in {missing}" in done.reason
    assert "add its line" in done.reason
    assert not any((host.disk / "current").exists() for host in fleet.hosts)

    # a changed key (host 1's address with host 3's key) is refused just the same
    changed = tmp_path / "known_hosts_changed"
    port, key = fleet.hosts[0].port, fleet.hosts[2].host_key.split()[:2]
    changed.write_text(f"[127.0.0.1]:{port} {key[0]} {key[1]}\n")
    host = ssh.hosts_for(fleet.target(known_hosts=str(changed)))[0]
    with pytest.raises(TargetError, match=r"host key of 127\.0\.0\.1:\d+ is not in"):
        host.current()
    host.close()


def test_an_archive_that_escapes_is_refused_before_upload(fleet: Fleet, tmp_path: Path) -> None:
    host = ssh.hosts_for(fleet.target())[0]
    host.prepare()
    dotdot = tarfile.TarInfo("app/../../escape")
    absolute = tarfile.TarInfo("/tmp/escape")
    link = tarfile.TarInfo("app")
    link.type, link.linkname = tarfile.SYMTYPE, "../../.."
    through = tarfile.TarInfo("app/escape")
    dotdot.size = absolute.size = through.size = 1
    for number, members in enumerate([[dotdot], [absolute], [link, through]]):
        archive = _tar(tmp_path / f"bad-{number}.tar", members)
        with pytest.raises(TargetError, match="artifact refused before upload"):
            host.unpack(f"r{number}", archive)
    disk = fleet.hosts[0].disk
    assert list((disk / "releases").iterdir()) == []  # not even an .incoming- directory
    assert not (disk.parent / "escape").exists() and not (fleet.root.parent / "escape").exists()
    host.close()


def test_values_with_shell_metacharacters_stay_literal(
    shop: Shop, fleet: Fleet, tmp_path: Path
) -> None:
    marker = Path(f"/tmp/pw{uuid.uuid4().hex[:6]}")  # short: VERSION is small
    version = f"1.0 $(touch {marker}) `touch {marker}`; touch {marker} '\" | & > x"
    assert len(version) < 100
    _use_fleet(
        shop,
        fleet,
        hooks={"restart": 'printf "%s\\n" "$OBEYA_VERSION" > "$OBEYA_SHARED_DIR/version"'},
    )
    done = _deploy(shop, version)
    assert done.status == "succeeded", done.reason
    assert done.version == version
    for host in fleet.hosts:
        assert (host.disk / "shared" / "version").read_text() == version + "\n"
    assert not marker.exists()

    host = ssh.hosts_for(fleet.target())[0]
    odd = fleet.hosts[0].disk / "shared" / "it's $(here)"
    odd.mkdir()
    lines: list[str] = []
    value = f"a'b\"c $(touch {marker})\nsecond line; touch {marker}"
    code = host.run(
        'printf "%s\\n" "$VALUE"; pwd; echo to stderr >&2; exit 3',
        {"VALUE": value},
        f"{host.root}/shared/it's $(here)",
        30,
        lines.append,
    )
    assert code == 3
    assert lines == [*value.splitlines(), f"{host.root}/shared/it's $(here)", "to stderr"]
    assert not marker.exists()
    host.close()


def test_a_command_past_its_timeout_is_killed_with_its_children(fleet: Fleet) -> None:
    host = ssh.hosts_for(fleet.target())[0]
    host.prepare()
    lines: list[str] = []
    code = host.run(
        'sleep 600 & echo "$!" > shared/child; echo waiting; wait', {}, host.root, 1, lines.append
    )
    assert code == 124
    assert lines[0] == "waiting" and "timed out after 1 s" in lines[-1]
    child = (fleet.hosts[0].disk / "shared" / "child").read_text().strip()
    assert not _running(child)
    # a daemon left running by the command does not keep the step waiting
    code = host.run("sleep 600 & echo started", {}, host.root, 60, lines.append)
    assert code == 0 and lines[-1] == "started"
    host.close()


def _running(pid: str) -> bool:
    """Whether ``pid`` is alive; waits (bounded) for a killed process to be gone."""
    for _ in range(200):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return False
        if state == "Z":
            return False
        time.sleep(0.05)
    return True
