"""A notification channel's secret is sealed (encrypted under the key file,
obeya.core.crypto); the column grows to hold the Fernet token."""

from django.db import migrations, models

from obeya.core import crypto


def seal_existing(apps, schema_editor):
    """Encrypt the secrets stored in plain text before this migration."""
    channels = apps.get_model("ops", "Channel").objects
    for pk, plain in list(channels.exclude(secret="").values_list("pk", "secret")):
        channels.filter(pk=pk).update(secret=crypto.seal(plain))


def unseal_existing(apps, schema_editor):
    channels = apps.get_model("ops", "Channel").objects
    for pk, token in list(channels.exclude(secret="").values_list("pk", "secret")):
        channels.filter(pk=pk).update(secret=crypto.unseal(token))


class Migration(migrations.Migration):
    dependencies = [
        ("ops", "0004_notifications"),
    ]

    operations = [
        migrations.AlterField(
            model_name="channel",
            name="secret",
            field=models.TextField(blank=True),
        ),
        migrations.RunPython(seal_existing, unseal_existing),
    ]
