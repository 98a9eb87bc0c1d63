"""A deployment that rolls back opens an incident linked to it, once."""

from __future__ import annotations

from obeya.deploy import deployer
from obeya.ops import reactor
from obeya.ops import services as ops
from tests.deploy.conftest import Shop


def test_a_rolled_back_deployment_opens_an_incident_with_its_cause(shop: Shop) -> None:
    shop.build("1.0.0")
    assert deployer.work_once().status == "succeeded"
    shop.commit("break")
    shop.build("2.0.0", status="broken")
    failed = deployer.work_once()
    assert failed.status == "rolled_back"
    # the failed deploy job turned main red, which pulled the andon: two incidents
    assert reactor.react() == 2
    assert reactor.react() == 0  # each event opens at most one incident
    by_source = {incident.source: incident for incident in ops.list_incidents("shop")}
    assert set(by_source) == {"deployment", "andon"}
    incident = by_source["deployment"]
    assert "rolled back" in incident.title
    assert ops.causes_of(incident) == [failed.pk]
    assert incident.severity == "sev4"  # staging: users were not hurt
