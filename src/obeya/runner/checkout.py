"""A clean checkout of a job's exact commit, from a working copy the runner keeps.

Each worker of a runner holds a slot: ``slot-N`` under the work dir, locked with `flock`
so two runner processes sharing a work dir never share one. In its slot, each service
gets one git repository whose working tree is the job's workspace:

- before a job, the commit is fetched from the run's bundle, unless this repository
  already has it, then checked out with `git checkout --force`;
- after the job, the tree is compared with a picture of it taken before the job (every
  entry's stat, .git included). A job that changed nothing leaves it as it was: the
  tree is pristine and no git command runs. Otherwise, in the background while the
  runner reports the result, `git clean -ffdx` and `git checkout --force` put it back.

The picture is trusted the way git trusts its index: a change always moves an entry's
ctime, which no job can set back, but timestamps have a granularity, so an entry
written shortly before the picture was taken ("racy") is also compared by content.

So a job starts on exactly its commit with nothing left by the job before it: no
untracked or ignored files, no changed tracked files. A repository that git cannot put
right (the job broke it, or left directories it cannot delete) is removed, and the next
job clones afresh. The repository's own settings are rewritten before each use and git
runs with no system or global config, no hooks and a throwaway HOME, so neither the
machine nor an earlier job changes what is checked out. (A job runs as the runner's user
and can reach anything that user owns; run untrusted code on runners of its own.)
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import stat
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from obeya.runner import sandbox, threads
from obeya.runner.workspace import WorkspaceError, cleanup_workspace

GIT_TIMEOUT_S = 600.0
MAX_SLOTS = 1024
MAX_REPOSITORIES = 8  # per slot; the least recently used beyond this are removed
MAX_FETCHES = 100  # bundles fetched into one repository before it is cloned afresh
# How often a repository in use is marked as used (its mtime) for the least recently used
# to go first.
TOUCH_EVERY_S = 60.0
# Past this many entries a tree is not pictured: git puts it back after every job.
MAX_PICTURED = 200_000
# An entry whose ctime is this close to the picture (or later) is compared by content:
# far more than any filesystem's timestamp granularity.
RACY_NS = 50_000_000

_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")
_CONFIG = """\
[core]
\trepositoryformatversion = 0
\tfilemode = true
\tbare = false
\tlogallrefupdates = false
"""
# Settings git must use whatever the repository says.
_FORCED = [
    "-c",
    f"core.hooksPath={os.devnull}",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "gc.auto=0",
    "-c",
    "maintenance.auto=false",
    # A sandboxed job's files belong to the sandbox's uid when the runner runs as root.
    "-c",
    "safe.directory=*",
]
# Files in .git an earlier job could have written to change how a checkout comes out.
_INFLUENCES = ("hooks", "info/attributes", "info/sparse-checkout", "objects/info/alternates")

DownloadBundle = Callable[[Path], Path]


@dataclass
class _Repository:
    """What this process knows of one repository in its slot."""

    shas: set[str] = field(default_factory=set)  # commits fetched into it
    head: str = ""
    clean: bool = False  # the tree is the pristine checkout of `head`
    fetches: int = 0
    inherited: bool = False  # found on disk, left by an earlier runner process
    picture: _Picture | None = None  # the pristine tree, as the job got it


class Checkouts:
    """The working copies of one worker slot; one job at a time uses them."""

    def __init__(self, work_dir: Path) -> None:
        work_dir.mkdir(parents=True, exist_ok=True)
        self.root, self._lock = _take_slot(work_dir.resolve())
        self._home = self.root / ".git-home"  # empty: git finds no config in HOME
        self._home.mkdir(exist_ok=True)
        self._known: dict[Path, _Repository] = {}
        self._touched: dict[Path, float] = {}  # when each repository was last marked used
        self._reset: threads.Task | None = None

    def prepare(self, service: str, sha: str, download: DownloadBundle) -> Path:
        """The workspace for ``service`` at exactly ``sha``, clean; ``download`` fetches
        the run's bundle into the given path when the commit is not here yet."""
        if not _SHA.fullmatch(sha):
            raise WorkspaceError(
                f"Commit {sha!r} is not a full hexadecimal sha: pass all 40 digits."
            )
        self.wait()
        repository = self.root / (_UNSAFE_NAME.sub("_", service).lstrip(".") or "_")
        now = time.monotonic()
        if now - self._touched.get(repository, -TOUCH_EVERY_S) >= TOUCH_EVERY_S:
            self._forget_old(repository)
            self._touched[repository] = now
        try:
            return self._checkout(repository, sha, download)
        except WorkspaceError:
            self._discard(repository)  # maybe the job before broke it: once more, afresh
            return self._checkout(repository, sha, download)

    def release(self, workspace: Path) -> None:
        """The job in ``workspace`` is over: put the tree back (unless the job left it
        exactly as it was), in the background.

        When no entry needs reading (none was written just before the picture), whether
        the job changed anything is told here and now, from a stat of each entry: on
        another thread, those few dozen system calls each handed the interpreter lock
        back and forth with this thread's report of the result.
        """
        state = self._known.get(workspace)
        if state is None:
            return
        state.clean = False
        picture = state.picture
        if picture is not None and not picture.racy and picture.still(workspace):
            state.clean = True  # the job changed nothing
            return
        self._reset = threads.spawn(lambda: self._put_back(workspace, state), "checkout-reset")

    def wait(self) -> None:
        """Until the last `release` is done."""
        if self._reset is not None:
            self._reset.join()
            self._reset = None

    def close(self) -> None:
        """Finish the last reset and give the slot up (the working copies stay)."""
        self.wait()
        self._lock.close()

    def _checkout(self, repository: Path, sha: str, download: DownloadBundle) -> Path:
        state = self._known.get(repository)
        if state is not None and (state.fetches >= MAX_FETCHES or not _is_repository(repository)):
            self._discard(repository)
            state = None
        if state is None:
            # A repository left by an earlier runner process is kept, as dirty.
            state = self._known[repository] = _Repository(inherited=_is_repository(repository))
            if not state.inherited:
                cleanup_workspace(repository)
                self._git("Creating the workspace", "init", "-q", "--template=", str(repository))
        if not state.clean:
            _settle_config(repository)
        if sha not in state.shas:
            if not (state.inherited and self._has_commit(repository, sha)):
                self._fetch(repository, state, download)
            state.shas.add(sha)
        if not (state.clean and state.head == sha):
            self._checkout_commit(repository, state, sha)
        if state.picture is None:
            if os.geteuid() == 0 and sandbox.configured().enabled:
                # Handed to the sandbox's uid before the picture, not by the job's launch
                # after it: the ownership change would read as the job's own change.
                sandbox.hand_over(repository)
            state.picture = _Picture.take(repository)
        return repository

    def _checkout_commit(self, repository: Path, state: _Repository, sha: str) -> None:
        self._git(
            f"Checking out {sha}",
            "-C",
            str(repository),
            "checkout",
            "--quiet",
            "--force",
            "--detach",
            sha,
            "--",
        )
        if not state.clean:  # a checkout from a clean tree is clean; otherwise sweep it
            self._sweep(repository)
        state.head, state.clean, state.picture = sha, True, None

    def _has_commit(self, repository: Path, sha: str) -> bool:
        try:
            self._git("Looking for the commit", "-C", str(repository), "cat-file", "-e", sha)
        except WorkspaceError:
            return False
        return True

    def _fetch(self, repository: Path, state: _Repository, download: DownloadBundle) -> None:
        bundle = self.root / ".bundle"
        try:
            download(bundle)
            # Every ref, not only branches: the server names the run's commit
            # refs/obeya/runs/<id> in the bundle.
            self._git(
                "Fetching the run's bundle",
                "-C",
                str(repository),
                "fetch",
                "--quiet",
                "--no-tags",
                "--no-write-fetch-head",
                str(bundle),
                "+refs/*:refs/bundle/*",
            )
        finally:
            bundle.unlink(missing_ok=True)
        state.fetches += 1

    def _put_back(self, repository: Path, state: _Repository) -> None:
        if state.picture is not None and state.picture.still(repository):
            state.picture = state.picture.settled()
            state.clean = True  # the job changed nothing
            return
        state.picture = None
        try:
            _settle_config(repository)
            self._git(
                "Resetting the workspace",
                "-C",
                str(repository),
                "checkout",
                "--quiet",
                "--force",
                "--detach",
                state.head,
                "--",
            )
            self._sweep(repository)
            state.clean = True
        except (WorkspaceError, OSError):
            self._discard(repository)

    def _sweep(self, repository: Path) -> None:
        """Remove every untracked and ignored file, nested repositories included.

        git clean exits non-zero when it could not remove something (a read-only
        directory), which makes this a WorkspaceError.
        """
        self._git("Cleaning the workspace", "-C", str(repository), "clean", "-q", "-ffdx")

    def _discard(self, repository: Path) -> None:
        self._known.pop(repository, None)
        self._touched.pop(repository, None)
        try:
            cleanup_workspace(repository)
        except OSError as error:
            raise WorkspaceError(f"Could not remove the workspace {repository}: {error}") from error

    def _forget_old(self, keep: Path) -> None:
        """Touch ``keep``; remove the least recently used repositories past the limit."""
        if keep.is_dir() and not keep.is_symlink():
            os.utime(keep)
        others = [
            entry
            for entry in os.scandir(self.root)
            if not entry.name.startswith(".") and entry.path != str(keep)
        ]
        if len(others) < MAX_REPOSITORIES:
            return
        others.sort(key=lambda entry: entry.stat(follow_symlinks=False).st_mtime)
        for entry in others[: len(others) - MAX_REPOSITORIES + 1]:
            self._known.pop(Path(entry.path), None)
            self._touched.pop(Path(entry.path), None)
            cleanup_workspace(Path(entry.path))

    def _git(self, doing: str, *args: str) -> str:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self._home),
            "LANG": "C.UTF-8",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_NO_REPLACE_OBJECTS": "1",
        }
        try:
            done = subprocess.run(
                ["git", *_FORCED, *args],
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                check=True,
                timeout=GIT_TIMEOUT_S,
            )
        except subprocess.CalledProcessError as exc:
            detail = exc.stderr.decode("utf-8", "replace").strip() or f"exit code {exc.returncode}"
            raise WorkspaceError(f"{doing} failed: {detail}") from exc
        except subprocess.TimeoutExpired as exc:
            raise WorkspaceError(f"{doing} took longer than {exc.timeout:g}s.") from exc
        return done.stdout.decode("utf-8", "replace").strip()


def _take_slot(work_dir: Path) -> tuple[Path, IO[str]]:
    """The first ``slot-N`` no other worker holds, locked for this worker's lifetime."""
    for number in range(MAX_SLOTS):
        slot = work_dir / f"slot-{number}"
        handle = open(work_dir / f"slot-{number}.lock", "w")  # noqa: SIM115 (held open)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        slot.mkdir(exist_ok=True)
        return slot, handle
    raise WorkspaceError(f"All {MAX_SLOTS} workspace slots in {work_dir} are in use.")


def _is_repository(path: Path) -> bool:
    git_dir = path / ".git"
    return git_dir.is_dir() and not git_dir.is_symlink() and not path.is_symlink()


def _settle_config(repository: Path) -> None:
    """Give the repository our settings and no hooks, whatever a job wrote there."""
    git_dir = repository / ".git"
    if not _is_repository(repository):
        raise WorkspaceError(f"{repository} is no longer a git working copy.")
    try:
        for name in ("config", *_INFLUENCES):
            path = git_dir / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)  # a symlink is removed, never written through
        (git_dir / "config").write_text(_CONFIG)
    except OSError as error:
        raise WorkspaceError(f"Could not reset the settings of {repository}: {error}") from error


_Stat = tuple[int, int, int, int, int, int, int, int, int]


@dataclass(frozen=True)
class _Picture:
    """Every entry of a tree with the stat fields any change moves, and the content of
    the racy ones (written too shortly before the picture for their times to tell)."""

    root: tuple[int, int, int]  # the top directory's mode and owner (its times move)
    entries: dict[str, _Stat]
    racy: dict[str, bytes]

    @classmethod
    def take(cls, top: Path) -> _Picture | None:
        """A picture of ``top``; None when it is too big or cannot be read whole."""
        taken = time.time_ns()
        try:
            entries = _entries(top)
            info = os.lstat(top)
            if entries is None:
                return None
            racy = {
                path: _content(top / path, entry[0])
                for path, entry in entries.items()
                if entry[8] >= taken - RACY_NS
            }
        except OSError:
            return None
        return cls((info.st_mode, info.st_uid, info.st_gid), entries, racy)

    def still(self, top: Path) -> bool:
        """Whether ``top`` is exactly as pictured."""
        try:
            info = os.lstat(top)
            if (info.st_mode, info.st_uid, info.st_gid) != self.root:
                return False
            if _entries(top) != self.entries:
                return False
            return all(
                _content(top / path, self.entries[path][0]) == digest
                for path, digest in self.racy.items()
            )
        except OSError:
            return False

    def settled(self) -> _Picture:
        """This picture, just found `still`, without the entries that are no longer racy:
        their content was the same a moment ago, and a change from now on moves their
        ctime, so their stat alone tells from now on."""
        if not self.racy:
            return self
        now = time.time_ns()
        racy = {
            path: digest
            for path, digest in self.racy.items()
            if self.entries[path][8] >= now - RACY_NS
        }
        return _Picture(self.root, self.entries, racy)


def _entries(top: Path) -> dict[str, _Stat] | None:
    """Each entry under ``top`` (symlinks not followed) by relative path, with its type
    and permissions, inode, device, links, owner, size, mtime and ctime."""
    entries: dict[str, _Stat] = {}
    folders = [""]
    while folders:
        folder = folders.pop()
        with os.scandir(top / folder if folder else top) as listing:
            for item in listing:
                path = f"{folder}/{item.name}" if folder else item.name
                info = item.stat(follow_symlinks=False)
                entries[path] = (
                    info.st_mode,
                    info.st_ino,
                    info.st_dev,
                    info.st_nlink,
                    info.st_uid,
                    info.st_gid,
                    info.st_size,
                    info.st_mtime_ns,
                    info.st_ctime_ns,
                )
                if stat.S_ISDIR(info.st_mode):
                    folders.append(path)
        if len(entries) > MAX_PICTURED:
            return None
    return entries


def _content(path: Path, mode: int) -> bytes:
    """A digest of a file's bytes, a symlink's target; directories and others: nothing
    (a directory's names are entries of their own)."""
    if stat.S_ISLNK(mode):
        return os.fsencode(os.readlink(path))
    if not stat.S_ISREG(mode):
        return b""
    digest = hashlib.sha256()
    # O_NOFOLLOW: a symlink put in its place since the stat is refused, never read through.
    with open(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK), "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.digest()
