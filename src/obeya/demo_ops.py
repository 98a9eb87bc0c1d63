"""The demo's operations: monitors on hello-service's environments, SLOs from its
operation stories, a resolved incident with its postmortem, and continuity proven by a
real backup and a passing restore drill — of hello-service's data and of Obeya itself.

Everything goes through the operations services, so the timelines and the audit trail
hold real events; loading twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from obeya.core import events
from obeya.core import services as core
from obeya.core.actors import Actor
from obeya.core.clock import ManualClock
from obeya.demo_deploy import PORTS, SLUG

# hello-service keeps its greetings log in a data directory; the backup job packs it and
# the restore drill unpacks the newest backup into a scratch directory and checks it.
BACKUP = """\
set -e
mkdir -p "{backups}"
file="{backups}/hello-data-$(date -u +%Y%m%dT%H%M%S).tar.gz"
tar czf "$file" -C "{data}" .
echo "OBEYA_BACKUP_FILE=$file"
"""
RESTORE = 'tar xzf "$OBEYA_BACKUP_FILE" -C "$OBEYA_SCRATCH_DIR"'
VERIFY = 'grep -q "Hello" "$OBEYA_SCRATCH_DIR/greetings.log"'


def load(echo: Callable[[str], None]) -> None:
    from obeya.ops import services as ops

    if ops.list_monitors(SLUG).exists():
        return
    erin = Actor(user=core.get_user("erin"), channel="cli")
    for name, port in PORTS.items():
        ops.create_monitor(
            erin,
            SLUG,
            f"{name}-health",
            environment=name,
            kind="http",
            url=f"http://127.0.0.1:{port}/health",
            contains='"status": "ok"',
            interval_s=30,
            timeout_s=3,
            failure_threshold=3,
            enabled=False,  # the demo director turns it on once the environment is deployed
        )
    from obeya.ops import reviews

    made = reviews.slos_from_stories(erin, SLUG, "production-health")
    _incident_with_postmortem()
    drills = _continuity(erin)
    echo(
        f"  operations of {SLUG}: 2 monitors, {len(made)} SLO(s), a resolved incident with "
        f"its postmortem, {drills}"
    )


def monitors() -> list[Any]:
    """The demo's two health monitors."""
    from obeya.ops import services as ops

    return list(ops.list_monitors(SLUG).filter(name__in=[f"{n}-health" for n in PORTS]))


def enable_deployed_monitors() -> None:
    """Turn on the monitor of each environment once a deployment there succeeded."""
    from obeya.deploy import services as deploy
    from obeya.ops import services as ops

    erin = Actor(user=core.get_user("erin"), channel="web")
    for name in PORTS:
        monitor = ops.list_monitors(SLUG).filter(name=f"{name}-health", enabled=False).first()
        deployed = deploy.list_deployments(SLUG, name, "succeeded").exists()
        if monitor is not None and deployed:
            ops.update_monitor(erin, SLUG, monitor.name, enabled=True)


def _incident_with_postmortem() -> None:
    """INC-1: a week ago the greeting page hung after a config change; blameless review."""
    from obeya.ops import reviews
    from obeya.ops import services as ops

    clock = ManualClock(timezone.now() - timedelta(days=7, hours=3))
    frank = Actor(user=core.get_user("frank"), channel="web", clock=clock)
    incident = ops.open_incident(
        frank, SLUG, "Greeting page hangs for visitors with long names", "sev2"
    )
    clock.advance(timedelta(minutes=4))
    ops.move_incident(frank, SLUG, incident.number, "acknowledged", "Looking at it.")
    clock.advance(timedelta(minutes=9))
    ops.add_note(frank, SLUG, incident.number, "Names over 10 kB make the handler spin.")
    clock.advance(timedelta(minutes=9))
    ops.move_incident(
        frank, SLUG, incident.number, "mitigated", "Proxy limits query strings to 2 kB."
    )
    clock.advance(timedelta(hours=2))
    ops.move_incident(frank, SLUG, incident.number, "resolved", "Fix released in 0.9.0.")
    clock.advance(timedelta(days=1))
    erin = Actor(user=core.get_user("erin"), channel="web", clock=clock)
    reviews.write_postmortem(
        erin,
        SLUG,
        incident.number,
        summary="For 22 minutes the greeting page hung for visitors whose name was very long.",
        impact="About 40 visitors waited until their browser gave up; nothing was lost.",
        factors=[
            "No limit on the length of the name parameter",
            "No test with an unusually long name",
            "The monitor checked /health only, which stayed green",
        ],
        went_well="The operator found the cause within 10 minutes from the access log.",
        actions=[
            "Limit the name parameter to 200 characters",
            "Monitor the greeting page, not only /health",
        ],
    )


def _continuity(erin: Actor) -> str:
    from obeya.ops import continuity, continuity_drills

    data = Path(settings.DATA_DIR) / "demo-data" / SLUG
    data.mkdir(parents=True, exist_ok=True)
    (data / "greetings.log").write_text("Hello, world!\nHello, Ada!\n")
    backups = Path(settings.DATA_DIR) / "backups" / SLUG
    continuity.set_policy(
        erin, SLUG, max_drill_age_days=30, restore_command=RESTORE, verify_command=VERIFY
    )
    continuity.create_job(
        erin,
        SLUG,
        "greetings",
        command=BACKUP.replace("{backups}", str(backups)).replace("{data}", str(data)),
        schedule="*/15 * * * *",
        timeout_s=300,
    )
    run = continuity.run_backup(erin, SLUG, "greetings")
    drill = continuity_drills.run_drill(erin, SLUG)
    return f"backup {'ok' if run.ok else 'FAILED'}, restore drill {drill.status}; {_obeya_drill()}"


def _obeya_drill() -> str:
    """Obeya eats its own cooking: a restore drill of its own database."""
    from obeya.ops import continuity_database

    result = continuity_database.drill_obeya()
    with transaction.atomic():
        events.record(
            Actor(user=None, channel="cli"),
            "continuity.obeya_drilled",
            "obeya",
            {
                "passed": result.passed,
                "engine": result.engine,
                "duration_s": round(result.duration_s, 3),
                "detail": result.detail,
            },
        )
    verdict = "passed" if result.passed else "FAILED"
    return f"Obeya's own restore drill {verdict} ({result.detail})"
