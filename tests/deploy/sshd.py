"""Real OpenSSH test hosts: ``sshd -D -e`` processes on free loopback ports.

Each host is Debian's ``/usr/sbin/sshd`` with its own generated host key, accepting one
generated client key. All hosts share this machine, so to give each one its own disk the
way separate machines would have, each sshd runs in its own mount namespace where its
directory is bind-mounted over the target root: every host sees ``root`` and the test
reads what each host wrote under ``host.disk``. That needs root (CI runs as root).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest

SSHD = Path("/usr/sbin/sshd")
PRIVSEP_DIR = Path("/run/sshd")
START_TIMEOUT_S = 20.0
CONFIG = """\
ListenAddress 127.0.0.1:{port}
HostKey {host_key}
PidFile {pid_file}
AuthorizedKeysFile {authorized_keys}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
UsePAM no
AcceptEnv none
{shell_level}
Subsystem sftp internal-sftp
LogLevel INFO
"""
# bash sources ~/.bashrc for sessions sshd starts unless it thinks it is nested; a heavy
# rc file on the test machine (pyenv init …) would otherwise cost every command ~0.3 s.
SHELL_LEVEL = "SetEnv SHLVL=1"
# In its own mount namespace: the host's disk over the target root, then sshd.
UNSHARE = ["unshare", "--mount", "--propagation", "private", "--"]
START = 'mount --bind "$1" "$2" && exec "$3" -D -e -f "$4"'


def _missing(reason: str) -> NoReturn:
    reason = f"SSH TARGET TESTS NOT RUN: {reason}"
    if os.environ.get("OBEYA_REQUIRE_SSHD") == "1":
        pytest.fail(f"{reason} OBEYA_REQUIRE_SSHD=1 makes this a failure.")
    pytest.skip(reason)


def check_tools() -> None:
    """Skip loudly (fail under OBEYA_REQUIRE_SSHD=1) when sshd cannot be run here."""
    if not SSHD.exists():
        _missing(f"{SSHD} is missing: apt-get install openssh-server")
    for tool in ("ssh-keygen", "unshare", "mount"):
        if not any((Path(d) / tool).exists() for d in os.environ.get("PATH", "").split(":")):
            _missing(f"{tool} is not on PATH")
    if os.geteuid() != 0:
        _missing("the test hosts need root (one mount namespace per sshd); CI runs as root")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def keygen(path: Path, comment: str) -> str:
    """A new ed25519 key pair at ``path``; returns the public key line."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
    )
    return path.with_name(path.name + ".pub").read_text().strip()


@dataclass
class TestHost:
    """One sshd: its address as a target names it, its disk, its host key."""

    port: int
    disk: Path
    host_key: str  # the public key line
    log: Path
    process: subprocess.Popen[bytes]
    namespace: str = ""
    # Held open while the host lives: a namespace nobody holds is freed and its number may
    # be given to another test's new sshd, which _stop would then kill as if it were ours.
    namespace_fd: int = -1

    @property
    def name(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def known_hosts_line(self) -> str:
        key_type, key = self.host_key.split()[:2]
        return f"[127.0.0.1]:{self.port} {key_type} {key}"


@dataclass
class Fleet:
    """The test hosts and what an SSH target needs to reach them."""

    root: Path  # the target root: each host sees its own disk there
    key_file: Path
    known_hosts: Path
    hosts: list[TestHost] = field(default_factory=list)

    def target(self, batch_size: int = 1, **overrides: Any) -> dict[str, Any]:
        target: dict[str, Any] = {
            "kind": "ssh",
            "hosts": [host.name for host in self.hosts],
            "user": "root",
            "root": str(self.root),
            "batch_size": batch_size,
            "key_file": str(self.key_file),
            "known_hosts": str(self.known_hosts),
        }
        target.update(overrides)
        return target


def _start(fleet: Fleet, base: Path, number: int, authorized_keys: Path) -> TestHost:
    home = base / f"host{number}"
    disk = home / "disk"
    disk.mkdir(parents=True)
    host_key = keygen(home / "ssh_host_ed25519_key", f"test host {number}")
    port = _free_port()
    config = home / "sshd_config"
    config.write_text(
        CONFIG.format(
            port=port,
            host_key=home / "ssh_host_ed25519_key",
            pid_file=home / "sshd.pid",
            authorized_keys=authorized_keys,
            shell_level=SHELL_LEVEL,
        )
    )
    log = home / "sshd.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*UNSHARE, "sh", "-c", START, "sh", str(disk), str(fleet.root), str(SSHD), str(config)],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return TestHost(port, disk, host_key, log, process)


def _wait_listening(host: TestHost) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if host.process.poll() is not None:
            pytest.fail(f"sshd on port {host.port} exited:\n{host.log.read_text()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", host.port), 1):
            return
        time.sleep(0.05)
    pytest.fail(f"sshd on port {host.port} did not listen:\n{host.log.read_text()}")


def _stop(host: TestHost) -> None:
    """Stop the sshd and everything still running in its mount namespace (its sessions)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(host.process.pid, signal.SIGTERM)
    try:
        host.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(host.process.pid, signal.SIGKILL)
        host.process.wait(timeout=10)
    if not host.namespace:
        return
    try:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):  # gone already, or not ours to read
                if os.readlink(entry / "ns" / "mnt") == host.namespace:
                    os.kill(int(entry.name), signal.SIGKILL)
    finally:
        if host.namespace_fd >= 0:
            os.close(host.namespace_fd)
            host.namespace_fd = -1


@contextlib.contextmanager
def running_fleet(base: Path, count: int) -> Iterator[Fleet]:
    """``count`` sshd test hosts under ``base``, stopped (with their sessions) afterwards."""
    check_tools()
    PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
    base.mkdir(parents=True, exist_ok=True)
    root = base / "srv" / "shop"
    root.mkdir(parents=True)
    key_file = base / "client_key"
    authorized_keys = base / "authorized_keys"
    authorized_keys.write_text(keygen(key_file, "obeya deployer") + "\n")
    fleet = Fleet(root, key_file, base / "known_hosts")
    try:
        for number in range(1, count + 1):
            host = _start(fleet, base, number, authorized_keys)
            fleet.hosts.append(host)
            _wait_listening(host)
            held = os.open(f"/proc/{host.process.pid}/ns/mnt", os.O_RDONLY)
            namespace = os.readlink(f"/proc/{host.process.pid}/ns/mnt")
            if namespace != os.readlink("/proc/self/ns/mnt"):  # never our own: see _stop
                host.namespace, host.namespace_fd = namespace, held
            else:
                os.close(held)
        fleet.known_hosts.write_text("".join(h.known_hosts_line + "\n" for h in fleet.hosts))
        yield fleet
    finally:
        for host in fleet.hosts:
            _stop(host)
