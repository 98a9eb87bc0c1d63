from obeya.core.models import Event


def test_health_answers_without_auth(client, db):
    response = client.get("/api/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] in {"sqlite", "postgresql"}


def test_create_service_and_read_it_back(alice, api_for):
    api = api_for(alice)
    created = api.post("/services", {"slug": "payments", "name": "Payments"})
    assert created.status_code == 201, created.body
    assert created.body["members"] == [
        {
            "username": "alice",
            "role": "service_master",
            "since": created.body["members"][0]["since"],
        }
    ]
    shown = api.get("/services/payments")
    assert shown.body["stage"] == "strategy"
    assert Event.objects.filter(kind="service.created", service="payments").count() == 1
