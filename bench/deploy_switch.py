"""What the atomic switch of ``current`` on a local target costs, against the raw rename.

``LocalHost.switch`` (the deployer's own: check the release is there, a new link under a
unique name, rename(2) over ``current``, then fsync of the root directory so the switch
survives a crash) flips ``current`` between two releases 2000 times. Interleaved with it,
round by round and in rotating order so machine noise hits all alike, the same flip done
raw (``os.symlink`` to a temporary name, ``os.replace`` over ``current``), and the raw
flip followed by the same fsync of the directory, timed apart. Each variant has its own
root; all three live in one temporary directory, on one filesystem.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.timing import summary_ms
from obeya.deploy.targets import LocalHost

SWITCHES = 2000
RELEASES = ("20260101T000000-d1", "20260101T000001-d2")


def filesystem_of(path: Path) -> str:
    """The filesystem type and mount point holding ``path`` (from /proc/self/mounts)."""
    best, kind = "", "unknown"
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return kind
    resolved = str(path.resolve())
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1]
        inside = resolved == point or resolved.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fields[2]
    return f"{kind} on {best}" if best else kind


def _layout(root: Path) -> None:
    for release in RELEASES:
        (root / "releases" / release).mkdir(parents=True)
    os.symlink(f"releases/{RELEASES[0]}", root / "current")


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _raw_switch(root: Path, release: str) -> None:
    temporary = root / ".current-raw"
    os.symlink(f"releases/{release}", temporary)
    os.replace(temporary, root / "current")


def run() -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="obeya-bench-switch-") as top:
        base = Path(top)
        roots = {name: base / name for name in ("local_host", "raw", "raw_fsync")}
        for root in roots.values():
            _layout(root)
        host = LocalHost(str(roots["local_host"]))
        timings: dict[str, list[float]] = {
            "switch": [],
            "raw": [],
            "raw_fsync": [],
            "fsync": [],
        }

        def ours(release: str) -> None:
            begin = time.perf_counter()
            host.switch(release)
            timings["switch"].append(time.perf_counter() - begin)

        def raw(release: str) -> None:
            begin = time.perf_counter()
            _raw_switch(roots["raw"], release)
            timings["raw"].append(time.perf_counter() - begin)

        def raw_fsync(release: str) -> None:
            begin = time.perf_counter()
            _raw_switch(roots["raw_fsync"], release)
            renamed = time.perf_counter()
            _fsync_directory(roots["raw_fsync"])
            done = time.perf_counter()
            timings["raw_fsync"].append(done - begin)
            timings["fsync"].append(done - renamed)

        variants: list[Callable[[str], None]] = [ours, raw, raw_fsync]
        load_before = os.getloadavg()[0]
        for index in range(SWITCHES):
            release = RELEASES[(index + 1) % 2]
            shift = index % len(variants)
            for variant in variants[shift:] + variants[:shift]:
                variant(release)
        load_after = os.getloadavg()[0]
        for root in roots.values():
            if os.readlink(root / "current") != f"releases/{RELEASES[SWITCHES % 2]}":
                raise RuntimeError(f"{root}: current does not point where the last switch put it")
        where = filesystem_of(base)

    switch, plain = summary_ms(timings["switch"]), summary_ms(timings["raw"])
    with_fsync, fsync = summary_ms(timings["raw_fsync"]), summary_ms(timings["fsync"])
    return {
        "method": (
            f"{SWITCHES} switches per variant between two releases, interleaved round by "
            "round in rotating order; each call timed with perf_counter"
        ),
        "filesystem": where,
        "load_average_1m_before": round(load_before, 1),
        "load_average_1m_after": round(load_after, 1),
        "raw symlink + os.replace": plain,
        "raw symlink + os.replace + fsync(root dir)": with_fsync,
        "  of which fsync(root dir)": fsync,
        "LocalHost.switch": switch,
        "difference (LocalHost.switch - raw)": {
            "p50_ms": round(switch["p50_ms"] - plain["p50_ms"], 3),
            "p99_ms": round(switch["p99_ms"] - plain["p99_ms"], 3),
            "of which fsync p50_ms": fsync["p50_ms"],
            "of which the rest p50_ms (release check, uuid name, Path joins)": round(
                switch["p50_ms"] - with_fsync["p50_ms"], 3
            ),
        },
        "target": "no figure set: issue #5 asks for the switch to be recorded against the "
        "raw os.replace of a symlink",
        "target_met": None,
    }
