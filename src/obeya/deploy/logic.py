"""Rules of deployments: who wins an environment, when approvals suffice, what is kept,
what counts as drift, and how a warm-up is judged. Pure: no Django, no I/O."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

WAITING = frozenset({"waiting_approval", "queued"})
TERMINAL = frozenset({"succeeded", "failed", "rolled_back", "outdated", "canceled", "rejected"})
TIERS = ("development", "testing", "staging", "production")
HOOKS = ("before_switch", "restart", "after_switch")
TARGET_KINDS = ("local", "ssh")
HEALTH_KINDS = ("http", "command")
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
MAX_APPROVALS = 5


@dataclass(frozen=True)
class Candidate:
    """A deployment waiting for its environment, as the choice of the next one sees it."""

    id: int
    kind: str  # deploy | rollback
    committed_at: datetime | None
    run_number: int
    sha: str


def newness(candidate: Candidate) -> tuple[float, int, int]:
    """Sort key: a later commit is newer; a later run of the same moment breaks the tie."""
    stamp = candidate.committed_at.timestamp() if candidate.committed_at else 0.0
    return (stamp, candidate.run_number, candidate.id)


def commit_order(candidate: Candidate) -> tuple[float, int]:
    """Which commit is newer: the later commit time, then the later run (git's commit times
    have one-second resolution, so commits made together tie on time)."""
    stamp, run_number, _ = newness(candidate)
    return stamp, run_number


def choose_next(
    queued: Iterable[Candidate], current: Candidate | None
) -> tuple[Candidate | None, list[Candidate]]:
    """The deployment to run next on an environment, and those that are now outdated.

    Rollbacks are deliberate moves back in time: they go first, oldest request first, and
    never go out of date. Among the others the newest commit wins (RELIABILITY B3); every
    older one waiting is outdated, as is a winner older than what already runs there.
    """
    waiting = list(queued)
    rollbacks = sorted((c for c in waiting if c.kind == "rollback"), key=lambda c: c.id)
    if rollbacks:
        return rollbacks[0], []
    if not waiting:
        return None, []
    ordered = sorted(waiting, key=newness)
    winner, older = ordered[-1], ordered[:-1]
    if (
        current is not None
        and current.kind != "rollback"
        and winner.sha != current.sha
        and commit_order(winner) < commit_order(current)
    ):
        return None, ordered
    return winner, older


def approval_state(required: int, decisions: Iterable[str]) -> str:
    """``approved`` once ``required`` people approved, ``rejected`` on any rejection."""
    made = list(decisions)
    if "reject" in made:
        return "rejected"
    return "approved" if made.count("approve") >= required else "waiting"


def release_name(now: datetime, deployment_id: int) -> str:
    """A release's directory name: sortable by time, unique by deployment.

    Names sort in the order releases were made, which retention and the default rollback
    rely on; the microseconds keep that true for releases made within the same second
    (``-d10`` sorts before ``-d9``).
    """
    return f"{now:%Y%m%dT%H%M%S.%f}-d{deployment_id}"


def to_archive(release_ids: Iterable[str], keep: int, protected: Iterable[str]) -> list[str]:
    """Releases beyond the newest ``keep`` (names sort by time); never a protected one."""
    ordered = sorted(set(release_ids), reverse=True)
    spare = set(protected)
    kept = ordered[: max(keep, 1)]
    return sorted(name for name in ordered if name not in kept and name not in spare)


@dataclass(frozen=True)
class Drift:
    changed: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()

    @property
    def found(self) -> bool:
        return bool(self.changed or self.added or self.missing)

    def summary(self, limit: int = 5) -> str:
        parts = []
        for label, paths in (
            ("changed", self.changed),
            ("added", self.added),
            ("missing", self.missing),
        ):
            if paths:
                shown = ", ".join(paths[:limit]) + (" …" if len(paths) > limit else "")
                parts.append(f"{len(paths)} {label} ({shown})")
        return "; ".join(parts) or "no drift"


def compare(expected: Mapping[str, str], actual: Mapping[str, str]) -> Drift:
    """How the files on the target differ from the release's manifest."""
    return Drift(
        changed=tuple(sorted(p for p in expected if p in actual and actual[p] != expected[p])),
        added=tuple(sorted(p for p in actual if p not in expected)),
        missing=tuple(sorted(p for p in expected if p not in actual)),
    )


@dataclass
class WarmUp:
    """Judges a warm-up: ``passes`` consecutive healthy checks before the window closes."""

    passes: int
    window_s: float
    started: float
    streak: int = 0
    checks: int = 0
    last_problem: str = ""

    def record(self, healthy: bool, problem: str = "") -> None:
        self.checks += 1
        self.streak = self.streak + 1 if healthy else 0
        if not healthy:
            self.last_problem = problem

    @property
    def passed(self) -> bool:
        return self.streak >= self.passes

    def expired(self, now: float) -> bool:
        return now - self.started >= self.window_s

    def verdict(self) -> str:
        if self.passed:
            return f"healthy: {self.streak} check(s) in a row passed"
        last = f"; last problem: {self.last_problem}" if self.last_problem else ""
        return (
            f"unhealthy: {self.passes} passing check(s) in a row were needed within "
            f"{self.window_s:g} s, and {self.checks} check(s) did not get there{last}"
        )


def check_settings(fields: Mapping[str, object]) -> list[tuple[str, str]]:
    """Problems with an environment's settings, as (field, message with the way out)."""
    problems: list[tuple[str, str]] = []
    tier = fields.get("tier")
    if tier is not None and tier not in TIERS:
        problems.append(("tier", f"unknown tier {tier!r}: use one of {', '.join(TIERS)}"))
    approvals = fields.get("required_approvals")
    if approvals is not None and not (
        isinstance(approvals, int) and 0 <= approvals <= MAX_APPROVALS
    ):
        problems.append(
            ("required_approvals", f"required approvals: a number from 0 to {MAX_APPROVALS}")
        )
    if fields.get("protected") and not approvals:
        problems.append(
            (
                "required_approvals",
                "a protected environment needs at least 1 approval: set required_approvals",
            )
        )
    for field, low, high in (
        ("retention", 1, 100),
        ("warmup_s", 1, 3600),
        ("health_passes", 1, 100),
        ("health_interval_ms", 50, 60_000),
        ("hook_timeout_s", 1, 86400),
    ):
        value = fields.get(field)
        if value is not None and not (isinstance(value, int) and low <= value <= high):
            problems.append((field, f"{field}: a whole number from {low} to {high}"))
    problems += _target_problems(fields.get("target"))
    problems += _health_problems(fields.get("health"))
    hooks = fields.get("hooks")
    if hooks is not None:
        if not isinstance(hooks, Mapping):
            problems.append(("hooks", "hooks: a mapping of before_switch, restart, after_switch"))
        else:
            for key, value in hooks.items():
                if key not in HOOKS:
                    problems.append(("hooks", f"unknown hook {key!r}: use {', '.join(HOOKS)}"))
                elif not isinstance(value, str):
                    problems.append(("hooks", f"hook {key} must be a shell command (text)"))
    return problems


def _target_problems(target: object) -> list[tuple[str, str]]:
    if target is None:
        return []
    if not isinstance(target, Mapping) or target.get("kind") not in TARGET_KINDS:
        return [("target", f"target: a mapping with kind {' or '.join(TARGET_KINDS)}")]
    root = target.get("root")
    problems = []
    if not isinstance(root, str) or not root.startswith("/"):
        problems.append(("target", "target root: an absolute directory path"))
    if target["kind"] == "ssh":
        hosts = target.get("hosts")
        if not isinstance(hosts, list) or not hosts or not all(isinstance(h, str) for h in hosts):
            problems.append(("target", "ssh target hosts: a list of host or host:port"))
        batch = target.get("batch_size", 1)
        if not isinstance(batch, int) or batch < 1:
            problems.append(("target", "ssh target batch_size: a whole number of at least 1"))
    return problems


def _health_problems(health: object) -> list[tuple[str, str]]:
    if health is None or health == {}:
        return []
    if not isinstance(health, Mapping) or health.get("kind") not in HEALTH_KINDS:
        return [("health", f"health: a mapping with kind {' or '.join(HEALTH_KINDS)}")]
    if health["kind"] == "http":
        url = health.get("url")
        if not isinstance(url, str) or not re.match(r"^https?://[^/\s]+", url):
            return [("health", "health url: an http:// or https:// address")]
    elif not isinstance(health.get("command"), str) or not str(health["command"]).strip():
        return [("health", "health command: a shell command that exits 0 when healthy")]
    return []
