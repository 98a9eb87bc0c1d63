"""`obeya env`, `deploy`, `approve`, `rollback` and `deployment` against a real `obeya serve`
with a real `obeya runner` building the release: output, --json, --wait and exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from typing import Any

import httpx
import pytest

from tests.pipelines.conftest import Repo
from tests.processes import OBEYA, clean_env, obeya_server, run_obeya

pytestmark = pytest.mark.e2e

PASSWORD = "a long enough password"
SPEC = """\
stages: [package, staging, production]
jobs:
  package:
    stage: package
    script: [echo "packaging $(cat VERSION)"]
    artifacts: {paths: [VERSION, STATUS]}
  to-staging:
    stage: staging
    environment: staging
    deploy: {artifact: package}
    when: manual
  to-production:
    stage: production
    environment: production
    deploy: {artifact: package}
    when: manual
"""
HEALTH = "grep -q healthy STATUS"
GUARD = 1500  # polls before a wait gives up instead of hanging
POLL_S = 0.2
PEOPLE = {"olga": "devops_engineer", "dev": "developer", "gina": "gatekeeper"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("deploy-cli")
    repo = Repo(tmp / "repo")
    repo.commit({"obeya.yml": SPEC, "VERSION": "1.0.0\n", "STATUS": "healthy\n"}, "first")
    base = clean_env(tmp / "data")
    tokens = {}
    for name in PEOPLE:
        run_obeya("createuser", name, "--password-stdin", env=base, stdin=PASSWORD + "\n")
        made = run_obeya("token", "create", "--user", name, "--scope", "write", env=base)
        tokens[name] = made.stdout.strip().splitlines()[-1]
    made = run_obeya("token", "create", "--user", "olga", "--scope", "read", env=base)
    tokens["reader"] = made.stdout.strip().splitlines()[-1]
    runner_token = run_obeya("runners", "register", "box", env=base).stdout.strip().splitlines()[-1]
    with obeya_server(base) as url:
        runner = subprocess.Popen(
            [
                OBEYA,
                "runner",
                "--server",
                url,
                "--token",
                runner_token,
                "--work-dir",
                str(tmp / "w"),
            ],
            env=base,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            envs = {
                name: {**base, "OBEYA_URL": url, "OBEYA_TOKEN": t} for name, t in tokens.items()
            }
            olga = envs["olga"]
            ok(olga, "service", "create", "shop", "--name", "Shop", "--repo", str(repo.path))
            for name, role in PEOPLE.items():
                ok(olga, "service", "member", "add", "shop", name, role)
            yield {"envs": envs, "repo": repo, "targets": tmp / "targets"}
        finally:
            os.killpg(runner.pid, signal.SIGTERM)
            runner.wait(timeout=30)


def ok(env: dict[str, str], *args: str) -> str:
    result = run_obeya(*args, env=env)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def refused(env: dict[str, str], *args: str) -> str:
    result = run_obeya(*args, env=env)
    assert result.returncode == 2, (args, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("obeya: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def environments(stack: Any) -> None:
    """staging, then a protected production, once per module."""
    olga = stack["envs"]["olga"]
    if "staging" in ok(olga, "env", "list", "shop"):
        return
    for name, extra in (("staging", ()), ("production", ("--protected", "--approvals", "1"))):
        ok(
            olga,
            "env",
            "create",
            "shop",
            name,
            "--tier",
            name,
            "--target-root",
            str(stack["targets"] / name),
            "--health-command",
            HEALTH,
            "--warmup",
            "3",
            "--passes",
            "2",
            "--interval-ms",
            "100",
            *extra,
        )


def api_get(env: dict[str, str], path: str, **params: Any) -> Any:
    """Read the API directly: waiting need not start a CLI process per look."""
    response = httpx.get(
        f"{env['OBEYA_URL']}/api{path}",
        params=params,
        headers={"Authorization": f"Bearer {env['OBEYA_TOKEN']}"},
        timeout=30,
    )
    response.raise_for_status()
    return response.json()


def build(stack: Any, version: str, status: str = "healthy") -> int:
    """Commit ``version``, start a run, and wait until its package job kept the release.

    (The run itself stays open behind the manual deploy jobs.)
    """
    olga = stack["envs"]["olga"]
    stack["repo"].commit({"VERSION": f"{version}\n", "STATUS": f"{status}\n"}, version)
    number = int(json.loads(ok(olga, "pipeline", "run", "shop", "--json"))["number"])
    for _ in range(GUARD):
        run = api_get(olga, f"/services/shop/runs/{number}")
        package = next(job for job in run["jobs"] if job["name"] == "package")
        if package["status"] == "succeeded":
            return number
        assert package["status"] in {"created", "queued", "running"}, package
        time.sleep(POLL_S)
    raise AssertionError(f"the package job of run #{number} never finished")


def test_environments_from_the_cli(stack: Any) -> None:
    environments(stack)
    olga, reader = stack["envs"]["olga"], stack["envs"]["reader"]
    listed = json.loads(ok(reader, "env", "list", "shop", "--json"))
    assert [(e["name"], e["protected"]) for e in listed] == [
        ("staging", False),
        ("production", True),
    ]
    text = ok(olga, "env", "list", "shop")
    assert "ENV" in text and "yes (1)" in text
    shown = ok(olga, "env", "show", "shop", "production")
    assert "protected: 1 approval(s) by gatekeeper" in shown and HEALTH in shown
    assert "nothing deployed yet" in shown

    edited = json.loads(
        ok(
            olga,
            "env",
            "edit",
            "shop",
            "staging",
            "--retention",
            "4",
            "--restart",
            "true",
            "--json",
        )
    )
    assert edited["retention"] == 4 and edited["hooks"] == {"restart": "true"}
    both = json.loads(
        ok(olga, "env", "edit", "shop", "staging", "--after-switch", "echo on", "--json")
    )
    assert both["hooks"] == {"restart": "true", "after_switch": "echo on"}
    gone = json.loads(ok(olga, "env", "edit", "shop", "staging", "--restart", "", "--json"))
    assert gone["hooks"] == {"after_switch": "echo on"} and gone["retention"] == 4

    assert "nothing to change" in refused(olga, "env", "edit", "shop", "staging")
    # olga configures environments but is not production's gatekeeper (issue #13, gates)
    assert "only an administrator or a holder of the gatekeeper role" in refused(
        olga, "env", "edit", "shop", "production", "--approvals", "0"
    )
    assert "absolute" in refused(olga, "env", "create", "shop", "qa", "--target-root", "rel")
    assert "not both" in refused(
        olga, "env", "edit", "shop", "qa", "--health-url", "http://x", "--health-command", "true"
    )
    assert 'no environment "moon"' in refused(olga, "env", "show", "shop", "moon")
    assert "devops_engineer" in refused(
        stack["envs"]["dev"], "env", "edit", "shop", "staging", "--retention", "2"
    )
    assert "read scope" in refused(reader, "env", "edit", "shop", "staging", "--retention", "2")


def test_deploy_promote_and_approve(stack: Any) -> None:
    environments(stack)
    envs = stack["envs"]
    number = build(stack, "1.1.0")
    staged = run_obeya("deploy", "shop", "staging", "--run", str(number), "--wait", env=envs["dev"])
    assert staged.returncode == 0, (staged.stdout, staged.stderr)
    assert "unpack" in staged.stdout and "health" in staged.stdout
    assert f"of shop to staging: succeeded  (run #{number}" in staged.stdout

    message = refused(envs["dev"], "deploy", "shop", "production", "--run", str(number))
    assert "deploy.run_protected" in message

    # olga asks and follows; the deployment waits until gina approves it
    follow = subprocess.Popen(
        [OBEYA, "deploy", "shop", "production", "--run", str(number), "--wait", "--json"],
        env=envs["olga"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        waiting = wait_for_waiting(envs["olga"])
        number_text = str(waiting["id"])
        assert "gatekeeper" in refused(envs["olga"], "approve", number_text, "--comment", "mine")
        assert "comment is required" in refused(
            envs["gina"], "approve", number_text, "--comment", " "
        )
        approved = json.loads(
            ok(envs["gina"], "approve", number_text, "--comment", "ticket 7 ok", "--json")
        )
        assert approved["status"] in {"queued", "running", "succeeded"}
        out, err = follow.communicate(timeout=120)
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait()
    assert follow.returncode == 0, (out, err)
    final = json.loads(out)
    assert final["status"] == "succeeded" and final["version"] == "1.1.0"
    assert "waits for approval (0/1)" in err and "health" in err

    production = json.loads(ok(envs["dev"], "env", "show", "shop", "production", "--json"))
    assert production["running"]["approved_by"] == ["gina"]
    assert production["running"]["version"] == "1.1.0"
    text = ok(envs["dev"], "env", "show", "shop", "production")
    assert "approved by gina" in text and "version 1.1.0" in text
    shown = ok(envs["dev"], "deployment", "show", number_text, "--log")
    assert "approved by gina at" in shown and "ticket 7 ok" in shown and "done" in shown
    with_log = json.loads(ok(envs["dev"], "deployment", "show", number_text, "--log", "--json"))
    assert with_log["log"] and with_log["approvals"][0]["user"] == "gina"
    listed = json.loads(
        ok(envs["dev"], "deployment", "list", "shop", "--env", "production", "--json")
    )
    assert listed[0]["id"] == waiting["id"]
    table = ok(envs["dev"], "deployment", "list", "shop")
    assert "STATUS" in table and "succeeded" in table


def wait_for_waiting(env: dict[str, str]) -> dict[str, Any]:
    """The production deployment that `obeya deploy --wait` asked for, once it is recorded."""
    for _ in range(GUARD):
        found = api_get(
            env, "/services/shop/deployments", environment="production", status="waiting_approval"
        )["items"]
        if found:
            return dict(found[0])
        time.sleep(POLL_S)
    raise AssertionError("no deployment to production ever waited for approval")


def test_a_failed_release_rolls_back_and_a_rollback_by_hand(stack: Any) -> None:
    environments(stack)
    olga = stack["envs"]["olga"]
    good = build(stack, "2.0.0")
    assert run_obeya("deploy", "shop", "staging", "--run", str(good), env=olga).returncode == 0
    first = wait_until_done(olga, "staging")
    assert first["status"] == "succeeded"

    broken = build(stack, "2.1.0", status="broken")
    failed = run_obeya("deploy", "shop", "staging", "--run", str(broken), "--wait", env=olga)
    assert failed.returncode == 1, (failed.stdout, failed.stderr)
    assert "rolled_back" in failed.stdout and "health check failed" in failed.stdout

    fixed = build(stack, "2.2.0")
    assert (
        run_obeya("deploy", "shop", "staging", "--run", str(fixed), "--wait", env=olga).returncode
        == 0
    )
    back = run_obeya("rollback", "shop", "staging", "--wait", env=olga)
    assert back.returncode == 0, (back.stdout, back.stderr)
    assert f"rollback to {first['release_id']}" in back.stdout
    staging = json.loads(ok(olga, "env", "show", "shop", "staging", "--json"))
    assert staging["current_release"] == first["release_id"]
    assert staging["running"]["version"] == "2.0.0"
    assert "is not kept" in refused(olga, "rollback", "shop", "staging", "--to", "nope")

    # a waiting deployment can be withdrawn; twice is refused
    asked = json.loads(ok(olga, "deploy", "shop", "production", "--run", str(good), "--json"))
    assert asked["status"] == "waiting_approval"
    assert "canceled" in ok(olga, "deployment", "cancel", str(asked["id"]))
    assert "only a waiting one" in refused(olga, "deployment", "cancel", str(asked["id"]))
    rejected = json.loads(
        ok(
            olga,
            "deploy",
            "shop",
            "production",
            "--run",
            str(good),
            "--json",
        )
    )
    gina = stack["envs"]["gina"]
    out = ok(gina, "approve", str(rejected["id"]), "--reject", "--comment", "freeze")
    assert "rejected" in out and "freeze" in out


def wait_until_done(env: dict[str, str], environment: str) -> dict[str, Any]:
    for _ in range(GUARD):
        newest = api_get(env, "/services/shop/deployments", environment=environment, limit=1)
        if newest["items"][0]["status"] not in {"queued", "running", "waiting_approval"}:
            return dict(newest["items"][0])
        time.sleep(POLL_S)
    raise AssertionError(f"the deployment to {environment} never ended")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("deploy", "ghost", "staging"), 'no service "ghost"'),
        (("deploy", "shop", "moon"), 'no environment "moon"'),
        (("deploy", "shop", "staging", "--run", "999"), "no run #999"),
        (("approve", "999999", "--comment", "x"), "no deployment with id 999999"),
        (("deployment", "show", "999999"), "no deployment with id 999999"),
        (("deployment", "list", "shop", "--status", "sideways"), "unknown deployment status"),
        (("rollback", "shop", "production"), "nothing to roll back"),
    ],
)
def test_refusals_are_one_line_and_exit_2(stack: Any, args: tuple[str, ...], message: str) -> None:
    environments(stack)
    assert message in refused(stack["envs"]["olga"], *args)


def test_a_read_only_token_cannot_deploy_approve_or_roll_back(stack: Any) -> None:
    environments(stack)
    reader = stack["envs"]["reader"]
    for args in (
        ("deploy", "shop", "staging"),
        ("rollback", "shop", "staging"),
        ("approve", "1", "--comment", "ok"),
        ("deployment", "cancel", "1"),
        ("env", "create", "shop", "qa", "--target-root", "/tmp/qa"),
    ):
        assert "read scope" in refused(reader, *args), args
    assert isinstance(json.loads(ok(reader, "deployment", "list", "shop", "--json")), list)
