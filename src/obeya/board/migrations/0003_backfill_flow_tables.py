"""Fold every service's story events into the stored flow tables (board.flow_store)."""

from typing import Any

from django.db import migrations


def backfill(apps: Any, schema_editor: Any) -> None:
    from django.utils import timezone

    from obeya.board import flow, flow_store

    event = apps.get_model("core", "Event")
    column = apps.get_model("board", "Column")
    tables = flow_store.Tables(
        apps.get_model("board", "BoardState"),
        apps.get_model("board", "FlowStory"),
        apps.get_model("board", "FlowDay"),
    )
    with_history = (
        event.objects.filter(kind__in=(flow.CREATED, flow.MOVED))
        .values_list("service", flat=True)
        .distinct()
    )
    for service in apps.get_model("catalog", "Service").objects.filter(slug__in=with_history):
        flow_store.refold(
            tables,
            service.pk,
            service.slug,
            flow_store.first_column(service.pk, column),
            timezone.get_default_timezone(),
            log=event.objects.order_by("id"),
        )


class Migration(migrations.Migration):
    dependencies = [
        ("board", "0002_flow_tables"),
        ("core", "0002_event_append_only"),
    ]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
