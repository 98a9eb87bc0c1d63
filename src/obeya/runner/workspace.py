"""A job's working directory: removed safely, artifacts packed out of it and unpacked into one.

`cleanup_workspace` removes a directory tree without following symlinks out of it.
`safe_extract_tar` unpacks an artifact archive from elsewhere without letting it write
outside its destination, and `pack_paths` packs a job's artifacts without letting a
pattern or a symlink reach outside the workspace.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import stat
import tarfile
from collections.abc import Callable
from functools import partial
from pathlib import Path, PurePosixPath

_GLOB_MAGIC = re.compile(r"[*?[]")


class WorkspaceError(Exception):
    """A workspace could not be prepared, cleaned up or packed."""


class UnsafeArchive(WorkspaceError):
    """An archive tried to write outside its destination, or past its limits."""

    def __init__(self, archive: Path, member: str, reason: str) -> None:
        self.member = member
        self.reason = reason
        super().__init__(f'Refusing to extract {archive.name}: member "{member}" {reason}.')


def cleanup_workspace(path: Path) -> None:
    """Remove a workspace. A symlink is unlinked, never followed; a missing path is fine.

    rmtree never follows the symlinks it meets inside the tree. If the job left
    directories read-only (Go's module cache does), they are made writable and the
    removal is retried once.
    """
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink()
    elif path.exists():
        try:
            shutil.rmtree(path)
        except OSError:
            _open_up_directories(path)
            shutil.rmtree(path)


def safe_extract_tar(archive: Path, dest: Path, *, max_bytes: int, max_members: int) -> list[str]:
    """Extract `archive` into `dest`, refusing anything that could reach outside it.

    Every member is checked before anything is written (`UnsafeArchive` names the first
    bad one): no absolute paths or `..`, only files, directories and links; symlinks and
    hard links must resolve inside `dest` and nothing may be written through a symlink
    from the same archive; at most `max_members` members and `max_bytes` bytes of file
    data, hard links counted like copies (the scan stops as soon as a limit is passed,
    so a bomb is never expanded).
    Extraction then runs with tarfile's "data" filter, which also checks each member
    against what is on disk. These checks do not lean on the filter alone: older Pythons
    have known bypasses of it. Returns the names extracted.
    """
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            members, names = _checked_members(tar, archive, max_bytes, max_members)
            # Safe: every member was checked above, and the data filter checks it again.
            tar.extractall(dest, members=members, filter=_data_filter_for(archive))  # noqa: S202
    except tarfile.ReadError as exc:
        raise WorkspaceError(f"{archive.name} is not a readable tar archive: {exc}.") from exc
    return names


def inspect_tar(archive: Path, *, max_bytes: int, max_members: int) -> list[str]:
    """The member names of ``archive`` after the same checks as ``safe_extract_tar``,
    without extracting anything (the server checks uploads this way)."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            _, names = _checked_members(tar, archive, max_bytes, max_members)
    except (tarfile.ReadError, EOFError, OSError) as exc:
        raise WorkspaceError(f"{archive.name} is not a readable tar archive: {exc}.") from exc
    return names


def pack_paths(workspace: Path, patterns: list[str], out: Path) -> list[str]:
    """Write the files matching `patterns` (relative globs, `dir/` = whole dir) to a tar.gz.

    A pattern that is absolute or leads outside the workspace is refused. A matched
    directory is packed whole. Symlinks are kept as links when they stay inside the
    workspace and skipped otherwise; special files are skipped. Returns the packed paths,
    relative and sorted. The archive is written even when nothing matched.
    """
    root = Path(os.path.realpath(workspace))
    out_real = os.path.realpath(out)
    found: set[str] = set()
    for pattern in patterns:
        for match in _matches(root, pattern):
            found |= _packable(root, match, out_real)
    packed = sorted(found)
    unfinished = out.with_name(out.name + ".partial")
    with tarfile.open(unfinished, "w:gz") as tar:
        for relative in packed:
            tar.add(root / relative, arcname=relative, recursive=False, filter=_anonymous)
    unfinished.replace(out)
    return packed


def _open_up_directories(top: Path) -> None:
    """Give the owner rwx on every real directory under `top`, never following a symlink."""
    os.chmod(top, stat.S_IRWXU)
    for dirpath, dirnames, _ in os.walk(top):
        for name in dirnames:
            directory = os.path.join(dirpath, name)
            if not os.path.islink(directory):
                os.chmod(directory, stat.S_IRWXU)


def _checked_members(
    tar: tarfile.TarFile, archive: Path, max_bytes: int, max_members: int
) -> tuple[list[tarfile.TarInfo], list[str]]:
    """The archive's members, each checked, and their normalised names."""
    members: list[tarfile.TarInfo] = []
    names: list[str] = []
    symlinks: set[str] = set()
    files: dict[str, int] = {}  # regular files so far, with their sizes
    total = 0
    for member in tar:  # iterating reads headers lazily, so a limit stops the scan early
        if len(members) == max_members:
            raise UnsafeArchive(archive, member.name, f"is past the limit of {max_members} members")
        refuse = partial(UnsafeArchive, archive, member.name)
        name = _inside(member.name, symlinks, refuse, allow_dotdot=False)
        if not name and not member.isdir():
            raise refuse("has an empty path")
        if name in symlinks:
            raise refuse("replaces a symlink from the same archive")
        if member.isreg():
            files[name] = member.size
            total += member.size
        elif member.issym():
            if not member.linkname:
                raise refuse("is a symlink with an empty target")
            if member.linkname.startswith("/"):
                raise refuse(f"is a symlink to an absolute path ({member.linkname})")
            parent = PurePosixPath(name).parent
            _inside(str(parent / member.linkname), symlinks, refuse, allow_dotdot=True)
            symlinks.add(name)
            files.pop(name, None)
        elif member.islnk():
            target = _inside(member.linkname, symlinks, refuse, allow_dotdot=False)
            if target not in files:
                raise refuse(f"is a hard link to {member.linkname}, not a file in this archive")
            # tarfile copies the data when it cannot link, so count it like a file.
            total += files[target]
        elif not member.isdir():
            raise refuse("is a device, FIFO or other special file")
        if total > max_bytes:
            raise refuse(f"takes the extracted size past the limit of {max_bytes} bytes")
        members.append(member)
        names.append(name)
    return members, names


def _inside(
    path: str,
    symlinks: set[str],
    refuse: Callable[[str], UnsafeArchive],
    *,
    allow_dotdot: bool,
) -> str:
    """Normalise `path` (relative to the destination) without leaving it or crossing a link.

    Each step is taken lexically; stepping through a symlink from the same archive is
    refused, since where it really leads depends on what is on disk by then.
    """
    if path.startswith("/"):
        raise refuse("has an absolute path")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if parts and "/".join(parts) in symlinks:
            raise refuse(f"goes through the symlink {'/'.join(parts)} from the same archive")
        if part == "..":
            if not allow_dotdot:
                raise refuse("has '..' in its path")
            if not parts:
                raise refuse(f"points outside the destination ({path})")
            parts.pop()
            continue
        parts.append(part)
    return "/".join(parts)


def _data_filter_for(
    archive: Path,
) -> Callable[[tarfile.TarInfo, str], tarfile.TarInfo | None]:
    def data_filter(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
        try:
            return tarfile.data_filter(member, dest)
        except tarfile.FilterError as exc:
            reason = f"was refused by the data filter: {exc}"
            raise UnsafeArchive(archive, member.name, reason) from exc

    return data_filter


def _matches(root: Path, pattern: str) -> list[str]:
    """The workspace-relative paths `pattern` matches; refuses patterns that leave it."""
    if pattern.startswith("/") or os.path.isabs(pattern):
        raise WorkspaceError(f"Artifact path {pattern!r} is absolute: give it relative to the job.")
    literal = []
    for part in pattern.split("/"):
        if _GLOB_MAGIC.search(part):
            break
        literal.append(part)
    fixed = os.path.realpath(os.path.join(root, *literal))
    normalised = os.path.normpath(pattern)
    if not _is_within(fixed, root) or normalised == ".." or normalised.startswith("../"):
        raise WorkspaceError(f"Artifact path {pattern!r} leads outside the job's workspace.")
    if not _GLOB_MAGIC.search(pattern):
        return [normalised] if os.path.lexists(root / normalised) else []
    return glob.glob(pattern, root_dir=root, recursive=True)


def _packable(root: Path, match: str, out_real: str) -> set[str]:
    """`match` and, for a directory, everything under it that may go in the archive."""
    path = root / match
    if path.is_symlink():
        return {_relative(root, path)} if _link_stays_inside(root, path) else set()
    real = os.path.realpath(path)
    if not _is_within(real, root) or real == out_real:
        return set()
    if path.is_file():
        return {_relative(root, path)}
    if not path.is_dir():
        return set()  # sockets, FIFOs, devices
    found: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(path):
        for name in [*dirnames, *filenames]:
            entry = Path(dirpath) / name
            if entry.is_symlink():
                if _link_stays_inside(root, entry):
                    found.add(_relative(root, entry))
            elif entry.is_file() and os.path.realpath(entry) != out_real:
                found.add(_relative(root, entry))
    return found


def _link_stays_inside(root: Path, link: Path) -> bool:
    """A symlink is kept only if its text and what it really resolves to stay inside."""
    target = os.readlink(link)
    if os.path.isabs(target):
        return False
    lexical = os.path.normpath(os.path.join(_relative(root, link.parent), target))
    if lexical == ".." or lexical.startswith("../"):
        return False
    return _is_within(os.path.realpath(link), root)


def _relative(root: Path, path: Path) -> str:
    return os.path.normpath(os.path.relpath(path, root)).replace(os.sep, "/")


def _is_within(real: str, root: Path) -> bool:
    return real == str(root) or real.startswith(str(root) + os.sep)


def _anonymous(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """Strip the runner's user and group from packed entries."""
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info
