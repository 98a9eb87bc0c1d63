"""Checkouts: each job gets its exact commit, clean, from a working copy the runner keeps."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from obeya.runner import checkout
from obeya.runner.checkout import Checkouts
from obeya.runner.workspace import WorkspaceError


def git(*args: str, cwd: Path) -> str:
    env = {"PATH": os.environ["PATH"], "HOME": str(cwd), "GIT_CONFIG_NOSYSTEM": "1"}
    identity = ["-c", "user.name=Test", "-c", "user.email=test@example.com"]
    # As root, a workspace belongs to the sandbox's uid (65534), as the runner's own git allows.
    identity += ["-c", "safe.directory=*"]
    done = subprocess.run(
        ["git", *identity, *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


class Source:
    """A repository with two commits on main, and a download that counts its calls."""

    def __init__(self, root: Path) -> None:
        self.repo = root / "repo"
        self.repo.mkdir()
        git("init", "--quiet", "--initial-branch=main", cwd=self.repo)
        (self.repo / ".gitignore").write_text("build/\n")
        (self.repo / "app.txt").write_text("one\n")
        git("add", "-A", cwd=self.repo)
        git("commit", "--quiet", "-m", "first", cwd=self.repo)
        self.first = git("rev-parse", "HEAD", cwd=self.repo)
        (self.repo / "app.txt").write_text("two\n")
        git("commit", "--quiet", "-am", "second", cwd=self.repo)
        self.head = git("rev-parse", "HEAD", cwd=self.repo)
        self.downloads = 0

    def download(self, dest: Path) -> Path:
        self.downloads += 1
        git("bundle", "create", "--quiet", str(dest), "--all", cwd=self.repo)
        return dest


@pytest.fixture
def source(tmp_path: Path) -> Source:
    return Source(tmp_path)


@pytest.fixture
def checkouts(tmp_path: Path):
    made = Checkouts(tmp_path / "work")
    yield made
    made.close()


def pristine(workspace: Path) -> bool:
    return git("status", "--porcelain", "--ignored", cwd=workspace) == ""


def test_checks_out_the_exact_sha_not_the_branch_head(checkouts: Checkouts, source: Source):
    workspace = checkouts.prepare("svc", source.first, source.download)
    assert (workspace / "app.txt").read_text() == "one\n"
    assert git("rev-parse", "HEAD", cwd=workspace) == source.first
    assert pristine(workspace)


def test_the_next_job_finds_nothing_the_last_one_left(checkouts: Checkouts, source: Source):
    workspace = checkouts.prepare("svc", source.head, source.download)
    (workspace / "app.txt").write_text("changed by the job\n")
    (workspace / ".gitignore").unlink()
    (workspace / "untracked.txt").write_text("left behind")
    (workspace / "build").mkdir()
    (workspace / "build" / "out.o").write_text("ignored, but not kept")
    (workspace / "nested").mkdir()
    git("init", "--quiet", cwd=workspace / "nested")
    git("checkout", "--quiet", "-b", "made-by-the-job", cwd=workspace)
    checkouts.release(workspace)

    again = checkouts.prepare("svc", source.head, source.download)

    assert again == workspace
    assert (again / "app.txt").read_text() == "two\n"
    assert (again / ".gitignore").exists()
    assert sorted(p.name for p in again.iterdir()) == [".git", ".gitignore", "app.txt"]
    assert git("rev-parse", "HEAD", cwd=again) == source.head
    assert pristine(again)
    assert source.downloads == 1  # the commit was already there


def test_moving_between_commits_gives_each_exactly(checkouts: Checkouts, source: Source):
    for sha, text in ((source.head, "two\n"), (source.first, "one\n"), (source.head, "two\n")):
        workspace = checkouts.prepare("svc", sha, source.download)
        assert (workspace / "app.txt").read_text() == text
        assert git("rev-parse", "HEAD", cwd=workspace) == sha
        (workspace / "junk").write_text("x")
        checkouts.release(workspace)


def test_each_service_has_its_own_working_copy(checkouts: Checkouts, source: Source):
    one = checkouts.prepare("one", source.head, source.download)
    checkouts.release(one)
    two = checkouts.prepare("two", source.first, source.download)
    assert one != two
    assert (two / "app.txt").read_text() == "one\n"


def test_global_and_system_git_config_have_no_say(
    tmp_path: Path, checkouts: Checkouts, source: Source, monkeypatch: pytest.MonkeyPatch
):
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
    bundle = source.download(tmp_path / "plain.bundle")
    # Control: with that config a plain clone does run the hook.
    subprocess.run(["git", "clone", "-q", str(bundle), str(tmp_path / "plain")], check=True)
    assert marker.exists()
    marker.unlink()

    checkouts.prepare("svc", source.head, source.download)
    assert not marker.exists()


def test_hooks_and_settings_a_job_wrote_have_no_say_in_the_next_checkout(
    tmp_path: Path, checkouts: Checkouts, source: Source
):
    workspace = checkouts.prepare("svc", source.head, source.download)
    marker = tmp_path / "hook-ran"
    hook = workspace / ".git" / "hooks" / "post-checkout"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text(f"#!/bin/sh\ntouch {marker}\n")
    hook.chmod(0o755)
    with (workspace / ".git" / "config").open("a") as config:
        config.write("[core]\n\tautocrlf = true\n")
    (workspace / ".git" / "info").mkdir(exist_ok=True)
    (workspace / ".git" / "info" / "attributes").write_text("* text eol=crlf\n")
    checkouts.release(workspace)

    again = checkouts.prepare("svc", source.first, source.download)

    assert not marker.exists()
    assert (again / "app.txt").read_bytes() == b"one\n"


def test_a_working_copy_git_cannot_clean_is_replaced(
    checkouts: Checkouts, source: Source, monkeypatch: pytest.MonkeyPatch
):
    workspace = checkouts.prepare("svc", source.head, source.download)
    locked = workspace / "build" / "cache"
    locked.mkdir(parents=True)
    (locked / "module.go").write_text("read-only, like Go's module cache")
    locked.chmod(0o500)
    real_git = checkouts._git

    def git_that_cannot_clean(doing: str, *args: str) -> str:
        if "clean" in args:  # as it fails for a user who may not write there (not root)
            raise WorkspaceError(f"{doing} failed: warning: failed to remove build/cache")
        return real_git(doing, *args)

    monkeypatch.setattr(checkouts, "_git", git_that_cannot_clean)
    checkouts.release(workspace)
    checkouts.wait()
    monkeypatch.setattr(checkouts, "_git", real_git)

    again = checkouts.prepare("svc", source.head, source.download)

    assert (again / "app.txt").read_text() == "two\n"
    assert not (again / "build").exists()
    assert pristine(again)
    assert source.downloads == 2  # removed, and cloned afresh


def test_a_broken_git_directory_is_replaced(checkouts: Checkouts, source: Source):
    workspace = checkouts.prepare("svc", source.head, source.download)
    (workspace / ".git" / "HEAD").write_text("not a ref at all\n")
    checkouts.release(workspace)

    again = checkouts.prepare("svc", source.head, source.download)

    assert git("rev-parse", "HEAD", cwd=again) == source.head
    assert source.downloads == 2  # cloned afresh


def test_a_working_copy_left_by_an_earlier_runner_is_cleaned_and_kept(
    tmp_path: Path, source: Source
):
    first = Checkouts(tmp_path / "work")
    workspace = first.prepare("svc", source.head, source.download)
    (workspace / "left-by-a-killed-job").write_text("x")
    first.close()  # the runner died mid-job: no release

    second = Checkouts(tmp_path / "work")
    try:
        again = second.prepare("svc", source.head, source.download)
    finally:
        second.close()
    assert again == workspace
    assert not (again / "left-by-a-killed-job").exists()
    assert source.downloads == 1  # its commits are still there


def test_two_workers_on_one_work_dir_never_share_a_slot(tmp_path: Path, source: Source):
    one, two = Checkouts(tmp_path / "work"), Checkouts(tmp_path / "work")
    try:
        assert one.root != two.root
        assert one.prepare("svc", source.head, source.download) != two.prepare(
            "svc", source.head, source.download
        )
    finally:
        one.close()
        two.close()


def test_least_recently_used_working_copies_go_past_the_limit(
    checkouts: Checkouts, source: Source, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(checkout, "MAX_REPOSITORIES", 3)
    made = []
    for service in ("a", "b", "c"):
        made.append(checkouts.prepare(service, source.head, source.download))
        checkouts.release(made[-1])
        checkouts.wait()
        os.utime(made[-1], (1000.0 * len(made), 1000.0 * len(made)))  # a, then b, then c
    checkouts.prepare("d", source.head, source.download)
    assert [path.exists() for path in made] == [False, True, True]


def test_a_sha_missing_from_the_bundle_is_a_clear_error(checkouts: Checkouts, source: Source):
    with pytest.raises(WorkspaceError, match=f"Checking out {'0' * 40} failed"):
        checkouts.prepare("svc", "0" * 40, source.download)


@pytest.mark.parametrize("sha", ["HEAD", "main", "--upload-pack=touch x", "abc123"])
def test_only_a_full_sha_is_accepted(checkouts: Checkouts, source: Source, sha: str):
    with pytest.raises(WorkspaceError, match="not a full hexadecimal sha"):
        checkouts.prepare("svc", sha, source.download)
    assert source.downloads == 0


def test_an_odd_service_name_stays_inside_the_slot(checkouts: Checkouts, source: Source):
    workspace = checkouts.prepare("../../escape", source.head, source.download)
    assert workspace.parent == checkouts.root


def _identity(path: Path) -> tuple[int, int]:
    info = os.lstat(path)
    return info.st_ino, info.st_ctime_ns


def test_a_job_that_changes_nothing_leaves_the_tree_untouched(checkouts: Checkouts, source: Source):
    workspace = checkouts.prepare("svc", source.head, source.download)
    checkouts.release(workspace)  # the first release may still find the checkout racy
    workspace = checkouts.prepare("svc", source.head, source.download)
    before = {p: _identity(workspace / p) for p in (".git/index", ".git/config", "app.txt")}

    (workspace / "app.txt").read_text()  # reading is not changing
    checkouts.release(workspace)
    again = checkouts.prepare("svc", source.head, source.download)

    # No git command ran: git rewrites the index on every checkout, we the config.
    assert {p: _identity(again / p) for p in before} == before
    assert pristine(again)


def _same_size_same_mtime(workspace: Path) -> None:
    target = workspace / "app.txt"
    info = os.stat(target)
    target.write_text("TWO\n")
    os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns))


def _chmod_and_back(workspace: Path) -> None:
    (workspace / "app.txt").chmod(0o600)
    (workspace / "app.txt").chmod(0o644)
    (workspace / "app.txt").write_text("two\n")  # same content, rewritten


def _recreated_with_a_new_text(workspace: Path) -> None:
    info = os.stat(workspace / "app.txt")
    (workspace / "app.txt").unlink()
    (workspace / "app.txt").write_text("owt\n")
    os.utime(workspace / "app.txt", ns=(info.st_atime_ns, info.st_mtime_ns))


def _symlink_in_place(workspace: Path) -> None:
    (workspace / "app.txt").unlink()
    (workspace / "app.txt").symlink_to(".gitignore")


def _empty_directory(workspace: Path) -> None:
    (workspace / "left-behind").mkdir()


def _git_settings(workspace: Path) -> None:
    with (workspace / ".git" / "config").open("a") as config:
        config.write("[core]\n\tautocrlf = true\n")


def _hook(workspace: Path) -> None:
    (workspace / ".git" / "hooks").mkdir(exist_ok=True)
    (workspace / ".git" / "hooks" / "post-checkout").write_text("#!/bin/sh\ntouch pwned\n")


@pytest.mark.parametrize(
    "change",
    [
        _same_size_same_mtime,
        _chmod_and_back,
        _recreated_with_a_new_text,
        _symlink_in_place,
        _empty_directory,
        _git_settings,
        _hook,
    ],
)
def test_a_change_that_hides_its_times_is_still_put_back(
    checkouts: Checkouts, source: Source, change
):
    workspace = checkouts.prepare("svc", source.head, source.download)
    checkouts.release(workspace)
    workspace = checkouts.prepare("svc", source.head, source.download)  # pictured, settled

    change(workspace)
    checkouts.release(workspace)
    again = checkouts.prepare("svc", source.head, source.download)

    assert (again / "app.txt").read_text() == "two\n"
    assert not (again / "app.txt").is_symlink()
    assert sorted(p.name for p in again.iterdir()) == [".git", ".gitignore", "app.txt"]
    assert not (again / ".git" / "hooks").exists()
    assert "autocrlf" not in (again / ".git" / "config").read_text()
    assert pristine(again)


def test_a_change_right_after_the_picture_is_compared_by_content(tmp_path: Path):
    """Written within the timestamps' granularity, a change can leave every stat field
    as it was: such racy entries are compared by their bytes."""
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "file").write_text("abc")
    picture = checkout._Picture.take(tree)
    assert picture is not None and "file" in picture.racy
    assert picture.still(tree)

    (tree / "file").write_text("xyz")
    assert not picture.still(tree)


def test_a_racy_entry_found_unchanged_later_is_told_by_its_stat(tmp_path: Path):
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "file").write_text("abc")
    picture = checkout._Picture.take(tree)
    assert picture is not None and picture.still(tree)
    assert "file" in picture.settled().racy  # still within the granularity
    os.utime(tree / "file", ns=(0, 0))  # moves ctime: the picture no longer holds
    assert not picture.still(tree)
    picture = checkout._Picture.take(tree)
    assert picture is not None
    time.sleep(checkout.RACY_NS / 1e9 + 0.01)
    assert picture.still(tree)
    settled = picture.settled()
    assert settled.racy == {} and settled.entries == picture.entries
    (tree / "file").write_text("xyz")  # a later change moves the ctime
    assert not settled.still(tree)
