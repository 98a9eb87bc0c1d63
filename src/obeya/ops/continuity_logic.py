"""Rules of continuity (§4.4): cron schedules, RPO and RTO verdicts, overdue drills, and
what a backup command's output says about the file it wrote. Pure: no Django, no I/O."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from croniter import CroniterError, croniter

ALIASES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
MAX_TIMEOUT_S = 7 * 86400
MAX_SECONDS = 366 * 86400
OUTPUT_TAIL = 4000
FILE_MARKER = re.compile(r"^OBEYA_BACKUP_FILE=(?P<path>\S.*)$", re.MULTILINE)
SIZE_MARKER = re.compile(r"^OBEYA_BACKUP_SIZE=(?P<size>\d+)\s*$", re.MULTILINE)


# ---- schedules ---------------------------------------------------------------------------


def schedule_problem(expression: str) -> str | None:
    """Why ``expression`` is not a cron schedule we run, or None when it is one."""
    expression = (expression or "").strip()
    if not expression:
        return "schedule: a cron expression such as '0 3 * * *' (03:00 every day)"
    if expression.startswith("@"):
        if expression.lower() in ALIASES:
            return None
        return f"schedule {expression!r}: known aliases are {', '.join(ALIASES)}"
    if len(expression.split()) != 5:
        return (
            f"schedule {expression!r}: five fields (minute hour day-of-month month "
            "day-of-week), e.g. '0 3 * * *'"
        )
    try:
        croniter(expression)
    except (CroniterError, ValueError, KeyError) as error:
        return f"schedule {expression!r} is not a valid cron expression: {error}"
    return None


def next_due(expression: str, after: datetime, zone: tzinfo) -> datetime:
    """The first time after ``after`` that the schedule fires, read in ``zone`` (DST-aware),
    returned in ``after``'s own time zone."""
    local = after.astimezone(zone)
    following: datetime = croniter(expression, local).get_next(datetime)
    return following.astimezone(after.tzinfo)


def longest_gap_s(expression: str, start: datetime, zone: tzinfo, firings: int = 400) -> float:
    """The longest wait between two firings over the next ``firings`` of them."""
    times = croniter(expression, start.astimezone(zone))
    previous: datetime = times.get_next(datetime)
    longest = 0.0
    for _ in range(firings):
        following: datetime = times.get_next(datetime)
        longest = max(longest, (following - previous).total_seconds())
        previous = following
    return longest


# ---- settings ----------------------------------------------------------------------------


def _whole(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def policy_problems(fields: Mapping[str, object]) -> list[tuple[str, str]]:
    """Problems with a continuity policy's settings, as (field, message with the way out)."""
    problems: list[tuple[str, str]] = []
    for field, what in (("rpo_s", "RPO"), ("rto_s", "RTO")):
        value = fields.get(field)
        if value is not None and not _whole(value, 1, MAX_SECONDS):
            problems.append(
                (field, f"{field}: the {what} in whole seconds, more than 0 and at most a year")
            )
    age = fields.get("max_drill_age_days")
    if age is not None and not _whole(age, 1, 3660):
        problems.append(("max_drill_age_days", "max_drill_age_days: whole days from 1 to 3660"))
    timeout = fields.get("drill_timeout_s")
    if timeout is not None and not _whole(timeout, 1, MAX_TIMEOUT_S):
        problems.append(("drill_timeout_s", "drill_timeout_s: whole seconds from 1 to 604800"))
    restore = str(fields.get("restore_command") or "").strip()
    verify = str(fields.get("verify_command") or "").strip()
    if restore and not verify:
        problems.append(
            (
                "verify_command",
                "verify_command: a restore drill needs a command that checks what was "
                "restored in $OBEYA_SCRATCH_DIR (a drill without it proves nothing)",
            )
        )
    if verify and not restore:
        problems.append(
            (
                "restore_command",
                "restore_command: a command that restores the latest backup into "
                "$OBEYA_SCRATCH_DIR",
            )
        )
    return problems


def job_problems(fields: Mapping[str, object]) -> list[tuple[str, str]]:
    """Problems with a backup job's settings, as (field, message with the way out)."""
    problems: list[tuple[str, str]] = []
    if not str(fields.get("command") or "").strip():
        problems.append(("command", "command: the shell command that makes the backup"))
    problem = schedule_problem(str(fields.get("schedule") or ""))
    if problem:
        problems.append(("schedule", problem))
    timeout = fields.get("timeout_s")
    if timeout is not None and not _whole(timeout, 1, MAX_TIMEOUT_S):
        problems.append(("timeout_s", "timeout_s: whole seconds from 1 to 604800"))
    return problems


# ---- verdicts ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RpoVerdict:
    """How old the newest good backup is, against the RPO.

    ``state``: ``met``, ``breached``, ``no_backup`` (none succeeded yet) or ``unset``.
    """

    state: str
    age_s: float | None
    rpo_s: int | None


def rpo_verdict(last_success: datetime | None, rpo_s: int | None, now: datetime) -> RpoVerdict:
    """Data written since the last good backup is what a loss would cost: met while that
    window is within the RPO."""
    age = (now - last_success).total_seconds() if last_success else None
    if rpo_s is None:
        return RpoVerdict("unset", age, None)
    if age is None:
        return RpoVerdict("no_backup", None, rpo_s)
    return RpoVerdict("met" if age <= rpo_s else "breached", age, rpo_s)


def rto_verdict(passed: bool, duration_s: float | None, rto_s: int | None) -> str:
    """A drill against the RTO: ``within_rto``, ``over_rto``, ``no_rto`` or ``failed``.

    A failed drill restores nothing, so it never counts as within any RTO.
    """
    if not passed or duration_s is None:
        return "failed"
    if rto_s is None:
        return "no_rto"
    return "within_rto" if duration_s <= rto_s else "over_rto"


def drill_overdue(last_passed: datetime | None, max_age_days: int, now: datetime) -> bool:
    """Recovery kept in practice: flagged when no drill passed within the last max age."""
    return last_passed is None or now - last_passed > timedelta(days=max_age_days)


def schedule_problem_for_rpo(gap_s: float, rpo_s: int | None) -> str | None:
    if rpo_s is not None and gap_s > rpo_s:
        return (
            f"the schedule leaves up to {format_seconds(gap_s)} between backups, more than "
            f"the RPO of {format_seconds(rpo_s)}: it cannot meet the RPO"
        )
    return None


# ---- backup output -----------------------------------------------------------------------


@dataclass(frozen=True)
class BackupEvidence:
    """What the backup command says it wrote: a file (to measure) and its size."""

    location: str
    size_bytes: int | None


def backup_evidence(output: str) -> BackupEvidence:
    """The file and size a backup command reports, from its output.

    Markers win: a line ``OBEYA_BACKUP_FILE=/path`` and/or ``OBEYA_BACKUP_SIZE=bytes``.
    Otherwise an absolute path alone on the last line names the file.
    """
    files = FILE_MARKER.findall(output)
    sizes = SIZE_MARKER.findall(output)
    location = files[-1].strip() if files else ""
    if not location:
        lines = [line.strip() for line in output.strip().splitlines()]
        if lines and lines[-1].startswith("/") and " " not in lines[-1]:
            location = lines[-1]
    return BackupEvidence(location, int(sizes[-1]) if sizes else None)


def tail(text: str, limit: int = OUTPUT_TAIL) -> str:
    """The end of a command's output, cut at a line start when it had to be cut."""
    if len(text) <= limit:
        return text
    cut = text[-limit:]
    newline = cut.find("\n")
    return "…\n" + (cut[newline + 1 :] if 0 <= newline < 200 else cut)


def format_seconds(seconds: float) -> str:
    """A duration as people say it: 45 s, 12 min, 3.5 h, 2 d."""
    if seconds < 120:
        return f"{seconds:.3g} s"
    if seconds < 7200:
        return f"{seconds / 60:.3g} min"
    if seconds < 172800:
        return f"{seconds / 3600:.3g} h"
    return f"{seconds / 86400:.3g} d"
