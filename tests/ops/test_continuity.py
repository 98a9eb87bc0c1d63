"""Continuity: backups and drills prove recovery; `obeya backup` / `obeya restore` round-trip
Obeya's own database with every row intact, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import os
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.utils import timezone

from obeya.backlog import services as backlog
from obeya.catalog import services as catalog
from obeya.core.actors import Actor, system_actor
from obeya.core.clock import ManualClock
from obeya.core.errors import InvalidInput, PermissionDenied
from obeya.core.models import Event
from obeya.ops import continuity, continuity_drills, continuity_scheduler, continuity_status
from obeya.ops import continuity_logic as logic
from obeya.ops.continuity_models import BackupJob, BackupRun
from tests.conftest import actor
from tests.processes import clean_env, fresh_postgres_database, run_obeya

POSTGRES = os.environ.get("OBEYA_TEST_POSTGRES_URL", "")


@pytest.fixture
def rita(make_user):
    """A reliability engineer of "shop": may configure continuity and run drills."""
    user = make_user("rita")
    catalog.create_service(actor(user), "shop", "Shop")
    catalog.add_member(actor(user), "shop", "rita", "reliability_engineer")
    return user


def _at(user, clock: ManualClock) -> Actor:
    return Actor(user=user, channel="web", clock=clock)


def _writer(folder: Path, text: str = "orders 1-42") -> str:
    """A backup command that writes a real file and names it."""
    target = folder / "shop.backup"
    return f"printf '{text}' > {target} && echo OBEYA_BACKUP_FILE={target}"


# ---- backups and RPO ---------------------------------------------------------------------


def test_rpo_compliance_is_the_age_of_the_last_backup_that_really_succeeded(rita, tmp_path):
    clock = ManualClock(datetime(2027, 3, 1, 12, 0, tzinfo=UTC))
    me = _at(rita, clock)
    continuity.set_policy(me, "shop", rpo_s=3600)
    continuity.create_job(me, "shop", "nightly", command=_writer(tmp_path), schedule="0 * * * *")
    assert continuity_status.status(me, "shop").rpo.state == "no_backup"

    run = continuity.run_backup(me, "shop", "nightly")
    assert run.ok and run.exit_code == 0 and run.trigger == "manual"
    assert run.location == str(tmp_path / "shop.backup") and run.size_bytes == len("orders 1-42")

    clock.advance(timedelta(minutes=30))
    now = continuity_status.status(me, "shop")
    assert (now.rpo.state, now.rpo.age_s, now.rpo.rpo_s) == ("met", 1800, 3600)

    continuity.update_job(me, "shop", "nightly", command="echo disk full >&2; exit 4")
    clock.advance(timedelta(minutes=31))
    failed = continuity.run_backup(me, "shop", "nightly")
    assert failed.ok is False and failed.exit_code == 4 and "disk full" in failed.detail
    later = continuity_status.status(me, "shop")
    assert later.rpo.state == "breached" and later.rpo.age_s == 61 * 60
    assert later.last_backup == run and later.last_run == failed and later.flagged
    kinds = list(Event.objects.filter(service="shop").values_list("kind", flat=True))
    assert kinds.count("backup.succeeded") == 1 and kinds.count("backup.failed") == 1


def test_rpo_and_rto_come_from_the_operation_stories_unless_set_directly(rita):
    me = actor(rita)
    backlog.create_story(
        me, "shop", "operation", "Orders survive", details={"rpo_minutes": 15, "rto_minutes": 60}
    )
    service = catalog.get_service("shop")
    assert continuity.objectives(service) == continuity.Objectives(900, "S-1", 3600, "S-1")
    policy = continuity.set_policy(me, "shop", rto_s=600)
    assert continuity.objectives(service, policy) == continuity.Objectives(
        900, "S-1", 600, "set directly"
    )
    policy = continuity.set_policy(me, "shop", rto_s=None)
    assert continuity.objectives(service, policy).rto_source == "S-1"


def test_a_backup_that_exits_0_but_names_a_missing_or_empty_file_failed(rita, tmp_path):
    me = actor(rita)
    missing = tmp_path / "never-written"
    continuity.create_job(
        me, "shop", "liar", command=f"echo OBEYA_BACKUP_FILE={missing}", schedule="@daily"
    )
    run = continuity.run_backup(me, "shop", "liar")
    assert run.ok is False and "does not exist" in run.detail
    empty = tmp_path / "empty.backup"
    continuity.update_job(me, "shop", "liar", command=f": > {empty}; echo {empty}")
    run = continuity.run_backup(me, "shop", "liar")
    assert run.ok is False and run.size_bytes == 0 and "empty" in run.detail
    assert continuity_status.status(me, "shop").last_backup is None


def test_a_backup_that_hangs_is_killed_at_its_timeout(rita):
    me = actor(rita)
    continuity.create_job(me, "shop", "hangs", command="sleep 60", schedule="@hourly", timeout_s=1)
    run = continuity.run_backup(me, "shop", "hangs")
    assert run.ok is False and run.exit_code is None and "killed" in run.detail


@pytest.mark.django_db(transaction=True)
def test_a_due_backup_is_claimed_by_one_of_two_schedulers(rita, tmp_path):
    for number in range(12):
        continuity.create_job(
            actor(rita), "shop", f"b{number}", command="true", schedule="*/5 * * * *"
        )
    BackupJob.objects.update(next_due_at=timezone.now() - timedelta(seconds=1))

    def claim(_: int) -> list[str]:
        try:
            return [job.name for job in continuity_scheduler.claim_due(system_actor())]
        finally:
            connection.close()  # this thread's own connection

    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(claim, range(2))
    assert not set(first) & set(second)
    assert sorted(first + second) == sorted(f"b{n}" for n in range(12))
    assert continuity_scheduler.claim_due(system_actor()) == []  # next firing not yet due
    assert all(job.next_due_at > timezone.now() for job in BackupJob.objects.all())


def test_the_scheduler_runs_a_claimed_backup_and_lets_go_of_it(rita, tmp_path):
    clock = ManualClock(datetime(2027, 3, 1, 2, 59, 30, tzinfo=UTC))
    continuity.create_job(
        _at(rita, clock), "shop", "nightly", command=_writer(tmp_path), schedule="0 3 * * *"
    )
    assert continuity_scheduler.claim_due(system_actor(clock)) == []
    clock.advance(timedelta(seconds=31))
    (job,) = continuity_scheduler.claim_due(system_actor(clock))
    assert job.claimed_until is not None
    assert job.next_due_at == datetime(2027, 3, 2, 3, 0, tzinfo=UTC)
    continuity_scheduler.run_claimed(job, system_actor(clock))
    (run,) = BackupRun.objects.all()
    assert run.ok and run.trigger == "schedule" and run.job_name == "nightly"
    assert BackupJob.objects.get().claimed_until is None


def test_runs_and_drills_left_running_by_a_stopped_server_are_failed_later(rita):
    clock = ManualClock(timezone.now())
    me = _at(rita, clock)
    job = continuity.create_job(me, "shop", "nightly", command="true", schedule="@daily")
    BackupRun.objects.create(
        service=job.service, job=job, job_name="nightly", trigger="schedule",
        started_at=clock.now(), timeout_s=60,
    )  # fmt: skip
    assert continuity_scheduler.reap(system_actor(clock)) == 0
    clock.advance(timedelta(minutes=5))
    assert continuity_scheduler.reap(system_actor(clock)) == 1
    run = BackupRun.objects.get()
    assert run.ok is False and run.detail.startswith("lost")


# ---- restore drills ----------------------------------------------------------------------


def _drillable(me: Actor, folder: Path, **policy: object) -> None:
    continuity.create_job(me, "shop", "nightly", command=_writer(folder), schedule="@daily")
    continuity.run_backup(me, "shop", "nightly")
    continuity.set_policy(
        me,
        "shop",
        **{
            "restore_command": 'cp "$OBEYA_BACKUP_FILE" "$OBEYA_SCRATCH_DIR/restored"',
            "verify_command": 'grep -q "orders 1-42" "$OBEYA_SCRATCH_DIR/restored"',
            **policy,
        },
    )


def test_a_drill_restores_the_last_backup_into_scratch_and_verifies_it(rita, settings, tmp_path):
    me = actor(rita)
    _drillable(me, tmp_path, rto_s=3600)
    drill = continuity_drills.run_drill(me, "shop")
    assert (drill.number, drill.status, drill.rto_verdict) == (1, "passed", "within_rto")
    assert drill.restore_exit_code == 0 and drill.verify_exit_code == 0
    assert drill.backup_run == continuity_status.status(me, "shop").last_backup
    assert drill.duration_s is not None and drill.duration_s > 0
    assert not list((Path(settings.DATA_DIR) / "scratch").iterdir())  # scratch removed
    assert Event.objects.filter(kind="drill.passed", service="shop").count() == 1


def test_a_drill_whose_restore_command_fails_is_failed_never_passed(rita, tmp_path):
    me = actor(rita)
    _drillable(me, tmp_path, rto_s=3600, restore_command="echo no such backup >&2; exit 3")
    drill = continuity_drills.run_drill(me, "shop")
    assert drill.status == "failed" and drill.rto_verdict == "failed"
    assert drill.restore_exit_code == 3 and drill.verify_exit_code is None
    assert "restore command exited 3: no such backup" in drill.detail
    status = continuity_status.status(me, "shop")
    assert status.last_drill == drill and status.last_passed_drill is None
    assert status.drill_overdue  # never passed: flagged


def test_a_drill_whose_verify_fails_or_that_hangs_is_failed(rita, tmp_path):
    me = actor(rita)
    _drillable(me, tmp_path, verify_command="grep -q 'orders 1-43' \"$OBEYA_SCRATCH_DIR/restored\"")
    drill = continuity_drills.run_drill(me, "shop")
    assert (drill.status, drill.restore_exit_code, drill.verify_exit_code) == ("failed", 0, 1)
    continuity.set_policy(me, "shop", restore_command="sleep 60", drill_timeout_s=1)
    hung = continuity_drills.run_drill(me, "shop")
    assert hung.status == "failed" and hung.restore_exit_code is None and "killed" in hung.detail


def test_a_drill_that_cannot_make_its_scratch_directory_is_failed(rita, tmp_path, settings):
    me = actor(rita)
    _drillable(me, tmp_path)
    Path(settings.DATA_DIR).mkdir(parents=True, exist_ok=True)
    (Path(settings.DATA_DIR) / "scratch").write_text("a file where the directory goes")
    drill = continuity_drills.run_drill(me, "shop")
    assert drill.status == "failed" and "could not make a scratch directory" in drill.detail


def test_a_slow_drill_passes_but_is_over_the_rto(rita, tmp_path):
    me = actor(rita)
    _drillable(
        me,
        tmp_path,
        rto_s=1,
        restore_command='sleep 1.2 && cp "$OBEYA_BACKUP_FILE" "$OBEYA_SCRATCH_DIR/restored"',
    )
    drill = continuity_drills.run_drill(me, "shop")
    assert (drill.status, drill.rto_s, drill.rto_verdict) == ("passed", 1, "over_rto")


def test_a_service_is_flagged_when_its_last_passing_drill_is_too_old(rita, tmp_path):
    clock = ManualClock(timezone.now())
    me = _at(rita, clock)
    _drillable(me, tmp_path, max_drill_age_days=7, rpo_s=86400 * 30)
    continuity_drills.run_drill(me, "shop")
    clock.advance(timedelta(days=6))
    assert not continuity_status.status(me, "shop").drill_overdue
    clock.advance(timedelta(days=2))
    status = continuity_status.status(me, "shop")
    assert status.drill_overdue and status.flagged
    assert [s.slug for s in continuity_status.flagged_services(me)] == ["shop"]


def test_obeya_drill_service_prints_the_verdict_and_exits_1_when_it_failed(rita, tmp_path):
    from typer.testing import CliRunner

    from obeya.cli.main import app

    _drillable(actor(rita), tmp_path, restore_command="exit 3")
    result = CliRunner().invoke(app, ["drill", "shop", "--json"])
    assert result.exit_code == 1, result.output
    shown = json.loads(result.stdout)
    assert shown["status"] == "failed" and shown["restore_exit_code"] == 3


# ---- bad input and permissions -----------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"schedule": "61 * * * *"}, "schedule"),
        ({"schedule": "every night"}, "schedule"),
        ({"schedule": "* * * * * *"}, "schedule"),
        ({"schedule": "@fortnightly"}, "schedule"),
        ({"schedule": ""}, "schedule"),
        ({"command": "  "}, "command"),
        ({"timeout_s": 0}, "timeout_s"),
    ],
)
def test_a_bad_backup_job_is_refused_naming_the_field(rita, fields, field):
    settings = {"command": "true", "schedule": "@daily", **fields}
    with pytest.raises(InvalidInput) as refused:
        continuity.create_job(actor(rita), "shop", "nightly", **settings)
    assert refused.value.field == field and field in refused.value.message


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"rpo_s": 0}, "rpo_s"),
        ({"rpo_s": -60}, "rpo_s"),
        ({"rto_s": 0}, "rto_s"),
        ({"rto_s": 1.5}, "rto_s"),
        ({"max_drill_age_days": 0}, "max_drill_age_days"),
        ({"restore_command": "cp a b"}, "verify_command"),
        ({"recovery_point": 60}, "recovery_point"),
    ],
)
def test_a_bad_policy_is_refused_naming_the_field(rita, fields, field):
    with pytest.raises(InvalidInput) as refused:
        continuity.set_policy(actor(rita), "shop", **fields)
    assert refused.value.field == field


def test_a_drill_needs_a_restore_command_and_the_operate_permission(rita, make_user):
    with pytest.raises(InvalidInput) as refused:
        continuity_drills.run_drill(actor(rita), "shop")
    assert refused.value.field == "restore_command"
    make_user("dev")
    catalog.add_member(actor(rita), "shop", "dev", "developer")
    developer = actor(catalog.members(catalog.get_service("shop")).get(role="developer").user)
    with pytest.raises(PermissionDenied):
        continuity.set_policy(developer, "shop", rpo_s=60)
    with pytest.raises(PermissionDenied):
        continuity_drills.run_drill(developer, "shop")


# ---- rules -------------------------------------------------------------------------------


def test_schedules_are_read_in_the_server_time_zone_across_dst():
    berlin = ZoneInfo("Europe/Berlin")
    before_dst = datetime(2027, 3, 27, 12, 0, tzinfo=UTC)
    assert logic.next_due("0 3 * * *", before_dst, berlin) == datetime(
        2027, 3, 28, 1, 0, tzinfo=UTC
    )  # 03:00 CEST is 01:00 UTC
    assert logic.longest_gap_s("0 */6 * * *", before_dst, UTC) == 6 * 3600
    assert logic.schedule_problem_for_rpo(6 * 3600, 3600) is not None
    assert logic.schedule_problem_for_rpo(3600, 3600) is None


@pytest.mark.parametrize(
    ("output", "location", "size"),
    [
        ("dumping\nOBEYA_BACKUP_FILE=/b/x.dump\nOBEYA_BACKUP_SIZE=123\ndone\n", "/b/x.dump", 123),
        ("wrote\n/backups/x.tar.gz\n", "/backups/x.tar.gz", None),
        ("all good\n", "", None),
        ("OBEYA_BACKUP_SIZE=9\n", "", 9),
    ],
)
def test_what_a_backup_command_says_it_wrote(output, location, size):
    assert logic.backup_evidence(output) == logic.BackupEvidence(location, size)


def test_verdicts():
    now = datetime(2027, 1, 1, tzinfo=UTC)
    assert logic.rpo_verdict(None, None, now).state == "unset"
    assert logic.rpo_verdict(now - timedelta(hours=1), 3600, now).state == "met"
    assert logic.rpo_verdict(now - timedelta(seconds=3601), 3600, now).state == "breached"
    assert logic.rto_verdict(False, 0.1, 60) == "failed"
    assert logic.rto_verdict(True, 61, 60) == "over_rto"
    assert logic.rto_verdict(True, 1, None) == "no_rto"
    assert logic.drill_overdue(None, 30, now)
    assert not logic.drill_overdue(now - timedelta(days=30), 30, now)


# ---- Obeya's own database ----------------------------------------------------------------


def _sqlite_rows(path: Path) -> dict[str, object]:
    db = sqlite3.connect(path)
    try:
        tables = [
            name
            for (name,) in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        return {
            name: sorted(db.execute(f'SELECT * FROM "{name}"').fetchall(), key=repr)
            for name in tables
        }
    finally:
        db.close()


def _postgres_rows(url: str) -> dict[str, object]:
    import psycopg

    with psycopg.connect(url) as conn:
        tables = [
            name
            for (name,) in conn.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
            )
        ]
        return {
            name: sorted(conn.execute(f'SELECT * FROM "{name}"').fetchall(), key=repr)
            for name in tables
        }


def _one_line_refusal(result) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("obeya: ")
    return lines[0]


@pytest.mark.e2e
def test_obeya_backup_then_restore_into_a_fresh_data_dir_gives_identical_data(tmp_path):
    source = clean_env(tmp_path / "source")
    loaded = run_obeya("demo", env=source, timeout=180)
    assert loaded.returncode == 0, loaded.stderr
    backup = tmp_path / "obeya.backup"
    made = run_obeya("backup", str(backup), env=source)
    assert made.returncode == 0, made.stderr
    assert "backed up the sqlite database" in made.stdout
    assert oct(backup.stat().st_mode & 0o777) == "0o600"  # it holds secrets

    fresh = clean_env(tmp_path / "fresh")
    restored = run_obeya("restore", str(backup), env=fresh)
    assert restored.returncode == 0, restored.stderr
    before = _sqlite_rows(tmp_path / "source" / "obeya.sqlite3")
    after = _sqlite_rows(tmp_path / "fresh" / "obeya.sqlite3")
    assert len(before) > 40 and sum(len(rows) for rows in before.values()) > 100
    assert before == after

    again = _one_line_refusal(run_obeya("restore", str(backup), env=fresh))
    assert "already holds data" in again and "--force" in again
    assert run_obeya("restore", str(backup), "--force", env=fresh).returncode == 0

    drill = run_obeya("drill", "--self", "--json", env=source)
    assert drill.returncode == 0, drill.stderr
    report = json.loads(drill.stdout)
    assert report["passed"] and report["mismatches"] == [] and report["tables"] == len(before)


@pytest.mark.e2e
def test_restore_refuses_what_is_not_an_obeya_backup(tmp_path):
    env = clean_env(tmp_path / "data")
    junk = tmp_path / "notes.txt"
    junk.write_text("not a database")
    assert "not an Obeya backup" in _one_line_refusal(run_obeya("restore", str(junk), env=env))
    live = _one_line_refusal(run_obeya("backup", str(tmp_path / "data" / "obeya.sqlite3"), env=env))
    assert "live database" in live


@pytest.mark.e2e
@pytest.mark.skipif(not POSTGRES, reason="needs OBEYA_TEST_POSTGRES_URL")
def test_obeya_backup_then_restore_on_postgres_gives_identical_data(tmp_path):
    backup = tmp_path / "obeya.dump"
    with fresh_postgres_database(POSTGRES) as source_url:
        source = clean_env(tmp_path / "source", OBEYA_DATABASE_URL=source_url)
        assert run_obeya("migrate", env=source).returncode == 0
        loaded = run_obeya("demo", env=source, timeout=180)
        assert loaded.returncode == 0, loaded.stderr
        made = run_obeya("backup", str(backup), env=source)
        assert made.returncode == 0, made.stderr
        before = _postgres_rows(source_url)
        with fresh_postgres_database(POSTGRES) as target_url:
            target = clean_env(tmp_path / "target", OBEYA_DATABASE_URL=target_url)
            restored = run_obeya("restore", str(backup), env=target)
            assert restored.returncode == 0, restored.stderr
            assert _postgres_rows(target_url) == before
            refused = _one_line_refusal(run_obeya("restore", str(backup), env=target))
            assert "already holds data" in refused
            forced = run_obeya("restore", str(backup), "--force", env=target)
            assert forced.returncode == 0, forced.stderr
            assert _postgres_rows(target_url) == before
        assert sum(len(rows) for rows in before.values()) > 100


# ---- the sandbox -------------------------------------------------------------------------


def test_a_backup_command_sees_its_backup_folder_and_not_the_data_directory(
    rita, settings, tmp_path
):
    """A service master's backup command cannot read the database or the server's keys,
    even when an administrator opened a folder that holds the data directory."""
    settings.OBEYA_SANDBOX_WRITABLE = [str(Path(settings.DATA_DIR).parent)]
    me = actor(rita)
    data = Path(settings.DATA_DIR)
    secret = data / "obeya-test-secret.key"
    data.mkdir(parents=True, exist_ok=True)
    secret.write_text("the server's own key")
    try:
        command = (
            f"cat {secret} || echo key-closed; "
            'echo "orders 1-42" > "$OBEYA_BACKUP_DIR/shop.backup"; '
            'echo "OBEYA_BACKUP_FILE=$OBEYA_BACKUP_DIR/shop.backup"'
        )
        continuity.create_job(me, "shop", "nightly", command=command, schedule="@daily")
        run = continuity.run_backup(me, "shop", "nightly")
    finally:
        secret.unlink()
    assert "the server's own key" not in run.output_tail
    assert "key-closed" in run.output_tail
    assert run.ok, run.output_tail
    assert Path(run.location) == data / "backups" / "shop" / "shop.backup"


def test_with_server_commands_off_no_backup_command_runs(rita, settings, tmp_path):
    settings.OBEYA_SERVER_COMMANDS = False
    marker = tmp_path / "ran"
    me = actor(rita)
    continuity.create_job(me, "shop", "nightly", command=f"touch {marker}", schedule="@daily")
    run = continuity.run_backup(me, "shop", "nightly")
    assert run.ok is False and "OBEYA_SERVER_COMMANDS=off" in run.output_tail
    assert not marker.exists()
