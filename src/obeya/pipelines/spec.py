"""The pipeline-as-code specification: obeya.yml text in, a checked ``PipelineSpec`` out.

Pure: no Django, no files. ``parse_spec`` reads the text it is given, checks all of it, and
either returns the pipeline or raises ``SpecInvalid`` carrying every mistake at once, each
as ``obeya.yml:LINE:COL: message``. The format is described in docs/pipelines.md.

The work is shared with neighbours: ``spec_yaml`` reads YAML safely and keeps positions,
``spec_values`` reads single values, ``spec_jobs`` reads one job, ``spec_graph`` checks
stages and needs and puts the jobs in order.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from obeya.core.errors import InvalidInput
from obeya.pipelines import spec_graph
from obeya.pipelines.spec_jobs import (
    DEFAULT_EXPIRE,
    DEFAULT_TIMEOUT,
    JobDraft,
    read_job,
)
from obeya.pipelines.spec_values import (
    NAME,
    Problems,
    names,
    string_keys,
    unique,
    variables,
)
from obeya.pipelines.spec_yaml import (
    MAX_SPEC_BYTES,
    START,
    Unreadable,
    item_position,
    key_position,
    kind,
    load_document,
    node_position,
    value_position,
)

__all__ = [
    "DEFAULT_STAGES",
    "MAX_SPEC_BYTES",
    "JobSpec",
    "PipelineSpec",
    "SpecError",
    "SpecInvalid",
    "jobs_for_branch",
    "parse_spec",
]

DEFAULT_STAGES = ("build", "test", "deploy")
TOP_KEYS = ("stages", "variables", "jobs")


@dataclass(frozen=True, order=True)
class SpecError:
    """One mistake in a spec file, where it was written (1-based line and column)."""

    file: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.message}"


class SpecInvalid(InvalidInput):
    """A spec file with mistakes; ``errors`` holds all of them, in the order written."""

    code = "invalid_spec"

    def __init__(self, errors: Sequence[SpecError]):
        self.errors = tuple(errors)
        super().__init__("\n".join(str(error) for error in self.errors))


@dataclass(frozen=True)
class JobSpec:
    """One job, every setting normalised and defaulted.

    ``needs`` is what the file says (``needs_declared`` tells an empty list from no key);
    ``effective_needs`` is what the job waits for when the jobs beside it run: in
    ``PipelineSpec.jobs`` that assumes every job runs, ``jobs_for_branch`` recomputes it.
    ``variables`` are the pipeline's variables overlaid with the job's own.
    """

    name: str
    stage: str
    script: tuple[str, ...]
    needs: tuple[str, ...] = ()
    needs_declared: bool = False
    effective_needs: tuple[str, ...] = ()
    runs_on: tuple[str, ...] = ()
    variables: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    artifact_paths: tuple[str, ...] = ()
    artifact_expire_seconds: int = DEFAULT_EXPIRE
    junit_globs: tuple[str, ...] = ()
    timeout_seconds: int = DEFAULT_TIMEOUT
    retry_max: int = 0
    retry_when: str = "infrastructure"
    when: str = "on_success"
    branch_globs: tuple[str, ...] = ()
    environment: str | None = None
    deploy_artifact: str | None = None
    line: int = 0

    @property
    def deploys(self) -> bool:
        """Whether Obeya's deployer carries this job out (no runner, no script)."""
        return self.deploy_artifact is not None

    def runs_for_branch(self, branch: str) -> bool:
        """Whether the job's rules let it run for a push to ``branch``."""
        return not self.branch_globs or any(
            fnmatch.fnmatchcase(branch, glob) for glob in self.branch_globs
        )


@dataclass(frozen=True)
class PipelineSpec:
    """A checked obeya.yml: its stages, variables and jobs in the order they can run."""

    stages: tuple[str, ...]
    variables: Mapping[str, str]
    jobs: tuple[JobSpec, ...]

    def job(self, name: str) -> JobSpec:
        """The job called ``name``; KeyError when there is none."""
        for job in self.jobs:
            if job.name == name:
                return job
        raise KeyError(name)

    @property
    def stages_in_use(self) -> tuple[str, ...]:
        """The stages that hold at least one job, in order."""
        used = {job.stage for job in self.jobs}
        return tuple(stage for stage in self.stages if stage in used)


def parse_spec(text: str, file: str = "obeya.yml") -> PipelineSpec:
    """Check obeya.yml ``text``; the pipeline it describes, or ``SpecInvalid`` with it all.

    ``file`` only names the file in the messages; nothing is read from disk.
    """
    problems = Problems()
    try:
        document = load_document(text)
    except Unreadable as unreadable:
        problems.add(unreadable.position, unreadable.message)
        raise _invalid(problems, file) from None
    spec = _read_document(problems, document)
    if problems.found or spec is None:
        raise _invalid(problems, file)
    return spec


def jobs_for_branch(spec: PipelineSpec, branch: str) -> list[JobSpec]:
    """The jobs that run for a push to ``branch``, in order, with their ``effective_needs``.

    A job whose ``rules`` leave ``branch`` out does not run; a need on such a job is
    dropped, and a job without declared needs waits for the nearest earlier stage that
    still has jobs.
    """
    chosen = [job for job in spec.jobs if job.runs_for_branch(branch)]
    needs = spec_graph.effective_needs(chosen, spec.stages)
    return [replace(job, effective_needs=needs[job.name]) for job in chosen]


def _invalid(problems: Problems, file: str) -> SpecInvalid:
    errors = {SpecError(file, line, col, message) for (line, col), message in problems.found}
    return SpecInvalid(sorted(errors))


def _read_document(problems: Problems, document: object) -> PipelineSpec | None:
    if document is None:
        problems.add(START, "the file is empty: add a jobs: mapping with at least one job")
        return None
    if not isinstance(document, CommentedMap):
        problems.add(
            node_position(document),
            f"the top level must be a mapping of stages, variables and jobs, not {kind(document)}",
        )
        return None
    string_keys(problems, document, TOP_KEYS, "at the top level")
    stages = _stages(problems, document)
    pipeline_variables = (
        variables(problems, document, "variables", "") if "variables" in document else {}
    )
    drafts = _jobs(problems, document)
    spec_graph.check_stages(problems, drafts, stages)
    edges = spec_graph.check_needs(problems, drafts, stages)
    if not problems.found:
        spec_graph.check_deploys(problems, drafts, stages, edges)
    if problems.found:
        return None
    return _build(stages, pipeline_variables, drafts, edges)


def _stages(problems: Problems, document: CommentedMap) -> tuple[str, ...]:
    if "stages" not in document:
        return DEFAULT_STAGES
    value = document["stages"]
    position = value_position(document, "stages")
    if value is not None and not isinstance(value, CommentedSeq):
        problems.add(position, f"stages must be a list of stage names, not {kind(value)}")
        return DEFAULT_STAGES
    if not value:
        problems.add(
            key_position(document, "stages"),
            "stages is empty: list at least one stage, or remove stages to use "
            f"{', '.join(DEFAULT_STAGES)}",
        )
        return ()
    found = []
    for index, item in enumerate(value):
        if isinstance(item, str):
            found.append((item, item_position(value, index)))
        else:
            problems.add(
                item_position(value, index), f"stages must hold stage names, not {kind(item)}"
            )
    names(problems, found, "stage name")
    return tuple(stage for stage, _ in unique(problems, found, "stages"))


def _jobs(problems: Problems, document: CommentedMap) -> list[JobDraft]:
    if "jobs" not in document:
        problems.add(START, "no jobs: add a jobs: mapping with at least one job")
        return []
    value = document["jobs"]
    if value is not None and not isinstance(value, CommentedMap):
        problems.add(
            value_position(document, "jobs"),
            f"jobs must be a mapping of job names to jobs, not {kind(value)}",
        )
        return []
    if not value:
        problems.add(value_position(document, "jobs"), "jobs is empty: add at least one job")
        return []
    drafts = []
    for name in string_keys(problems, value, None, "in jobs"):
        if not NAME.fullmatch(name):
            names(problems, [(name, key_position(value, name))], "job name")
        drafts.append(read_job(problems, value, name))
    return drafts


def _build(
    stages: tuple[str, ...],
    pipeline_variables: dict[str, str],
    drafts: list[JobDraft],
    edges: dict[str, list[str]],
) -> PipelineSpec:
    stage_of = {draft.name: stages.index(draft.stage or "") for draft in drafts}
    order = spec_graph.run_order([draft.name for draft in drafts], stage_of, edges)
    by_name = {draft.name: draft for draft in drafts}
    jobs = [_job(by_name[name], pipeline_variables) for name in order]
    needs = spec_graph.effective_needs(jobs, stages)
    return PipelineSpec(
        stages=stages,
        variables=MappingProxyType(dict(pipeline_variables)),
        jobs=tuple(replace(job, effective_needs=needs[job.name]) for job in jobs),
    )


def _job(draft: JobDraft, pipeline_variables: dict[str, str]) -> JobSpec:
    return JobSpec(
        name=draft.name,
        stage=draft.stage or "",
        script=tuple(draft.script),
        needs=tuple(need for need, _ in draft.needs or []),
        needs_declared=draft.needs is not None,
        runs_on=tuple(draft.runs_on),
        variables=MappingProxyType({**pipeline_variables, **draft.variables}),
        artifact_paths=tuple(draft.artifact_paths),
        artifact_expire_seconds=draft.artifact_expire_seconds,
        junit_globs=tuple(draft.junit_globs),
        timeout_seconds=draft.timeout_seconds,
        retry_max=draft.retry_max,
        retry_when=draft.retry_when,
        when=draft.when,
        branch_globs=tuple(draft.branch_globs),
        environment=draft.environment,
        deploy_artifact=draft.deploy_artifact,
        line=draft.position[0],
    )
