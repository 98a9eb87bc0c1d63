"""The continuity panel of the Operations tab: real RPO/RTO figures from a real backup run and
a real restore drill, the buttons that run them, and the policy form. Refusals show beside
their button or form with the refusal's own status, never a 500."""

from __future__ import annotations

import html as markup
from collections.abc import Callable
from pathlib import Path

import pytest
from django.test import Client

from obeya.backlog import services as backlog
from obeya.catalog import services as catalog
from obeya.core.models import User
from obeya.ops import continuity, continuity_drills, continuity_views, views
from tests.conftest import PASSWORD, actor

TAB = "/services/shop/operations/"
ACTIONS = TAB + "continuity/"


@pytest.fixture
def rita(make_user: Callable[..., User]) -> User:
    """The reliability engineer of "shop": may set the policy, back up and run drills."""
    user = make_user("rita")
    catalog.create_service(actor(user), "shop", "Shop")
    catalog.add_member(actor(user), "shop", "rita", "reliability_engineer")
    return user


@pytest.fixture
def dave(rita: User, make_user: Callable[..., User]) -> User:
    """A developer of "shop": reads the panel, may not run backups or drills."""
    user = make_user("dave")
    catalog.add_member(actor(rita), "shop", "dave", "developer")
    return user


def signed_in(user: User) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def panel_of(response) -> str:
    page = markup.unescape(response.content.decode())
    start = page.index('id="continuity"')
    return page[start : page.index("</section>", start)]


def proven(rita: User, folder: Path) -> None:
    """RPO/RTO from an operation story, a job that writes a real file, one real backup and
    one real drill that restores and verifies it."""
    me = actor(rita)
    backlog.create_story(
        me, "shop", "operation", "Orders survive", details={"rpo_minutes": 15, "rto_minutes": 60}
    )
    target = folder / "orders.backup"
    continuity.create_job(
        me,
        "shop",
        "orders",
        command=f"printf 'orders 1-42' > {target} && echo OBEYA_BACKUP_FILE={target}",
        schedule="0 * * * *",
    )
    continuity.set_policy(
        me,
        "shop",
        restore_command='cp "$OBEYA_BACKUP_FILE" "$OBEYA_SCRATCH_DIR/orders"',
        verify_command='grep -q "orders 1-42" "$OBEYA_SCRATCH_DIR/orders"',
    )
    assert continuity.run_backup(me, "shop", "orders").ok
    assert continuity_drills.run_drill(me, "shop").status == "passed"


def test_the_panel_is_registered_once_on_the_tab() -> None:
    assert views.PANELS.count(continuity_views.panel) == 1


def test_the_panel_shows_real_figures_from_a_real_backup_and_drill(
    rita: User, tmp_path: Path
) -> None:
    proven(rita, tmp_path)
    response = signed_in(rita).get(TAB)
    assert response.status_code == 200
    panel = panel_of(response)
    rpo = panel[panel.index('data-testid="rpo"') :]
    assert "15 min" in rpo[:400] and 'href="/services/shop/backlog/S-1/"' in rpo[:600]
    rto = panel[panel.index('data-testid="rto"') :]
    assert "60 min" in rto[:400] and "S-1" in rto[:600]
    assert str(tmp_path / "orders.backup") in panel and "11\xa0bytes" in panel
    assert "✓</span> RPO met" in panel and "left before the RPO is breached" in panel
    drill = panel[panel.index('data-drill="1"') :]
    assert "✓</span> passed, within the RTO" in drill and "restored and verified in" in drill
    assert "60 min" in drill  # the RTO the drill was timed against
    assert 'data-testid="drill-fresh"' in panel and "drill-overdue" not in panel
    job = panel[panel.index('data-backup-job="orders"') :]
    assert "0 * * * *" in job and "✓ succeeded" in job and "(in " in job
    for form in ("Back up now with orders", "Run a restore drill", "Continuity policy"):
        assert f'aria-label="{form}"' in panel


def test_no_backup_yet_and_no_drill_are_said_in_words(rita: User) -> None:
    continuity.set_policy(actor(rita), "shop", rpo_s=3600)
    panel = panel_of(signed_in(rita).get(TAB))
    assert "✗</span> no backup yet" in panel
    assert "Restore drill overdue:" in panel and "no drill has passed yet" in panel
    assert "⚠ No enabled backup job: nothing keeps the RPO." in panel
    assert "Set a restore command and a verify command" in panel


def test_back_up_now_and_run_a_drill_from_the_panel(rita: User, tmp_path: Path) -> None:
    proven(rita, tmp_path)
    web = signed_in(rita)
    response = web.post(ACTIONS + "backup-jobs/orders/run/", follow=True)
    assert response.redirect_chain[-1][0].endswith("#backup-job-orders")
    assert "Backup orders succeeded at " in markup.unescape(response.content.decode())
    assert [run.trigger for run in continuity.list_runs("shop")] == ["manual", "manual"]
    response = web.post(ACTIONS + "drills/", follow=True)
    page = markup.unescape(response.content.decode())
    assert "Restore drill 2 passed, within the RTO" in page
    assert 'data-drill="2"' in panel_of(response)


def test_a_failed_backup_is_shown_as_failed_and_kept(rita: User, tmp_path: Path) -> None:
    proven(rita, tmp_path)
    continuity.update_job(actor(rita), "shop", "orders", command="echo disk full >&2; exit 4")
    response = signed_in(rita).post(ACTIONS + "backup-jobs/orders/run/", follow=True)
    page = markup.unescape(response.content.decode())
    assert "Backup orders failed: exit code 4: disk full" in page
    panel = panel_of(response)
    assert 'data-testid="failed-backup"' in panel and "✗ failed" in panel
    assert "✓</span> RPO met" in panel  # the earlier good backup still counts


def test_a_developer_is_refused_beside_the_button_and_nothing_runs(
    rita: User, dave: User, tmp_path: Path
) -> None:
    proven(rita, tmp_path)
    web = signed_in(dave)
    panel = panel_of(web.get(TAB))
    assert "✓</span> RPO met" in panel  # a developer reads the panel …
    for form in ("Back up now with orders", "Run a restore drill", "Continuity policy"):
        assert f'aria-label="{form}"' not in panel  # … without its buttons

    response = web.post(ACTIONS + "backup-jobs/orders/run/")
    assert response.status_code == 403
    job = panel_of(response)[panel_of(response).index('data-backup-job="orders"') :]
    refusal = job[job.index('data-testid="backup-refused"') :][:300]
    assert "dave may not ops.operate" in refusal and "operator" in refusal
    assert len(continuity.list_runs("shop")) == 1

    response = web.post(ACTIONS + "drills/")
    assert response.status_code == 403
    assert "dave may not ops.operate" in panel_of(response)
    assert len(continuity_drills.list_drills("shop")) == 1

    response = web.post(ACTIONS + "policy/", {"rpo_minutes": "5"})
    assert response.status_code == 403 and "may not ops.configure" in panel_of(response)


def test_refusals_for_someone_allowed_are_pages_not_errors(rita: User) -> None:
    web = signed_in(rita)
    response = web.post(ACTIONS + "drills/")
    assert response.status_code == 400
    assert "set its restore_command and verify_command first" in panel_of(response)
    response = web.post(ACTIONS + "backup-jobs/nightly/run/")
    assert response.status_code == 404
    assert '"shop" has no backup job "nightly"' in panel_of(response)
    assert web.post("/services/nope/operations/continuity/drills/").status_code == 404


def test_the_policy_form_keeps_what_was_typed_when_refused(rita: User) -> None:
    web = signed_in(rita)
    typed = {
        "rpo_minutes": "soon",
        "rto_minutes": "45",
        "max_drill_age_days": "14",
        "restore_command": 'tar xzf "$OBEYA_BACKUP_FILE" -C "$OBEYA_SCRATCH_DIR"',
        "verify_command": "",
    }
    response = web.post(ACTIONS + "policy/", typed)
    assert response.status_code == 400
    panel = panel_of(response)
    assert "RPO: minutes, more than 0" in panel and "'soon'" in panel
    assert 'name="rpo_minutes" inputmode="decimal" value="soon"' in panel
    assert 'value="soon" placeholder="15" aria-invalid="true"' in panel
    assert 'value="45"' in panel and 'value="14"' in panel
    assert typed["restore_command"] in panel and '<details class="form-details" open>' in panel
    assert continuity.get_policy("shop") is None  # nothing saved

    response = web.post(ACTIONS + "policy/", {**typed, "rpo_minutes": "10"})
    assert response.status_code == 400
    panel = panel_of(response)
    assert "verify_command: a restore drill needs a command" in panel
    assert 'name="verify_command" class="mono" rows="2" aria-invalid="true"' in panel
    assert 'value="10"' in panel and typed["restore_command"] in panel
    assert continuity.get_policy("shop") is None


def test_the_policy_form_sets_objectives_and_blank_hands_them_back_to_the_stories(
    rita: User,
) -> None:
    backlog.create_story(
        actor(rita), "shop", "operation", "Orders survive", details={"rpo_minutes": 15}
    )
    web = signed_in(rita)
    response = web.post(
        ACTIONS + "policy/",
        {"rpo_minutes": "", "rto_minutes": "90", "max_drill_age_days": "7"},
        follow=True,
    )
    page = markup.unescape(response.content.decode())
    assert "Continuity policy saved: RPO 15 min (S-1), RTO 90 min (set directly)." in page
    policy = continuity.get_policy("shop")
    assert policy is not None
    assert (policy.rpo_s, policy.rto_s, policy.max_drill_age_days) == (None, 5400, 7)
    panel = panel_of(response)
    rto = panel[panel.index('data-testid="rto"') :][:400]
    assert "90 min" in rto and "set directly" in rto
    assert 'name="rto_minutes" inputmode="decimal" value="90"' in panel
