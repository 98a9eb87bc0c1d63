"""Workspaces: removed without following links, and archives that stay put (C5)."""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from obeya.runner.workspace import (
    UnsafeArchive,
    WorkspaceError,
    cleanup_workspace,
    pack_paths,
    safe_extract_tar,
)


def test_cleanup_never_follows_symlinks_and_copes_with_read_only_dirs(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    workspace = tmp_path / "ws"
    (workspace / "locked" / "deeper").mkdir(parents=True)
    (workspace / "locked" / "deeper" / "f").write_text("x")
    (workspace / "to-outside").symlink_to(outside)
    (workspace / "locked" / "deeper").chmod(0o500)
    (workspace / "locked").chmod(0o500)
    link_to_outside = tmp_path / "ws-link"
    link_to_outside.symlink_to(outside)

    cleanup_workspace(link_to_outside)
    cleanup_workspace(workspace)
    cleanup_workspace(tmp_path / "never-existed")

    assert not link_to_outside.exists() and not workspace.exists()
    assert (outside / "keep.txt").read_text() == "keep"


# --- archives ---------------------------------------------------------------------------

Member = tuple[tarfile.TarInfo, bytes]


def file(name: str, data: bytes = b"data") -> Member:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> Member:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, b""


def special(name: str, kind: bytes) -> Member:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.devmajor, info.devminor = 1, 3
    return info, b""


def make_tar(path: Path, members: list[Member]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    path = tmp_path / "outside"
    path.mkdir()
    (path / "secret.txt").write_text("secret")
    return path


# Each case: the members (given the outside dir) and the one refused ("{o}" = outside dir).
UNSAFE: dict[str, tuple[Callable[[Path], list[Member]], str]] = {
    "dot-dot": (lambda o: [file("../evil.txt")], "../evil.txt"),
    "dot-dot-nested": (lambda o: [file("a/b/../../../evil.txt")], "a/b/../../../evil.txt"),
    "absolute": (lambda o: [file(f"{o}/evil.txt")], "{o}/evil.txt"),
    "symlink-escape": (lambda o: [link("up", "../outside")], "up"),
    "symlink-absolute": (lambda o: [link("abs", str(o))], "abs"),
    "symlink-then-write": (
        lambda o: [link("here", "."), file("here/evil.txt")],
        "here/evil.txt",
    ),
    "symlink-through-symlink": (lambda o: [link("here", "."), link("esc", "here/..")], "esc"),
    "symlink-replaced": (lambda o: [link("l", "a"), file("l")], "l"),
    "hardlink-escape": (
        lambda o: [link("h", "../outside/secret.txt", tarfile.LNKTYPE)],
        "h",
    ),
    "hardlink-absolute": (lambda o: [link("h", f"{o}/secret.txt", tarfile.LNKTYPE)], "h"),
    "hardlink-to-file-not-in-archive": (
        lambda o: [link("h", "existing.txt", tarfile.LNKTYPE)],
        "h",
    ),
    "char-device": (lambda o: [special("null", tarfile.CHRTYPE)], "null"),
    "block-device": (lambda o: [special("sda", tarfile.BLKTYPE)], "sda"),
    "fifo": (lambda o: [special("pipe", tarfile.FIFOTYPE)], "pipe"),
    "too-big": (lambda o: [file("big", b"x" * 2000)], "big"),
    "too-big-in-sum": (lambda o: [file(f"f{i}", b"x" * 400) for i in range(3)], "f2"),
    "too-big-through-hardlinks": (
        lambda o: [file("f", b"x" * 400), *[link(f"h{i}", "f", tarfile.LNKTYPE) for i in range(3)]],
        "h1",
    ),
    "too-many-members": (lambda o: [file(f"f{i}") for i in range(11)], "f10"),
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_unsafe_archives_are_refused_before_anything_is_written(
    tmp_path: Path, outside: Path, case: str
) -> None:
    members, bad = UNSAFE[case]
    bad = bad.format(o=outside)
    archive = make_tar(tmp_path / "a.tar.gz", members(outside))
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "existing.txt").write_text("already here")
    with pytest.raises(UnsafeArchive) as refused:
        safe_extract_tar(archive, dest, max_bytes=1000, max_members=10)
    assert refused.value.member == bad
    assert f'member "{bad}"' in str(refused.value)
    assert sorted(p.name for p in dest.iterdir()) == ["existing.txt"]
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert not (tmp_path / "evil.txt").exists()


def test_a_symlink_already_on_disk_cannot_be_written_through(tmp_path: Path, outside: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "out").symlink_to(outside)  # e.g. a symlink committed to the repository
    archive = make_tar(tmp_path / "a.tar.gz", [file("out/evil.txt")])
    with pytest.raises(UnsafeArchive, match="data filter"):
        safe_extract_tar(archive, dest, max_bytes=1000, max_members=10)
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


def test_a_compression_bomb_is_refused_without_expanding_it(tmp_path: Path) -> None:
    archive = tmp_path / "bomb.tar.gz"
    size = 32 * 1024 * 1024
    info = tarfile.TarInfo("zeros")
    info.size = size
    with (
        gzip.open(archive, "wb", compresslevel=1) as raw,
        tarfile.open(fileobj=raw, mode="w") as tar,
    ):
        tar.addfile(info, io.BytesIO(bytes(size)))
    assert archive.stat().st_size < size // 100
    dest = tmp_path / "dest"
    with pytest.raises(UnsafeArchive, match="past the limit of 1048576 bytes"):
        safe_extract_tar(archive, dest, max_bytes=1024 * 1024, max_members=10)
    assert list(dest.iterdir()) == []


def test_a_good_archive_is_extracted(tmp_path: Path) -> None:
    directory = tarfile.TarInfo("v1")
    directory.type = tarfile.DIRTYPE
    archive = make_tar(
        tmp_path / "good.tar.gz",
        [
            (directory, b""),
            file("./v1/app.txt", b"app"),
            link("latest", "v1/app.txt"),
            link("v1/up", "../v1/app.txt"),
            link("copy.txt", "v1/app.txt", tarfile.LNKTYPE),
        ],
    )
    dest = tmp_path / "dest"
    names = safe_extract_tar(archive, dest, max_bytes=1000, max_members=10)
    assert names == ["v1", "v1/app.txt", "latest", "v1/up", "copy.txt"]
    assert (dest / "latest").read_text() == "app"
    assert (dest / "v1" / "up").read_text() == "app"
    assert (dest / "copy.txt").read_text() == "app"


def test_not_a_tar_is_a_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.tar.gz"
    bogus.write_bytes(b"not an archive at all")
    with pytest.raises(WorkspaceError, match=r"bogus\.tar\.gz is not a readable tar archive"):
        safe_extract_tar(bogus, tmp_path / "dest", max_bytes=1000, max_members=10)


# --- packing ------------------------------------------------------------------------------


@pytest.fixture
def workspace(tmp_path: Path, outside: Path) -> Path:
    ws = tmp_path / "ws"
    (ws / "build" / "sub").mkdir(parents=True)
    (ws / "build" / "app.bin").write_bytes(b"\x00binary")
    (ws / "build" / "sub" / "x.txt").write_text("x")
    (ws / "build" / "latest").symlink_to("app.bin")
    (ws / "build" / "leak").symlink_to(outside / "secret.txt")
    (ws / "build" / "sneaky").symlink_to("../../outside/secret.txt")
    (ws / "report.txt").write_text("report")
    (ws / "notes.md").write_text("notes")
    (ws / "escape").symlink_to(outside)
    return ws


def test_pack_paths_packs_globs_and_whole_directories(tmp_path: Path, workspace: Path) -> None:
    out = tmp_path / "artifacts.tar.gz"
    packed = pack_paths(workspace, ["build/", "*.txt", "nothing-*"], out)
    assert packed == ["build/app.bin", "build/latest", "build/sub/x.txt", "report.txt"]
    dest = tmp_path / "unpacked"
    safe_extract_tar(out, dest, max_bytes=10_000, max_members=100)
    assert (dest / "build" / "latest").read_bytes() == b"\x00binary"
    assert (dest / "report.txt").read_text() == "report"
    assert not (dest / "build" / "leak").exists()
    with tarfile.open(out) as tar:
        assert {member.uname for member in tar} == {""}


def test_pack_paths_skips_matches_that_lead_outside(tmp_path: Path, workspace: Path) -> None:
    assert pack_paths(workspace, ["*/secret.txt", "build/lea*"], tmp_path / "a.tgz") == []
    everything = pack_paths(workspace, ["*"], tmp_path / "b.tgz")
    assert "escape" not in everything
    assert "build/leak" not in everything
    assert "build/sneaky" not in everything
    assert "notes.md" in everything


@pytest.mark.parametrize(
    "pattern",
    [
        "../outside/secret.txt",
        "/etc/passwd",
        "escape",
        "escape/secret.txt",
        "escape/*",
        "build/leak",
        "build/../../*",
    ],
)
def test_pack_paths_refuses_patterns_that_escape(
    tmp_path: Path, workspace: Path, pattern: str
) -> None:
    with pytest.raises(WorkspaceError, match="Artifact path"):
        pack_paths(workspace, [pattern], tmp_path / "a.tar.gz")
    assert not (tmp_path / "a.tar.gz").exists()
