"""A clean checkout of a job's exact commit, from a working copy the runner keeps.

Each worker of a runner holds a slot: ``slot-N`` under the work dir, locked with `flock`
so two runner processes sharing a work dir never share one. In its slot, each service
gets one git repository whose working tree is the job's workspace:

- before a job, the commit is fetched from the run's bundle, unless this repository
  already has it, then checked out with `git checkout --force`;
- after the job, in the background while the runner reports the result, `git clean
  -ffdx` and `git checkout --force` put the tree back to the pristine commit.

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
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from obeya.runner.workspace import WorkspaceError, cleanup_workspace

GIT_TIMEOUT_S = 600.0
MAX_SLOTS = 1024
MAX_REPOSITORIES = 8  # per slot; the least recently used beyond this are removed
MAX_FETCHES = 100  # bundles fetched into one repository before it is cloned afresh

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


class Checkouts:
    """The working copies of one worker slot; one job at a time uses them."""

    def __init__(self, work_dir: Path) -> None:
        work_dir.mkdir(parents=True, exist_ok=True)
        self.root, self._lock = _take_slot(work_dir.resolve())
        self._home = self.root / ".git-home"  # empty: git finds no config in HOME
        self._home.mkdir(exist_ok=True)
        self._known: dict[Path, _Repository] = {}
        self._reset: threading.Thread | None = None

    def prepare(self, service: str, sha: str, download: DownloadBundle) -> Path:
        """The workspace for ``service`` at exactly ``sha``, clean; ``download`` fetches
        the run's bundle into the given path when the commit is not here yet."""
        if not _SHA.fullmatch(sha):
            raise WorkspaceError(
                f"Commit {sha!r} is not a full hexadecimal sha: pass all 40 digits."
            )
        self.wait()
        repository = self.root / (_UNSAFE_NAME.sub("_", service).lstrip(".") or "_")
        self._forget_old(repository)
        try:
            return self._checkout(repository, sha, download)
        except WorkspaceError:
            self._discard(repository)  # maybe the job before broke it: once more, afresh
            return self._checkout(repository, sha, download)

    def release(self, workspace: Path) -> None:
        """The job in ``workspace`` is over: put the tree back, in the background."""
        state = self._known.get(workspace)
        if state is None:
            return
        state.clean = False
        self._reset = threading.Thread(
            target=self._put_back, args=(workspace, state), name="checkout-reset", daemon=True
        )
        self._reset.start()

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
        if state.clean and state.head == sha:
            return repository
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
        state.head, state.clean = sha, True
        return repository

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
