"""Secrets: protected and environment-scoped; secret values and webhook secrets sealed
(encrypted under the key file, obeya.core.crypto); protected refs; replay-proof generic
webhook signatures."""

import django.db.models.deletion
from django.db import migrations, models

from obeya.core import crypto


def seal_existing(apps, schema_editor):
    """Encrypt the values stored in plain text before this migration."""
    for model, field in (("Secret", "value"), ("Pipeline", "webhook_secret")):
        manager = apps.get_model("pipelines", model).objects
        for pk, plain in list(manager.exclude(**{field: ""}).values_list("pk", field)):
            manager.filter(pk=pk).update(**{field: crypto.seal(plain)})


def unseal_existing(apps, schema_editor):
    for model, field in (("Secret", "value"), ("Pipeline", "webhook_secret")):
        manager = apps.get_model("pipelines", model).objects
        for pk, token in list(manager.exclude(**{field: ""}).values_list("pk", field)):
            manager.filter(pk=pk).update(**{field: crypto.unseal(token)})


class Migration(migrations.Migration):
    dependencies = [
        ("catalog", "0001_initial"),
        ("pipelines", "0004_run_blocked"),
    ]

    operations = [
        migrations.CreateModel(
            name="WebhookSignature",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("digest", models.CharField(max_length=64)),
                ("delivery_id", models.CharField(max_length=200)),
                ("seen_at", models.DateTimeField(db_index=True)),
                (
                    "service",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="catalog.service",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("service", "digest"), name="pipelines_signature_once"
                    )
                ],
            },
        ),
        migrations.AlterModelOptions(
            name="secret",
            options={"ordering": ["name", "environment"]},
        ),
        migrations.RemoveConstraint(
            model_name="secret",
            name="pipelines_secret_name",
        ),
        migrations.AddField(
            model_name="pipeline",
            name="protected_branches",
            field=models.JSONField(default=list, help_text="glob patterns of branches"),
        ),
        migrations.AddField(
            model_name="pipeline",
            name="protected_tags",
            field=models.JSONField(default=list, help_text="glob patterns of tags"),
        ),
        migrations.AddField(
            model_name="run",
            name="tag",
            field=models.CharField(blank=True, max_length=255),
        ),
        migrations.AddField(
            model_name="secret",
            name="environment",
            field=models.CharField(blank=True, max_length=63),
        ),
        migrations.AddField(
            model_name="secret",
            name="protected",
            field=models.BooleanField(default=False),
        ),
        migrations.AlterField(
            model_name="pipeline",
            name="webhook_secret",
            field=models.TextField(blank=True),
        ),
        migrations.AddConstraint(
            model_name="secret",
            constraint=models.UniqueConstraint(
                fields=("service", "name", "environment"), name="pipelines_secret_scope"
            ),
        ),
        migrations.RunPython(seal_existing, unseal_existing),
    ]
