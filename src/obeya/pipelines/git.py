"""The service's repository, mirrored in the data dir: resolve refs, read files, bundle commits.

Every git call takes an argument list (never a shell), so branch names and messages stay
data (RELIABILITY C4). A lock file serialises changes to one mirror across processes.
"""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from obeya.core.errors import InvalidInput

GIT_TIMEOUT_S = 300
_SHA = re.compile(r"^[0-9a-f]{7,64}$")


class GitError(InvalidInput):
    """A git operation failed; the message carries git's own words."""

    code = "git_error"


@dataclass(frozen=True)
class Commit:
    sha: str
    author_name: str
    author_email: str
    authored_at: datetime
    committed_at: datetime
    message: str


def _env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}
    env.update(GIT_TERMINAL_PROMPT="0", GIT_CONFIG_NOSYSTEM="1", LC_ALL="C")
    return env


def git(*args: str, cwd: Path | None = None, check: bool = True) -> str:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise GitError(f"git {args[0]} took longer than {GIT_TIMEOUT_S} s") from None
    if check and done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise GitError(f"git {args[0]} failed: {detail[-1] if detail else done.returncode}")
    return done.stdout


def mirror_path(data_dir: Path, slug: str) -> Path:
    return data_dir / "git" / f"{slug}.git"


@contextmanager
def locked(mirror: Path) -> Iterator[None]:
    mirror.parent.mkdir(parents=True, exist_ok=True)
    with open(mirror.with_suffix(".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def sync(url: str, mirror: Path) -> None:
    """Clone or fetch the branches and tags of ``url``; our own refs/obeya/* are kept."""
    if not url:
        raise GitError("the service has no repository: set its Git repository first")
    if url.startswith("-"):
        raise GitError(f"{url!r} is not a repository URL", field="repository_url")
    with locked(mirror):
        if not (mirror / "HEAD").exists():
            git("init", "--bare", "--quiet", str(mirror))
            git("remote", "add", "--", "origin", url, cwd=mirror)
        else:
            git("remote", "set-url", "--", "origin", url, cwd=mirror)
        git(
            "fetch",
            "--quiet",
            "--prune",
            "--no-tags",
            "origin",
            "+refs/heads/*:refs/heads/*",
            "+refs/tags/*:refs/tags/*",
            cwd=mirror,
        )


def resolve(mirror: Path, ref: str) -> tuple[str, str]:
    """(sha, branch) for a branch, tag or commit; branch is "" for tags and bare commits."""
    ref = ref.strip()
    if not ref or ref.startswith("-") or any(c in ref for c in "\0\n\r"):
        raise GitError(f"{ref!r} is not a git ref", field="ref")
    for candidate, branch in ((f"refs/heads/{ref}", ref), (f"refs/tags/{ref}", "")):
        sha = git(
            "rev-parse", "--verify", "--quiet", f"{candidate}^{{commit}}", cwd=mirror, check=False
        ).strip()
        if sha:
            return sha, branch
    if _SHA.match(ref):
        sha = git(
            "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", cwd=mirror, check=False
        ).strip()
        if sha:
            return sha, ""
    raise GitError(f'no branch, tag or commit "{ref}" in the repository', field="ref")


def is_tag(mirror: Path, name: str, sha: str) -> bool:
    """Whether ``name`` is a tag of the mirror pointing at commit ``sha`` (after ``resolve``)."""
    found = git(
        "rev-parse", "--verify", "--quiet", f"refs/tags/{name}^{{commit}}", cwd=mirror, check=False
    ).strip()
    return bool(found) and found == sha


def commit(mirror: Path, sha: str) -> Commit:
    out = git("log", "-1", "--format=%H%x00%an%x00%ae%x00%aI%x00%cI%x00%B", sha, "--", cwd=mirror)
    full, name, email, authored, committed, message = out.split("\x00", 5)
    return Commit(
        full,
        name,
        email,
        datetime.fromisoformat(authored),
        datetime.fromisoformat(committed),
        message.strip(),
    )


def read_file(mirror: Path, sha: str, path: str) -> str | None:
    """The text of ``path`` at ``sha``, or None when the commit has no such file."""
    spec = f"{sha}:{path}"
    if not _exists(mirror, spec):
        return None
    return git("show", spec, cwd=mirror)


def _exists(mirror: Path, spec: str) -> bool:
    done = subprocess.run(
        ["git", "cat-file", "-e", spec],
        cwd=mirror,
        env=_env(),
        capture_output=True,
        timeout=GIT_TIMEOUT_S,
        check=False,
    )
    return done.returncode == 0


def pin(mirror: Path, run_id: int, sha: str) -> str:
    """Keep the run's commit reachable (a force-push must not lose it) and bundleable."""
    ref = f"refs/obeya/runs/{run_id}"
    with locked(mirror):
        git("update-ref", ref, sha, cwd=mirror)
    return ref


def pinned_runs(mirror: Path) -> dict[int, str]:
    """run id -> sha of every run's commit the mirror pins."""
    out = git("for-each-ref", "--format=%(refname) %(objectname)", "refs/obeya/runs/", cwd=mirror)
    pins = {}
    for line in out.splitlines():
        ref, _, sha = line.partition(" ")
        run_id = ref.removeprefix("refs/obeya/runs/")
        if run_id.isdigit():
            pins[int(run_id)] = sha
    return pins


def unpin(mirror: Path, run_ids: list[int]) -> None:
    """Drop the pins of these runs (their commits stay while a branch or tag holds them)."""
    if not run_ids:
        return
    commands = "".join(f"delete refs/obeya/runs/{run_id}\n" for run_id in run_ids)
    with locked(mirror):
        done = subprocess.run(
            ["git", "update-ref", "--stdin"],
            cwd=mirror,
            env=_env(),
            input=commands,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    if done.returncode != 0:
        raise GitError(f"git update-ref failed: {done.stderr.strip()}")


def bundle(mirror: Path, run_id: int, out: Path) -> Path:
    """A git bundle holding the run's commit, for a runner to clone from."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if not out.exists():
        partial = out.with_suffix(f".{os.getpid()}.tmp")
        with locked(mirror):
            git(
                "bundle", "create", "--quiet", str(partial), f"refs/obeya/runs/{run_id}", cwd=mirror
            )
        os.replace(partial, out)
    return out


def remote_heads(url: str) -> dict[str, str]:
    """branch -> sha on the remote, by `git ls-remote` (used by polling)."""
    heads = {}
    for line in git("ls-remote", "--heads", "--", url).splitlines():
        sha, _, ref = line.partition("\t")
        heads[ref.removeprefix("refs/heads/")] = sha
    return heads


def commits_between(mirror: Path, old: str, new: str, limit: int = 200) -> list[str]:
    """Shas reachable from ``new`` but not ``old`` (newest first), for change lead time."""
    revs = f"{old}..{new}" if old else new
    return git("rev-list", f"--max-count={limit}", revs, cwd=mirror).split()


def files_matching(mirror: Path, sha: str, suffix: str, limit: int = 500) -> dict[str, str]:
    """path -> text of every file ending in ``suffix`` at ``sha`` (e.g. ".feature")."""
    names = [
        n
        for n in git("ls-tree", "-r", "--name-only", sha, cwd=mirror).splitlines()
        if n.endswith(suffix)
    ][:limit]
    return {name: git("show", f"{sha}:{name}", cwd=mirror) for name in names}


def commit_list(mirror: Path, shas: list[str]) -> list[Commit]:
    """The commits ``shas`` in that order, read with one git call."""
    if not shas:
        return []
    out = git(
        "log",
        "--no-walk=unsorted",
        "--format=%x1e%H%x00%an%x00%ae%x00%aI%x00%cI%x00%B",
        *shas,
        "--",
        cwd=mirror,
    )
    found: list[Commit] = []
    for entry in out.split("\x1e")[1:]:
        full, name, email, authored, committed, message = entry.split("\x00", 5)
        found.append(
            Commit(
                full,
                name,
                email,
                datetime.fromisoformat(authored),
                datetime.fromisoformat(committed),
                message.strip(),
            )
        )
    return found
