"""Reading one job of obeya.yml into a draft that still knows where each value was written."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ruamel.yaml.comments import CommentedMap

from obeya.pipelines.spec_values import (
    Problems,
    choice,
    duration,
    names,
    relative_paths,
    string_keys,
    strings,
    unique,
    variables,
    whole_number,
)
from obeya.pipelines.spec_yaml import Position, key_position, kind, value_position

JOB_KEYS = (
    "stage",
    "needs",
    "script",
    "runs_on",
    "variables",
    "artifacts",
    "reports",
    "timeout",
    "retry",
    "when",
    "rules",
    "environment",
    "deploy",
)
WHEN = ("on_success", "on_failure", "always", "manual")
RETRY_WHEN = ("always", "infrastructure")
DEFAULT_STAGE = "test"
DEFAULT_TIMEOUT = 3600
MAX_TIMEOUT = 24 * 3600
DEFAULT_EXPIRE = 30 * 86400
MAX_EXPIRE = 365 * 86400
MAX_RETRY = 5


@dataclass
class JobDraft:
    """A job as written, before the stages and needs of the whole file are checked.

    ``stage`` is None when what was written is not a name; ``stage_position`` is None when
    no stage was written (the default applies); ``needs`` is None when no needs were written.
    """

    name: str
    position: Position
    stage: str | None = DEFAULT_STAGE
    stage_position: Position | None = None
    needs: list[tuple[str, Position]] | None = None
    script: list[str] = field(default_factory=list)
    runs_on: list[str] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)
    artifact_paths: list[str] = field(default_factory=list)
    artifact_expire_seconds: int = DEFAULT_EXPIRE
    junit_globs: list[str] = field(default_factory=list)
    timeout_seconds: int = DEFAULT_TIMEOUT
    retry_max: int = 0
    retry_when: str = "infrastructure"
    when: str = "on_success"
    branch_globs: list[str] = field(default_factory=list)
    environment: str | None = None
    deploy_artifact: str | None = None
    deploy_position: Position | None = None

    @property
    def where(self) -> str:
        return f'job "{self.name}"'


def read_job(problems: Problems, jobs: CommentedMap, name: str) -> JobDraft:
    """The job ``name`` of the ``jobs`` mapping, with every problem in it reported."""
    draft = JobDraft(name=name, position=key_position(jobs, name))
    body = jobs[name]
    if body is None:
        problems.add(draft.position, f"{draft.where} is empty: give it at least a script")
        return draft
    if not isinstance(body, CommentedMap):
        problems.add(
            value_position(jobs, name),
            f"{draft.where} must be a mapping of settings, not {kind(body)}",
        )
        return draft
    if "script" not in body and "deploy" not in body:
        problems.add(
            draft.position, f"{draft.where} has no script: add script: with at least one command"
        )
    if "deploy" in body:
        _deploy_shape(problems, body, draft)
    for key in string_keys(problems, body, JOB_KEYS, f"in {draft.where}"):
        if body[key] is None and key != "variables":
            problems.add(
                key_position(body, key),
                f"{key} of {draft.where} is empty: give it a value or remove it",
            )
        else:
            _READERS[key](problems, body, draft)
    return draft


def _stage(problems: Problems, body: CommentedMap, draft: JobDraft) -> None:
    value = body["stage"]
    draft.stage_position = value_position(body, "stage")
    if isinstance(value, str):
        draft.stage = value
    else:
        draft.stage = None
        problems.add(
            draft.stage_position, f"stage of {draft.where} must be a stage name, not {kind(value)}"
        )


def _needs(problems: Problems, body: CommentedMap, draft: JobDraft) -> None:
    label = f"needs of {draft.where}"
    draft.needs = unique(problems, strings(problems, body, "needs", label, "job names"), label)


def _script(problems: Problems, body: CommentedMap, draft: JobDraft) -> None:
    value = body["script"]
    label = f"script of {draft.where}"
    if not isinstance(value, str | list):
        problems.add(
            value_position(body, "script"),
            f"{label} must be a list of commands or a single command, not {kind(value)}",
        )
        return
    lines = strings(problems, body, "script", label, "commands")
    draft.script = [line for line, _ in lines]
    wrong_lines = isinstance(value, list) and len(lines) < len(value)
    if not wrong_lines and not any(line.strip() for line in draft.script):
        problems.add(value_position(body, "script"), f"{label} is empty: add at least one command")


def _runs_on(problems: Problems, body: CommentedMap, draft: JobDraft) -> None:
    label = f"runs_on of {draft.where}"
    found = strings(problems, body, "runs_on", label, "runner labels")
    labels = names(problems, found, "runner label", f" in {label}")
    draft.runs_on = [item for item, _ in unique(problems, labels, label)]


def _variables(problems: Problems, body: CommentedMap, draft: JobDraft) -> None:
    draft.variables = variables(problems, body, "variables", f" of {draft.where}")


def _artifacts(problems: Problems, body: CommentedMap, draft: JobDraft) -> None:
    value = _settings(
        problems,
        body,
        draft,
        "artifacts",
        ("paths", "expire_in"),
        "{paths: [dist/], expire_in: 7d}",
    )
    if value is None:
        return
    if "paths" not in value:
        problems.add(
            value_position(body, "artifacts"),
            f"artifacts of {draft.where} has no paths: add paths: with the files or "
            "directories to keep",
        )
    elif value["paths"] is not None:
        draft.artifact_paths = _paths(problems, value, "paths", f"artifacts.paths of {draft.where}")
        if not draft.artifact_paths and value["paths"] == []:
            problems.add(
                value_position(value, "paths"),
                f"artifacts.paths of {draft.where} is empty: list the files or directories "
                "to keep, or remove artifacts",
            )
    if "expire_in" in value and value["expire_in"] is not None:
        seconds = duration(
            problems,
            value,
            "expire_in",
            f"artifacts.expire_in of {draft.where}",
            units="smhd",
            maximum=MAX_EXPIRE,
            examples="30m, 12h or 7d",
            whole_seconds=False,
        )
        draft.artifact_expire_seconds = seconds or DEFAULT_EXPIRE


def _reports(problems: Problems, body: CommentedMap, draft: JobDraft) -> None:
    value = _settings(problems, body, draft, "reports", ("junit",), "{junit: [reports/*.xml]}")
    if value is not None and "junit" in value and value["junit"] is not None:
        draft.junit_globs = _paths(problems, value, "junit", f"reports.junit of {draft.where}")


def _timeout(problems: Problems, body: CommentedMap, draft: JobDraft) -> None:
    seconds = duration(
        problems,
        body,
        "timeout",
        f"timeout of {draft.where}",
        units="smh",
        maximum=MAX_TIMEOUT,
        examples="30s, 10m or 2h",
        whole_seconds=True,
    )
    draft.timeout_seconds = seconds or DEFAULT_TIMEOUT


def _retry(problems: Problems, body: CommentedMap, draft: JobDraft) -> None:
    value = body["retry"]
    label = f"retry of {draft.where}"
    if isinstance(value, int) and not isinstance(value, bool):
        draft.retry_max = whole_number(problems, body, "retry", label, 0, MAX_RETRY) or 0
        return
    if not isinstance(value, CommentedMap):
        problems.add(
            value_position(body, "retry"),
            f"{label} must be a number of retries (0 to {MAX_RETRY}) or a mapping like "
            f"{{max: 2, when: always}}, not {kind(value)}",
        )
        return
    _settings(problems, body, draft, "retry", ("max", "when"), "{max: 2, when: always}")
    if "max" not in value:
        problems.add(
            value_position(body, "retry"),
            f"{label} has no max: add max: with 0 to {MAX_RETRY} retries",
        )
    elif value["max"] is not None:
        found = whole_number(problems, value, "max", f"retry.max of {draft.where}", 0, MAX_RETRY)
        draft.retry_max = found or 0
    if "when" in value and value["when"] is not None:
        when = choice(problems, value, "when", f"retry.when of {draft.where}", RETRY_WHEN)
        draft.retry_when = when or draft.retry_when


def _when(problems: Problems, body: CommentedMap, draft: JobDraft) -> None:
    draft.when = choice(problems, body, "when", f"when of {draft.where}", WHEN) or draft.when


def _rules(problems: Problems, body: CommentedMap, draft: JobDraft) -> None:
    value = _settings(
        problems, body, draft, "rules", ("branches",), '{branches: [main, "release/*"]}'
    )
    if value is None:
        return
    label = f"rules.branches of {draft.where}"
    if "branches" not in value:
        problems.add(
            value_position(body, "rules"),
            f"rules of {draft.where} has no branches: add branches: with the branches it runs on",
        )
    elif value["branches"] is not None:
        found = strings(problems, value, "branches", label, "branch names or globs")
        draft.branch_globs = [glob for glob, _ in unique(problems, found, label)]
        if value["branches"] == []:
            problems.add(
                value_position(value, "branches"),
                f"{label} is empty: remove rules to run on every branch",
            )


def _environment(problems: Problems, body: CommentedMap, draft: JobDraft) -> None:
    value = body["environment"]
    position = value_position(body, "environment")
    if not isinstance(value, str):
        problems.add(
            position, f"environment of {draft.where} must be an environment name, not {kind(value)}"
        )
    elif names(problems, [(value, position)], "environment name", f" of {draft.where}"):
        draft.environment = value


def _deploy(problems: Problems, body: CommentedMap, draft: JobDraft) -> None:
    value = _settings(problems, body, draft, "deploy", ("artifact",), "{artifact: package}")
    draft.deploy_position = value_position(body, "deploy")
    if value is None:
        return
    if "artifact" not in value:
        problems.add(
            draft.deploy_position,
            f"deploy of {draft.where} has no artifact: add artifact: with the name of the "
            "earlier job whose artifact it deploys",
        )
        return
    artifact = value["artifact"]
    position = value_position(value, "artifact")
    if artifact is None:
        return  # reported by _settings as empty
    if not isinstance(artifact, str):
        problems.add(
            position, f"deploy.artifact of {draft.where} must be a job name, not {kind(artifact)}"
        )
        return
    draft.deploy_artifact = artifact
    draft.deploy_position = position


def _deploy_shape(problems: Problems, body: CommentedMap, draft: JobDraft) -> None:
    """A deploy job is carried out by Obeya's deployer: no script, and an environment."""
    where = key_position(body, "deploy")
    if "environment" not in body:
        problems.add(
            where,
            f"{draft.where} deploys but names no environment: add environment: with the "
            "environment it deploys to",
        )
    if "script" in body:
        problems.add(
            key_position(body, "script"),
            f"{draft.where} deploys, so it runs no script: remove script (the environment's "
            "hooks run on the target, see docs/deployments.md)",
        )
    for key in ("artifacts", "reports", "runs_on"):
        if key in body:
            problems.add(
                key_position(body, key),
                f"{key} does not apply to {draft.where}, which deploys: remove it",
            )


def _settings(
    problems: Problems,
    body: CommentedMap,
    draft: JobDraft,
    key: str,
    allowed: tuple[str, ...],
    example: str,
) -> CommentedMap | None:
    """The mapping under ``key`` with unknown and empty keys reported; None if not a mapping."""
    value = body[key]
    label = f"{key} of {draft.where}"
    if not isinstance(value, CommentedMap):
        problems.add(
            value_position(body, key),
            f"{label} must be a mapping like {example}, not {kind(value)}",
        )
        return None
    for inner in string_keys(problems, value, allowed, f"in {label}"):
        if value[inner] is None:
            problems.add(
                key_position(value, inner),
                f"{key}.{inner} of {draft.where} is empty: give it a value or remove it",
            )
    return value


def _paths(problems: Problems, mapping: CommentedMap, key: str, label: str) -> list[str]:
    found = strings(problems, mapping, key, label, "paths or globs")
    return [path for path, _ in unique(problems, relative_paths(problems, found, label), label)]


_READERS: dict[str, Callable[[Problems, CommentedMap, JobDraft], None]] = {
    "stage": _stage,
    "needs": _needs,
    "script": _script,
    "runs_on": _runs_on,
    "variables": _variables,
    "artifacts": _artifacts,
    "reports": _reports,
    "timeout": _timeout,
    "retry": _retry,
    "when": _when,
    "rules": _rules,
    "environment": _environment,
    "deploy": _deploy,
}
