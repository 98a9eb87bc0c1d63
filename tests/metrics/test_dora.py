"""The DORA formulas on a hand-built history with known answers (docs/metrics.md walks
through the same example), and properties that must hold for any history."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from obeya.metrics import dora
from obeya.metrics.dora import Record

WINDOW = (datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 1, 19, tzinfo=UTC))


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 1, day, hour, minute, tzinfo=UTC)


class History:
    def __init__(self) -> None:
        self.records: list[Record] = []

    def add(self, when: datetime, event: str, service: str = "shop", **data: object) -> None:
        self.records.append(Record(len(self.records) + 1, when, event, service, data))

    def deploy(
        self,
        number: int,
        start: datetime,
        end: datetime,
        *,
        release: str,
        previous: str,
        commits: tuple[tuple[str, datetime], ...] = (),
        outcome: str = "succeeded",
        kind: str = "deploy",
        tier: str = "production",
        service: str = "shop",
    ) -> None:
        common = {
            "deployment": number,
            "tier": tier,
            "kind": kind,
            "release": release,
            "previous_release": previous,
            "sha": commits[0][0] if commits else "",
        }
        self.add(start, "deployment.started", service, **common)
        if outcome == "rolled_back":
            self.add(
                end - timedelta(minutes=2), "deployment.failed", service, rolled_back=True, **common
            )
        listed = [{"sha": sha, "committed_at": when.isoformat()} for sha, when in commits]
        self.add(end, f"deployment.{outcome}", service, commits=listed, **common)


def worked_example() -> History:
    h = History()
    h.deploy(
        1, at(5, 10), at(5, 10, 10), release="r1", previous="", commits=(("c1", at(4, 10, 10)),)
    )
    h.deploy(
        2,
        at(6, 9),
        at(6, 9, 5),
        release="r2",
        previous="r1",
        commits=(("c2", at(6, 8, 5)), ("c3", at(5, 9, 5))),
    )
    h.deploy(3, at(7, 12), at(7, 12, 12), release="r3", previous="r2", outcome="rolled_back")
    h.deploy(
        4, at(8, 10), at(8, 10, 5), release="r4", previous="r2", commits=(("c4", at(8, 8, 5)),)
    )
    h.add(at(8, 11), "incident.opened", number=1, severity="sev2", source="manual")
    h.add(at(8, 11, 1), "incident.caused_by", number=1, deployment=4, tier="production")
    h.add(at(8, 11, 30), "incident.mitigated", number=1)
    h.deploy(
        5, at(8, 12), at(8, 12, 5), release="r5", previous="r4", commits=(("c5", at(8, 11, 50)),)
    )
    h.add(at(8, 13), "incident.resolved", number=1)
    h.deploy(6, at(13, 10), at(13, 10, 1), release="r4", previous="r5", kind="rollback")
    # neither counts for shop's production: another service, and a staging deployment
    h.deploy(
        7,
        at(9, 9),
        at(9, 9, 5),
        release="x1",
        previous="",
        service="other",
        commits=(("o1", at(1, 1)),),
    )
    h.deploy(
        8,
        at(9, 10),
        at(9, 10, 5),
        release="s1",
        previous="",
        tier="staging",
        commits=(("c9", at(9, 9)),),
    )
    return h


def test_the_worked_example_gives_the_documented_answers() -> None:
    result = dora.dora(worked_example().records, WINDOW, "shop")
    frequency = result.deployment_frequency
    assert frequency.value == pytest.approx(4 / 14)
    assert frequency.band == "high"
    assert frequency.evidence == (1, 2, 4, 5)
    assert frequency.detail["deployment_days"] == 3
    assert frequency.detail["share_of_weeks_with_3_deployment_days"] == 0.5

    lead = result.change_lead_time
    assert lead.value == 7200 and lead.detail["p90_s"] == 86400 and lead.band == "elite"
    assert lead.detail["commits"] == 5

    fail = result.change_fail_rate
    assert fail.value == pytest.approx(3 / 5) and fail.band == "low"
    assert sorted(fail.evidence) == [3, 4, 5]
    assert fail.detail["why"][5] == "rolled back by hand (deployment 6)"

    recovery = result.recovery_time
    assert recovery.value == 960 and recovery.detail["p90_s"] == 1800
    assert recovery.band == "elite"

    rework = result.rework_rate
    assert rework.value == pytest.approx(1 / 6) and rework.evidence == (5,)


def test_no_deployments_is_no_data_not_zero() -> None:
    result = dora.dora([], WINDOW, "shop")
    assert result.change_fail_rate.value is None
    assert result.change_lead_time.band == "no data"
    assert result.deployment_frequency.value == 0


@st.composite
def histories(draw: st.DrawFn) -> list[Record]:
    h = History()
    releases = ["r0"]
    for number in range(1, draw(st.integers(0, 12)) + 1):
        start = WINDOW[0] + timedelta(minutes=draw(st.integers(0, 20000)))
        end = start + timedelta(minutes=draw(st.integers(1, 60)))
        back = draw(st.integers(0, 5000))
        commits = ((f"c{number}", start - timedelta(minutes=back)),)
        kind = draw(st.sampled_from(["deploy", "deploy", "rollback"]))
        outcome = draw(st.sampled_from(["succeeded", "succeeded", "rolled_back"]))
        release = f"r{number}"
        h.deploy(
            number,
            start,
            end,
            release=release,
            previous=releases[-1],
            commits=commits,
            outcome=outcome,
            kind=kind,
            service=draw(st.sampled_from(["shop", "other"])),
        )
        releases.append(release)
        if draw(st.booleans()):
            h.add(end + timedelta(minutes=5), "incident.opened", number=number)
            h.add(
                end + timedelta(minutes=6), "incident.caused_by", number=number, deployment=number
            )
            h.add(
                end + timedelta(minutes=draw(st.integers(7, 500))),
                "incident.resolved",
                number=number,
            )
    return h.records


def _values(result: dora.Dora) -> tuple[object, ...]:
    return tuple(
        (number.value, number.evidence)
        for number in (
            result.deployment_frequency,
            result.change_lead_time,
            result.change_fail_rate,
            result.recovery_time,
            result.rework_rate,
        )
    )


@settings(max_examples=60, deadline=None)
@given(histories(), st.randoms(use_true_random=False))
def test_properties_of_any_history(records: list[Record], rng: random.Random) -> None:
    result = dora.dora(records, WINDOW, "shop")
    for rate in (result.change_fail_rate.value, result.rework_rate.value):
        assert rate is None or 0.0 <= rate <= 1.0
    assert all(
        value >= 0
        for value in (result.change_lead_time.value, result.recovery_time.value)
        if value is not None
    )
    shuffled = records[:]
    rng.shuffle(shuffled)
    assert _values(dora.dora(shuffled, WINDOW, "shop")) == _values(result)
    others = [r for r in records if r.service != "shop"]
    only_shop = [r for r in records if r.service == "shop"]
    assert _values(dora.dora(only_shop, WINDOW, "shop")) == _values(result)
    assert _values(dora.dora(only_shop + others + others, WINDOW, "shop")) == _values(result)


def test_an_automatic_rollback_recovers_from_the_moment_the_bad_release_went_live() -> None:
    """The deployer records ``deployment.failed`` and ``deployment.rolled_back`` together at
    the end; users had the failed release from its switch on."""
    h = History()
    common = {"deployment": 7, "tier": "production", "kind": "deploy", "release": "r7"}
    h.add(at(6, 10, 0), "deployment.started", **common)
    h.add(at(6, 10, 1), "deployment.switched", **common)
    h.add(at(6, 10, 4), "deployment.failed", rolled_back=True, **common)
    h.add(at(6, 10, 4), "deployment.rolled_back", **common)
    recovery = dora.dora(h.records, WINDOW).recovery_time
    assert recovery.value == 180  # 10:01 → 10:04
    assert recovery.evidence == ("deployment 7",)
