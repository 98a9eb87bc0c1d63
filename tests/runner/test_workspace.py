"""Workspaces: exact-commit checkouts from bundles, and archives that stay put (C5)."""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from obeya.runner.workspace import (
    UnsafeArchive,
    WorkspaceError,
    cleanup_workspace,
    pack_paths,
    prepare_workspace,
    safe_extract_tar,
)


def git(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    base = {"PATH": os.environ["PATH"], "HOME": str(cwd), "GIT_CONFIG_NOSYSTEM": "1"}
    identity = ["-c", "user.name=Test", "-c", "user.email=test@example.com"]
    done = subprocess.run(
        ["git", *identity, *args],
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture
def bundle(tmp_path: Path) -> tuple[Path, str, str]:
    """A bundle of a repo with two commits on main; returns (bundle, first sha, head sha)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git("init", "--quiet", "--initial-branch=main", cwd=repo)
    (repo / "app.txt").write_text("one\n")
    git("add", "app.txt", cwd=repo)
    git("commit", "--quiet", "-m", "first", cwd=repo)
    first = git("rev-parse", "HEAD", cwd=repo)
    (repo / "app.txt").write_text("two\n")
    git("commit", "--quiet", "-am", "second", cwd=repo)
    head = git("rev-parse", "HEAD", cwd=repo)
    path = tmp_path / "source.bundle"
    git("bundle", "create", "--quiet", str(path), "--all", cwd=repo)
    return path, first, head


def test_checks_out_the_exact_sha_not_the_branch_head(
    tmp_path: Path, bundle: tuple[Path, str, str]
) -> None:
    path, first, head = bundle
    assert first != head
    workspace = prepare_workspace(tmp_path / "work", 7, 1, path, first)
    assert workspace == (tmp_path / "work" / "job-7-attempt-1").resolve()
    assert (workspace / "app.txt").read_text() == "one\n"
    assert git("rev-parse", "HEAD", cwd=workspace) == first


def test_each_attempt_gets_a_fresh_directory(tmp_path: Path, bundle: tuple[Path, str, str]) -> None:
    path, _, head = bundle
    first = prepare_workspace(tmp_path / "work", 7, 1, path, head)
    (first / "stale.txt").write_text("left by a crashed run")
    again = prepare_workspace(tmp_path / "work", 7, 1, path, head)
    retry = prepare_workspace(tmp_path / "work", 7, 2, path, head)
    assert again == first
    assert not (again / "stale.txt").exists()
    assert retry != first
    assert (retry / "app.txt").read_text() == "two\n"


def test_global_and_system_git_config_have_no_say(
    tmp_path: Path, bundle: tuple[Path, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _, head = bundle
    home = tmp_path / "home"
    hooks = home / "hooks"
    hooks.mkdir(parents=True)
    marker = tmp_path / "hook-ran"
    hook = hooks / "post-checkout"
    hook.write_text(f"#!/bin/sh\ntouch {marker}\n")
    hook.chmod(0o755)
    (home / ".gitconfig").write_text(f"[core]\n\thooksPath = {hooks}\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    # Control: with that config a plain clone does run the hook.
    subprocess.run(["git", "clone", "-q", str(path), str(tmp_path / "plain")], check=True)
    assert marker.exists()
    marker.unlink()

    prepare_workspace(tmp_path / "work", 1, 1, path, head)
    assert not marker.exists()


def test_a_sha_missing_from_the_bundle_is_a_clear_error(
    tmp_path: Path, bundle: tuple[Path, str, str]
) -> None:
    path, _, _ = bundle
    with pytest.raises(WorkspaceError, match=f"Checking out {'0' * 40} from source.bundle"):
        prepare_workspace(tmp_path / "work", 1, 1, path, "0" * 40)
    assert not (tmp_path / "work" / "job-1-attempt-1").exists()


@pytest.mark.parametrize("sha", ["HEAD", "main", "--upload-pack=touch x", "abc123"])
def test_only_a_full_sha_is_accepted(
    tmp_path: Path, bundle: tuple[Path, str, str], sha: str
) -> None:
    with pytest.raises(WorkspaceError, match="not a full hexadecimal sha"):
        prepare_workspace(tmp_path / "work", 1, 1, bundle[0], sha)


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
