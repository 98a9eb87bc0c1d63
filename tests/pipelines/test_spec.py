"""obeya.yml: what a valid file becomes, and the exact words for each mistake in a bad one."""

from __future__ import annotations

import json
import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from obeya.core.errors import InvalidInput
from obeya.pipelines.spec import (
    JobSpec,
    PipelineSpec,
    SpecError,
    SpecInvalid,
    jobs_for_branch,
    parse_spec,
)

FULL = """\
stages: [build, test, acceptance, deploy]
variables: {GREETING: hello, RELEASE: 1.10, DEBUG: true, WORKERS: 4}
jobs:
  deploy:
    stage: deploy
    script: ./deploy.sh
    when: manual
    rules: {branches: [main, "release/*"]}
    environment: staging
  unit:
    stage: test
    needs: [build]
    script:
      - python -m unittest
      - echo "$GREETING"
    runs_on: [linux, docker]
    variables: {X: "1", GREETING: hi}
    reports: {junit: [reports/*.xml]}
    timeout: 10m
    retry: 2
  build:
    stage: build
    script: [make dist]
    artifacts: {paths: [dist/], expire_in: 7d}
    timeout: 90
  lint:
    stage: test
    needs: []
    script: ruff check
    retry: {max: 1, when: always}
  accept:
    stage: acceptance
    script: behave
    when: on_failure
"""


def errors_of(text: str) -> list[str]:
    with pytest.raises(SpecInvalid) as caught:
        parse_spec(text)
    return [str(error) for error in caught.value.errors]


def doc(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def test_a_full_example_is_normalised_with_every_default() -> None:
    spec = parse_spec(FULL)
    assert spec.stages == ("build", "test", "acceptance", "deploy")
    assert dict(spec.variables) == {
        "GREETING": "hello",
        "RELEASE": "1.10",
        "DEBUG": "true",
        "WORKERS": "4",
    }
    assert [job.name for job in spec.jobs] == ["build", "unit", "lint", "accept", "deploy"]
    unit = spec.job("unit")
    assert unit.stage == "test" and unit.line == 10
    assert unit.script == ("python -m unittest", 'echo "$GREETING"')
    assert unit.needs == ("build",) and unit.needs_declared
    assert unit.runs_on == ("linux", "docker")
    assert dict(unit.variables) == {**spec.variables, "X": "1", "GREETING": "hi"}
    assert unit.junit_globs == ("reports/*.xml",)
    assert (unit.timeout_seconds, unit.retry_max, unit.retry_when) == (600, 2, "infrastructure")
    assert (unit.when, unit.environment, unit.branch_globs) == ("on_success", None, ())
    build = spec.job("build")
    assert build.artifact_paths == ("dist/",) and build.artifact_expire_seconds == 7 * 86400
    assert build.timeout_seconds == 90 and not build.needs_declared
    lint = spec.job("lint")
    assert lint.script == ("ruff check",) and lint.needs == () and lint.needs_declared
    assert (lint.retry_max, lint.retry_when) == (1, "always")
    assert lint.artifact_paths == () and lint.artifact_expire_seconds == 30 * 86400
    assert lint.timeout_seconds == 3600 and lint.runs_on == ()
    deploy = spec.job("deploy")
    assert (deploy.when, deploy.environment) == ("manual", "staging")
    assert deploy.branch_globs == ("main", "release/*")
    assert spec.job("accept").when == "on_failure"
    assert spec.stages_in_use == spec.stages


def test_stages_default_to_build_test_deploy_and_jobs_to_test() -> None:
    spec = parse_spec("jobs:\n  only: {script: [pytest]}\n")
    assert spec.stages == ("build", "test", "deploy")
    assert spec.jobs[0].stage == "test" and spec.stages_in_use == ("test",)


def test_jobs_run_stage_by_stage_then_after_their_needs_then_as_written() -> None:
    spec = parse_spec(
        doc("""
            stages: [one, two]
            jobs:
              late: {stage: two, script: x}
              c: {stage: one, script: x, needs: [b]}
              b: {stage: one, script: x, needs: [a]}
              a: {stage: one, script: x}
              free: {stage: one, script: x}
            """)
    )
    assert [job.name for job in spec.jobs] == ["a", "b", "c", "free", "late"]


def test_without_needs_a_job_waits_for_the_whole_previous_stage() -> None:
    spec = parse_spec(FULL)
    needs = {job.name: job.effective_needs for job in spec.jobs}
    assert needs == {
        "build": (),
        "unit": ("build",),
        "lint": (),  # needs: [] starts at once
        "accept": ("unit", "lint"),
        "deploy": ("accept",),
    }


def test_rules_choose_the_jobs_of_a_branch_and_needs_follow() -> None:
    spec = parse_spec(
        doc("""
            jobs:
              build: {stage: build, script: x}
              docs: {stage: build, script: x, rules: {branches: [main]}}
              unit: {stage: test, script: x, needs: [build, docs]}
              review: {stage: test, script: x, rules: {branches: ["feature/*"]}}
              deploy: {stage: deploy, script: x, rules: {branches: [main, "release/*"]}}
              notify: {stage: deploy, script: x, needs: [review]}
            """)
    )

    def chosen(branch: str) -> dict[str, tuple[str, ...]]:
        return {job.name: job.effective_needs for job in jobs_for_branch(spec, branch)}

    assert chosen("main") == {
        "build": (),
        "docs": (),
        "unit": ("build", "docs"),
        "deploy": ("unit",),
        "notify": (),
    }
    assert chosen("feature/login") == {
        "build": (),
        "unit": ("build",),
        "review": ("build",),
        "notify": ("review",),
    }
    assert list(chosen("release/1.2")) == ["build", "unit", "deploy", "notify"]
    assert spec.job("unit").effective_needs == ("build", "docs")  # every job assumed to run


def test_implicit_needs_skip_a_stage_left_empty_by_rules() -> None:
    spec = parse_spec(
        doc("""
            jobs:
              build: {stage: build, script: x}
              unit: {stage: test, script: x, rules: {branches: [main]}}
              deploy: {stage: deploy, script: x}
            """)
    )
    assert [(job.name, job.effective_needs) for job in jobs_for_branch(spec, "topic")] == [
        ("build", ()),
        ("deploy", ("build",)),
    ]


def test_needs_and_runs_on_and_reports_accept_a_single_string() -> None:
    spec = parse_spec(
        doc("""
            jobs:
              a: {stage: build, script: x}
              b: {script: x, needs: a, runs_on: linux, reports: {junit: out.xml}}
            """)
    )
    b = spec.job("b")
    assert (b.needs, b.runs_on, b.junit_globs) == (("a",), ("linux",), ("out.xml",))


def test_the_error_is_invalid_input_with_one_line_per_mistake() -> None:
    with pytest.raises(SpecInvalid) as caught:
        parse_spec("jobs:\n  a: {script: 5, when: later}\n", "ci/obeya.yml")
    invalid = caught.value
    assert isinstance(invalid, InvalidInput) and invalid.status == 400
    assert invalid.errors[0] == SpecError("ci/obeya.yml", 2, 15, invalid.errors[0].message)
    assert str(invalid) == "\n".join(str(error) for error in invalid.errors)
    assert str(invalid).splitlines()[1].startswith("ci/obeya.yml:2:24: when of job")


def test_a_file_over_256_kib_is_refused_before_parsing() -> None:
    assert errors_of("# " + "x" * 300_000) == [
        "obeya.yml:1:1: the file is larger than 256 KiB, the most an obeya.yml may be"
    ]


def test_a_billion_laughs_is_refused_at_its_first_anchor() -> None:
    bomb = 'a: &a ["lol","lol"]\nb: &b [*a,*a]\nc: &c [*b,*b]\njobs: {x: {script: *c}}\n'
    assert errors_of(bomb) == [
        "obeya.yml:1:4: anchors and aliases (&a) are not allowed in obeya.yml: "
        "write each value out in full"
    ]


GOLDEN = [
    pytest.param(
        doc("""
            jobs:
              a: [
            """),
        [
            (
                "obeya.yml:3:1: YAML syntax error: expected the node content, but found '<stream "
                "end>'"
            ),
        ],
        id="yaml_syntax",
    ),
    pytest.param(
        "jobs:\n\ta: {script: x}\n",
        [
            (
                "obeya.yml:2:1: YAML syntax error: found character '\\t' that cannot start any "
                "token: indent with spaces, not tabs"
            ),
        ],
        id="tabs",
    ),
    pytest.param(
        doc("""
            jobs:
              a: {script: x}
              a: {script: y}
            """),
        [
            'obeya.yml:3:3: YAML syntax error: key "a" appears twice in the same mapping',
        ],
        id="duplicate_key",
    ),
    pytest.param(
        doc("""
            jobs: {a: {script: x}}
            ---
            jobs: {}
            """),
        [
            (
                "obeya.yml:2:1: YAML syntax error: expected a single document in the stream, but "
                "found another document"
            ),
        ],
        id="two_documents",
    ),
    pytest.param(
        "jobs: {a: {script: x}}\n\u0007\n",
        [
            "obeya.yml:2:1: YAML syntax error: character U+0007 is not allowed",
        ],
        id="control_character",
    ),
    pytest.param(
        "",
        [
            "obeya.yml:1:1: the file is empty: add a jobs: mapping with at least one job",
        ],
        id="empty_file",
    ),
    pytest.param(
        "# nothing yet\n",
        [
            "obeya.yml:1:1: the file is empty: add a jobs: mapping with at least one job",
        ],
        id="comments_only",
    ),
    pytest.param(
        doc("""
            - build
            - test
            """),
        [
            (
                "obeya.yml:1:1: the top level must be a mapping of stages, variables and jobs, "
                "not a list"
            ),
        ],
        id="top_level_list",
    ),
    pytest.param(
        "jobs: {a: {script: !!str x}}\n",
        [
            (
                "obeya.yml:1:20: tags (!!str) are not allowed in obeya.yml: remove it, and quote "
                "the value if it must be a string"
            ),
        ],
        id="tag",
    ),
    pytest.param(
        doc("""
            ? [a, b]
            : 1
            """),
        [
            "obeya.yml:1:3: a key must be a plain name, not a list or a mapping",
        ],
        id="complex_key",
    ),
    pytest.param(
        "jobs: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n",
        [
            "obeya.yml:1:38: the document nests deeper than 32 levels",
        ],
        id="too_deep",
    ),
    pytest.param(
        doc("""
            stages: [build]
            job:
              a: {script: x}
            """),
        [
            "obeya.yml:1:1: no jobs: add a jobs: mapping with at least one job",
            'obeya.yml:2:1: unknown key "job" at the top level; did you mean "jobs"?',
        ],
        id="unknown_top_key",
    ),
    pytest.param(
        "jobs: {}\n",
        [
            "obeya.yml:1:7: jobs is empty: add at least one job",
        ],
        id="jobs_empty",
    ),
    pytest.param(
        "jobs:\n",
        [
            "obeya.yml:1:1: jobs is empty: add at least one job",
        ],
        id="jobs_null",
    ),
    pytest.param(
        "jobs: [a, b]\n",
        [
            "obeya.yml:1:7: jobs must be a mapping of job names to jobs, not a list",
        ],
        id="jobs_list",
    ),
    pytest.param(
        doc("""
            jobs:
              empty:
              listed: [x]
              noscript: {stage: test}
              'bad name': {script: x}
              3: {script: x}
            """),
        [
            'obeya.yml:2:3: job "empty" is empty: give it at least a script',
            'obeya.yml:3:11: job "listed" must be a mapping of settings, not a list',
            'obeya.yml:4:3: job "noscript" has no script: add script: with at least one command',
            (
                'obeya.yml:5:3: job name "bad name" must start with a letter or digit and hold '
                'only letters, digits, "_", "." and "-" (at most 63 characters)'
            ),
            "obeya.yml:6:3: key 3 in jobs must be a string, not an integer: quote it",
        ],
        id="job_shapes",
    ),
    pytest.param(
        doc("""
            jobs:
              a:
                script: 5
                stage: [test]
                needs: {build: 1}
                runs_on: 7
                timeout: true
                environment: [prod]
            """),
        [
            (
                'obeya.yml:3:13: script of job "a" must be a list of commands or a single '
                "command, not an integer"
            ),
            'obeya.yml:4:12: stage of job "a" must be a stage name, not a list',
            (
                'obeya.yml:5:12: needs of job "a" must be a list of job names or a single one, '
                "not a mapping"
            ),
            (
                'obeya.yml:6:14: runs_on of job "a" must be a list of runner labels or a single '
                "one, not an integer"
            ),
            (
                'obeya.yml:7:14: timeout of job "a" must be a duration like 30s, 10m or 2h, or '
                "whole seconds, not true/false"
            ),
            'obeya.yml:8:18: environment of job "a" must be an environment name, not a list',
        ],
        id="wrong_types",
    ),
    pytest.param(
        doc("""
            jobs:
              a:
                script: x
                stages: test
                artifact: {paths: [x]}
                colour: blue
            """),
        [
            'obeya.yml:4:5: unknown key "stages" in job "a"; did you mean "stage"?',
            'obeya.yml:5:5: unknown key "artifact" in job "a"; did you mean "artifacts"?',
            (
                'obeya.yml:6:5: unknown key "colour" in job "a": expected stage, needs, '
                "script, runs_on, variables, artifacts, reports, timeout, retry, when, rules, "
                "environment or deploy"
            ),
        ],
        id="unknown_job_keys",
    ),
    pytest.param(
        doc("""
            jobs:
              a: {script: []}
              b: {script: '  '}
              c:
                script:
                  - echo: hi
                  - 5
                  - ok
            """),
        [
            'obeya.yml:2:15: script of job "a" is empty: add at least one command',
            'obeya.yml:3:15: script of job "b" is empty: add at least one command',
            (
                'obeya.yml:6:9: script of job "c" must hold commands, not a mapping: quote '
                'items that contain ": "'
            ),
            'obeya.yml:7:9: script of job "c" must hold commands, not an integer',
        ],
        id="script_lines",
    ),
    pytest.param(
        doc("""
            stages: [build, test, build, 'a b', 3]
            jobs:
              a: {script: x, stage: tset}
              b: {script: x, stage: deploy}
            """),
        [
            'obeya.yml:1:23: "build" is listed twice in stages',
            (
                'obeya.yml:1:30: stage name "a b" must start with a letter or digit and hold '
                'only letters, digits, "_", "." and "-" (at most 63 characters)'
            ),
            "obeya.yml:1:37: stages must hold stage names, not an integer",
            (
                'obeya.yml:3:25: job "a" is in stage "tset", which is not in stages; did you '
                'mean "test"?'
            ),
            (
                'obeya.yml:4:25: job "b" is in stage "deploy", which is not in stages (build, '
                "test, a b): add it to stages or use one of those"
            ),
        ],
        id="stages",
    ),
    pytest.param(
        doc("""
            stages: []
            jobs:
              a: {script: x}
            """),
        [
            (
                "obeya.yml:1:1: stages is empty: list at least one stage, or remove stages to use "
                "build, test, deploy"
            ),
        ],
        id="stages_empty",
    ),
    pytest.param(
        doc("""
            stages: [compile, ship]
            jobs:
              a: {script: x}
            """),
        [
            (
                'obeya.yml:3:3: job "a" has no stage and there is no "test" stage to default '
                "to: add stage: with one of compile or ship"
            ),
        ],
        id="no_default_stage",
    ),
    pytest.param(
        doc("""
            stages: [build, test]
            jobs:
              build: {stage: build, script: x, needs: [unit]}
              unit:
                stage: test
                script: x
                needs: [biuld, nowhere, build, build, 5]
            """),
        [
            (
                'obeya.yml:3:44: job "build" in stage build needs "unit" of the later stage '
                "test: a job can only need jobs of its own or an earlier stage"
            ),
            ('obeya.yml:7:13: job "unit" needs "biuld", which is not a job; did you mean "build"?'),
            'obeya.yml:7:20: job "unit" needs "nowhere", which is not a job in this file',
            'obeya.yml:7:36: "build" is listed twice in needs of job "unit"',
            'obeya.yml:7:43: needs of job "unit" must hold job names, not an integer',
        ],
        id="needs",
    ),
    pytest.param(
        doc("""
            jobs:
              a: {script: x, needs: [b]}
              b: {script: x, needs: [c]}
              c: {script: x, needs: [a]}
              d: {script: x, needs: [d]}
              e: {script: x, needs: [a]}
            """),
        [
            "obeya.yml:2:26: needs form a cycle: a → b → c → a",
            "obeya.yml:5:26: needs form a cycle: d → d",
        ],
        id="cycles",
    ),
    pytest.param(
        doc("""
            jobs:
              a:
                script: x
                timeout: 25h
                artifacts: {paths: [dist/], expire_in: 7 days}
              b:
                script: x
                timeout: 1d
                artifacts: {paths: [dist/], expire_in: 0d}
              c:
                script: x
                timeout: 90000
                artifacts: {paths: [dist/], expire_in: 400d}
              d: {script: x, timeout: 0}
            """),
        [
            'obeya.yml:4:14: timeout of job "a" is 25h; the most is 24h',
            (
                'obeya.yml:5:44: artifacts.expire_in of job "a" must be a duration like 30m, '
                '12h or 7d, not "7 days"'
            ),
            (
                'obeya.yml:8:14: timeout of job "b" must be a duration like 30s, 10m or 2h, or '
                'whole seconds, not "1d"'
            ),
            'obeya.yml:9:44: artifacts.expire_in of job "b" must be more than zero',
            'obeya.yml:12:14: timeout of job "c" is 90000 seconds; the most is 24h',
            'obeya.yml:13:44: artifacts.expire_in of job "c" is 400d; the most is 365d',
            'obeya.yml:14:27: timeout of job "d" must be more than zero',
        ],
        id="durations",
    ),
    pytest.param(
        doc("""
            jobs:
              a: {script: x, artifacts: {expire_in: 1d, keep: true}}
              b: {script: x, artifacts: {paths: [/etc, ../up, 'ok/../..', '', dist/, dist/]}}
              c: {script: x, artifacts: [dist/]}
              d: {script: x, artifacts: {paths: []}}
              e: {script: x, reports: {junit: [/tmp/r.xml], coverage: x}}
            """),
        [
            (
                'obeya.yml:2:29: artifacts of job "a" has no paths: add paths: with the files '
                "or directories to keep"
            ),
            (
                'obeya.yml:2:45: unknown key "keep" in artifacts of job "a": expected paths '
                "or expire_in"
            ),
            (
                'obeya.yml:3:38: artifacts.paths of job "b" holds "/etc": paths must be '
                'relative to the workspace, without ".."'
            ),
            (
                'obeya.yml:3:44: artifacts.paths of job "b" holds "../up": paths must be '
                'relative to the workspace, without ".."'
            ),
            (
                'obeya.yml:3:51: artifacts.paths of job "b" holds "ok/../..": paths must be '
                'relative to the workspace, without ".."'
            ),
            (
                'obeya.yml:3:63: artifacts.paths of job "b" holds an empty path: name a file, '
                "directory or glob"
            ),
            'obeya.yml:3:74: "dist/" is listed twice in artifacts.paths of job "b"',
            (
                'obeya.yml:4:29: artifacts of job "c" must be a mapping like {paths: [dist/], '
                "expire_in: 7d}, not a list"
            ),
            (
                'obeya.yml:5:37: artifacts.paths of job "d" is empty: list the files or '
                "directories to keep, or remove artifacts"
            ),
            (
                'obeya.yml:6:36: reports.junit of job "e" holds "/tmp/r.xml": paths must be '
                'relative to the workspace, without ".."'
            ),
            'obeya.yml:6:49: unknown key "coverage" in reports of job "e": expected junit',
        ],
        id="artifacts",
    ),
    pytest.param(
        doc("""
            jobs:
              a: {script: x, when: manul}
              b: {script: x, when: 3, retry: 6}
              c: {script: x, retry: {max: 9, when: allways, whn: x}}
              d: {script: x, retry: {when: always}}
              e: {script: x, retry: twice}
            """),
        [
            (
                'obeya.yml:2:24: when of job "a" must be on_success, on_failure, always or '
                'manual, not "manul"; did you mean "manual"?'
            ),
            (
                'obeya.yml:3:24: when of job "b" must be on_success, on_failure, always or '
                "manual, not 3"
            ),
            'obeya.yml:3:34: retry of job "b" must be 0 to 5, not 6',
            'obeya.yml:4:31: retry.max of job "c" must be 0 to 5, not 9',
            (
                'obeya.yml:4:40: retry.when of job "c" must be always or infrastructure, not '
                '"allways"; did you mean "always"?'
            ),
            'obeya.yml:4:49: unknown key "whn" in retry of job "c"; did you mean "when"?',
            'obeya.yml:5:25: retry of job "d" has no max: add max: with 0 to 5 retries',
            (
                'obeya.yml:6:25: retry of job "e" must be a number of retries (0 to 5) or a '
                "mapping like {max: 2, when: always}, not a string"
            ),
        ],
        id="when_and_retry",
    ),
    pytest.param(
        (
            'variables:\n  1X: a\n  EMPTY:\n  LIST: [1]\n  HEX: 0x1F\n  NUL: "a\\0b"\njobs:\n  '
            "a: {script: x, variables: {bad-name: x, OK: y}}\n  b: {script: x, variables: [A]}\n"
        ),
        [
            (
                'obeya.yml:2:3: variable name "1X" must start with a letter or _ and hold only '
                "letters, digits and _"
            ),
            'obeya.yml:3:3: variable "EMPTY" has no value: write EMPTY: "" for an empty one',
            'obeya.yml:4:9: variable "LIST" must be a string, not a list',
            (
                'obeya.yml:5:8: variable "HEX" must be quoted so it reaches the environment as '
                "written"
            ),
            'obeya.yml:6:8: variable "NUL" holds a NUL character, which the environment cannot',
            (
                'obeya.yml:8:30: variable name "bad-name" of job "a" must start with a letter '
                "or _ and hold only letters, digits and _"
            ),
            (
                'obeya.yml:9:29: variables of job "b" must be a mapping of names to values, not '
                "a list"
            ),
        ],
        id="variables",
    ),
    pytest.param(
        doc("""
            jobs:
              a: {script: x, rules: {branches: []}}
              b: {script: x, rules: {}}
              c: {script: x, rules: main}
              d: {script: x, rules: {branches: [main], tags: [v1]}}
              e: {script: x, environment: 'prod env', runs_on: [linux, linux, 'big box']}
            """),
        [
            (
                'obeya.yml:2:36: rules.branches of job "a" is empty: remove rules to run on '
                "every branch"
            ),
            (
                'obeya.yml:3:25: rules of job "b" has no branches: add branches: with the '
                "branches it runs on"
            ),
            (
                'obeya.yml:4:25: rules of job "c" must be a mapping like {branches: [main, '
                '"release/*"]}, not a string'
            ),
            'obeya.yml:5:44: unknown key "tags" in rules of job "d": expected branches',
            (
                'obeya.yml:6:31: environment name "prod env" of job "e" must start with a '
                'letter or digit and hold only letters, digits, "_", "." and "-" (at most '
                "63 characters)"
            ),
            'obeya.yml:6:60: "linux" is listed twice in runs_on of job "e"',
            (
                'obeya.yml:6:67: runner label "big box" in runs_on of job "e" must start with '
                'a letter or digit and hold only letters, digits, "_", "." and "-" (at most '
                "63 characters)"
            ),
        ],
        id="rules_and_environment",
    ),
    pytest.param(
        doc("""
            jobs:
              a:
                script: x
                timeout:
                needs:
                variables:
                artifacts: {paths: [x], expire_in: }
            """),
        [
            'obeya.yml:4:5: timeout of job "a" is empty: give it a value or remove it',
            'obeya.yml:5:5: needs of job "a" is empty: give it a value or remove it',
            (
                'obeya.yml:7:29: artifacts.expire_in of job "a" is empty: give it a value or '
                "remove it"
            ),
        ],
        id="empty_values",
    ),
]


@pytest.mark.parametrize(("text", "expected"), GOLDEN)
def test_every_mistake_is_reported_with_its_position(text: str, expected: list[str]) -> None:
    assert errors_of(text) == expected


BRANCHES = ("main", "dev", "feature/login")


@st.composite
def dag_documents(draw: st.DrawFn) -> dict[str, object]:
    """A valid obeya.yml as data: needs only point to jobs made before, in the same or an
    earlier stage, so there is never a cycle; then the jobs are written in any order."""
    stages = [f"s{index}" for index in range(draw(st.integers(1, 4)))]
    jobs: list[tuple[str, dict[str, object]]] = []
    for index in range(draw(st.integers(1, 10))):
        stage = draw(st.sampled_from(stages))
        earlier = [
            name for name, job in jobs if stages.index(str(job["stage"])) <= stages.index(stage)
        ]
        job: dict[str, object] = {"stage": stage, "script": [f"echo {index}"]}
        needs = st.lists(st.sampled_from(earlier), unique=True) if earlier else st.just([])
        if draw(st.booleans()):
            job["needs"] = draw(needs)
        if draw(st.booleans()):
            globs = st.lists(st.sampled_from(["main", "dev", "feature/*"]), min_size=1, unique=True)
            job["rules"] = {"branches": draw(globs)}
        jobs.append((f"j{index}", job))
    return {"stages": stages, "jobs": dict(draw(st.permutations(jobs)))}


def assert_runnable(spec: PipelineSpec, jobs: list[JobSpec]) -> None:
    position = {job.name: index for index, job in enumerate(jobs)}
    rank = [spec.stages.index(job.stage) for job in jobs]
    assert rank == sorted(rank), "jobs run stage by stage"
    for job in jobs:
        for need in job.effective_needs:
            assert position[need] < position[job.name], f"{job.name} runs before {need}"


def nearest_earlier_stage(spec: PipelineSpec, chosen: list[JobSpec], job: JobSpec) -> tuple:
    rank = spec.stages.index
    earlier = {rank(other.stage) for other in chosen if rank(other.stage) < rank(job.stage)}
    return tuple(other.name for other in chosen if earlier and rank(other.stage) == max(earlier))


@settings(max_examples=150, deadline=None)
@given(dag_documents())
def test_the_order_respects_every_need_on_every_branch(document: dict[str, object]) -> None:
    spec = parse_spec(json.dumps(document, indent=2))
    assert_runnable(spec, list(spec.jobs))
    for job in spec.jobs:
        if job.needs_declared:
            assert job.effective_needs == job.needs
    for branch in BRANCHES:
        chosen = jobs_for_branch(spec, branch)
        assert_runnable(spec, chosen)
        names = {job.name for job in chosen}
        assert names == {job.name for job in spec.jobs if job.runs_for_branch(branch)}
        for job in chosen:
            if job.needs_declared:
                assert job.effective_needs == tuple(need for need in job.needs if need in names)
            else:
                assert job.effective_needs == nearest_earlier_stage(spec, chosen, job)


YAMLISH = st.sampled_from(
    [
        *"abjosctgenid:-[]{},'\"&*!%#|>?@`\\\t\n 0.5",
        *("\x00", "\x07", "\ud800", "é", "\ufeff", "~", "0x", "1e999", "2024-02-30"),
        *("jobs:\n", "  a:\n", "    script: x\n", "    needs: [a]\n", "---\n", "%YAML 1.1\n"),
        *("<<: ", "? ", "&a ", "*a ", "!!binary "),
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text() | st.lists(YAMLISH, max_size=60).map("".join))
def test_garbage_text_only_ever_raises_spec_invalid(text: str) -> None:
    try:
        parse_spec(text)
    except SpecInvalid as invalid:
        assert invalid.errors and all(
            error.line >= 1 and error.col >= 1 for error in invalid.errors
        )


KEYS = st.sampled_from(
    [
        *("stage", "needs", "script", "runs_on", "variables", "artifacts", "reports"),
        *("timeout", "retry", "when", "rules", "environment", "paths", "expire_in", "junit"),
        *("branches", "max", "a", "b", "X", ""),
    ]
)
LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-3, 100_000)
    | st.floats(allow_nan=False)
    | KEYS
    | st.sampled_from(["10m", "7d", "25h", "manual", "always", "../x", "/x", "*"])
    | st.text(max_size=4)
)
TREES = st.recursive(
    LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(KEYS | st.text(max_size=3), inner, max_size=5)
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(st.sampled_from(["stages", "variables", "jobs", "stage"]), TREES, max_size=4)
)
def test_wrong_shapes_only_ever_raise_spec_invalid(document: dict[str, object]) -> None:
    try:
        parse_spec(json.dumps(document))
    except SpecInvalid as invalid:
        assert invalid.errors
