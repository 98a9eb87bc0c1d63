"""`obeya lint` as a user runs it: the real command on real files, with no server or database."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.processes import OBEYA, clean_env, run_obeya

pytestmark = pytest.mark.e2e

VALID = """\
stages: [build, test, deploy]
jobs:
  deploy: {stage: deploy, script: ./deploy.sh, when: manual, rules: {branches: [main]}}
  unit: {stage: test, script: pytest}
  build: {stage: build, script: make}
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    # A data dir that does not exist and cannot be made: lint must never touch a database.
    return clean_env(Path("/proc/obeya-lint-needs-no-data-dir"))


def test_a_valid_file_prints_its_summary_and_job_order(tmp_path: Path, env) -> None:
    (tmp_path / "obeya.yml").write_text(VALID)
    result = run_obeya("lint", str(tmp_path / "obeya.yml"), env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"{tmp_path / 'obeya.yml'}: valid (3 jobs in 3 stages)"
    assert lines[1].split() == ["#", "STAGE", "JOB", "NEEDS", "WHEN"]
    assert [line.split()[:4] for line in lines[2:]] == [
        ["1", "build", "build", "-"],
        ["2", "test", "unit", "build"],
        ["3", "deploy", "deploy", "unit"],
    ]
    assert result.stderr == ""


def test_without_a_path_it_reads_obeya_yml_here_and_a_directory_means_its_obeya_yml(
    tmp_path: Path, env
) -> None:
    (tmp_path / "obeya.yml").write_text(VALID)
    here = run_obeya_in(tmp_path, env)
    assert here.returncode == 0, here.stderr
    assert here.stdout.startswith("obeya.yml: valid (3 jobs in 3 stages)\n")
    directory = run_obeya("lint", str(tmp_path), env=env)
    assert directory.returncode == 0, directory.stderr
    assert directory.stdout.startswith(f"{tmp_path / 'obeya.yml'}: valid")


def test_branch_shows_only_the_jobs_its_rules_let_run(tmp_path: Path, env) -> None:
    (tmp_path / "obeya.yml").write_text(VALID)
    result = run_obeya("lint", str(tmp_path), "--branch", "feature/x", env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1] == "on branch feature/x: 2 of 3 jobs run"
    assert [line.split()[2] for line in lines[3:]] == ["build", "unit"]


def test_an_invalid_file_prints_every_error_on_stderr_and_exits_2(tmp_path: Path, env) -> None:
    (tmp_path / "obeya.yml").write_text(
        "jobs:\n  unit:\n    script: 5\n    needs: [biuld]\n  build: {stage: buidl, script: x}\n"
    )
    result = run_obeya_in(tmp_path, env)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        'obeya.yml:3:13: script of job "unit" must be a list of commands or a single command, '
        "not an integer",
        'obeya.yml:4:13: job "unit" needs "biuld", which is not a job; did you mean "build"?',
        'obeya.yml:5:18: job "build" is in stage "buidl", which is not in stages; '
        'did you mean "build"?',
    ]


def test_a_missing_file_is_one_line_and_exit_2(tmp_path: Path, env) -> None:
    result = run_obeya("lint", str(tmp_path / "nowhere.yml"), env=env)
    assert result.returncode == 2
    assert result.stderr == (
        f"obeya: {tmp_path / 'nowhere.yml'} not found: write one (see docs/pipelines.md) "
        "or give its path\n"
    )
    assert result.stdout == ""


def test_a_file_that_is_not_utf8_is_placed_at_its_first_bad_byte(tmp_path: Path, env) -> None:
    (tmp_path / "obeya.yml").write_bytes(b"jobs:\n  a: {script: \xff}\n")
    result = run_obeya_in(tmp_path, env)
    assert result.returncode == 2
    assert result.stderr == "obeya.yml:2:15: the file is not UTF-8 text\n"


def test_a_huge_file_is_refused_without_reading_it_whole(tmp_path: Path, env) -> None:
    with (tmp_path / "obeya.yml").open("wb") as huge:
        huge.truncate(64 * 1024 * 1024)  # sparse: 64 MiB of NUL bytes
    result = run_obeya_in(tmp_path, env)
    assert result.returncode == 2
    assert result.stderr == (
        "obeya.yml:1:1: the file is larger than 256 KiB, the most an obeya.yml may be\n"
    )


def run_obeya_in(directory: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`obeya lint` with no argument, run from ``directory``."""
    return subprocess.run(
        [OBEYA, "lint"], cwd=directory, env=env, capture_output=True, text=True, timeout=60
    )
