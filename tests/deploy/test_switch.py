"""RELIABILITY B1: the release switch is atomic for anyone reading ``current``.

A reader in its own process loops over ``current/VERSION`` while this process switches
``current`` 50 times: never a missing file, never a torn one. It also reads VERSION and a
second file, CONTENT, through one handle on the directory ``current`` led to (as a process
that started in that release does) and the two always belong to the same release.

The reader reports every version it sees on its standard output; after each switch the test
waits until the reader has seen the new release, so every switch happens while it reads.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from obeya.deploy import deployer
from obeya.deploy import services as deploy
from obeya.deploy.targets import LocalHost
from obeya.pipelines import artifacts, leases, runs
from tests.conftest import actor
from tests.deploy.conftest import Shop, environment, release_tar

SWITCHES = 50
WAIT_S = 30.0

READER = r"""
import os, sys
root, stop = sys.argv[1], sys.argv[2]
current = os.path.join(root, "current")
version_path = os.path.join(current, "VERSION")

def content_of(version):
    return (version.strip() + " ") * 4000

def read_at(directory, name):
    fd = os.open(name, os.O_RDONLY, dir_fd=directory)
    with os.fdopen(fd) as handle:
        return handle.read()

last, reads = None, 0
while not os.path.exists(stop):
    reads += 1
    try:
        with open(version_path) as handle:
            version = handle.read()
    except OSError as error:
        print(f"ERROR {type(error).__name__} reading current/VERSION: {error}", flush=True)
        continue
    if not (version.startswith("v") and version.endswith("\n")):
        print(f"ERROR torn current/VERSION: {version!r}", flush=True)
    try:
        directory = os.open(current, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as error:
        print(f"ERROR {type(error).__name__} opening current: {error}", flush=True)
        continue
    try:
        pinned, content = read_at(directory, "VERSION"), read_at(directory, "CONTENT")
    except OSError as error:
        print(f"ERROR {type(error).__name__} inside current: {error}", flush=True)
        continue
    finally:
        os.close(directory)
    if content != content_of(pinned):
        print(f"ERROR mixed release: VERSION {pinned!r} with CONTENT of another", flush=True)
    if pinned != last:
        print(f"SEEN {pinned.strip()}", flush=True)
        last = pinned
print(f"READS {reads}", flush=True)
"""


def release_files(version: str) -> dict[str, str]:
    return {
        "VERSION": f"{version}\n",
        "CONTENT": (version + " ") * 4000,
        "STATUS": "healthy\n",
    }


@dataclass
class Reader:
    """The reading process and what it reported so far."""

    process: subprocess.Popen[str]
    stop: Path
    errors: list[str] = field(default_factory=list)
    reads: int = 0

    def wait_to_see(self, version: str) -> None:
        """Read the reader's reports until it says it saw ``version``."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise AssertionError(f"the reader ended early: {self.errors}")
            self._take(line)
            if line.strip() == f"SEEN {version}":
                return
        raise AssertionError(f"the reader never saw {version}")

    def finish(self) -> None:
        self.stop.touch()
        out, _ = self.process.communicate(timeout=WAIT_S)
        for line in out.splitlines():
            self._take(line)

    def _take(self, line: str) -> None:
        if line.startswith("ERROR"):
            self.errors.append(line.strip())
        elif line.startswith("READS"):
            self.reads = int(line.split()[1])


@contextmanager
def reading(root: Path) -> Iterator[Reader]:
    stop = root.parent / f"stop-{root.name}"
    process = subprocess.Popen(
        [sys.executable, "-c", READER, str(root), str(stop)],
        stdout=subprocess.PIPE,
        text=True,
    )
    reader = Reader(process, stop)
    try:
        yield reader
    finally:
        if process.poll() is None:
            stop.touch()
            try:
                process.wait(timeout=WAIT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_readers_never_see_a_missing_or_mixed_release_during_50_switches(tmp_path: Path) -> None:
    host = LocalHost(str(tmp_path / "target"))
    host.prepare()
    names = []
    for number in range(1, 6):
        archive = tmp_path / f"v{number}.tar.gz"
        archive.write_bytes(release_tar(release_files(f"v{number}")))
        name = f"release-{number}"
        host.unpack(name, archive)
        names.append(name)
    host.switch(names[0])
    with reading(Path(host.root)) as reader:
        reader.wait_to_see("v1")
        for switch in range(1, SWITCHES + 1):
            number = switch % len(names) + 1
            host.switch(names[number - 1])
            reader.wait_to_see(f"v{number}")
        reader.finish()
    assert reader.errors == []
    assert reader.reads > SWITCHES
    assert host.current() == names[SWITCHES % len(names)]
    assert sorted(p.name for p in Path(host.root).iterdir()) == [
        "archive",
        "current",
        "releases",
        "shared",
    ], "no temporary link is left behind"


def _build(shop: Shop, files: dict[str, str]) -> None:
    """A run whose package job kept a release made of ``files`` (the runner protocol)."""
    runs.create_run(actor(shop.owner), shop.slug, "main")
    claim = leases.claim(shop.runner)
    assert claim is not None and claim.job.name == "package"
    artifacts.upload(
        shop.runner,
        claim.job.pk,
        claim.lease_token,
        "package",
        io.BytesIO(release_tar(files)),
    )
    leases.complete(shop.runner, claim.job.pk, claim.lease_token, "succeeded", 0)


def test_readers_see_whole_releases_while_real_deployments_switch_and_archive(
    shop: Shop,
) -> None:
    """Deployments to staging, each followed by retention moving old releases to archive/."""
    deploy.update_environment(actor(shop.owner), "shop", "staging", health={}, retention=2)
    root = shop.target("staging")
    _build(shop, release_files("v0"))
    first = deployer.work_once()
    assert first is not None and first.status == "succeeded", first and first.reason
    with reading(root) as reader:
        reader.wait_to_see("v0")
        for number in range(1, 7):
            shop.commit(f"change {number}")
            _build(shop, release_files(f"v{number}"))
            done = deployer.work_once()
            assert done is not None and done.status == "succeeded", done and done.reason
            reader.wait_to_see(f"v{number}")
        reader.finish()
    assert reader.errors == []
    kept = sorted(os.listdir(root / "releases"))
    assert len(kept) == 2 and LocalHost(str(root)).current() == kept[-1]
    assert len(os.listdir(root / "archive")) == 5, "old releases are moved aside, not deleted"
    assert environment("staging").lease_token == ""


def test_the_reader_catches_a_switch_that_is_not_atomic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check above can fail: a remove-then-link switch is caught within 50 switches."""
    host = LocalHost(str(tmp_path / "target"))
    host.prepare()
    for number in (1, 2):
        archive = tmp_path / f"v{number}.tar.gz"
        archive.write_bytes(release_tar(release_files(f"v{number}")))
        host.unpack(f"release-{number}", archive)
    host.switch("release-1")

    def unlink_then_link(release_id: str) -> None:
        current = Path(host.root) / "current"
        current.unlink()
        time.sleep(0.005)  # the gap `rm && ln -s` leaves, made wide enough to be seen
        os.symlink(f"releases/{release_id}", current)

    monkeypatch.setattr(host, "switch", unlink_then_link)
    with reading(Path(host.root)) as reader:
        reader.wait_to_see("v1")
        for switch in range(1, SWITCHES + 1):
            number = switch % 2 + 1
            host.switch(f"release-{number}")
            reader.wait_to_see(f"v{number}")
        reader.finish()
    assert any("FileNotFoundError" in error for error in reader.errors), reader.errors[:3]
