"""A webhook channel's URL is sealed as well (obeya.core.crypto): a chat webhook's path is
the password that lets anyone post to it. People see only its scheme and host."""

from django.db import migrations, models

from obeya.core import crypto


def seal_existing(apps, schema_editor):
    channels = apps.get_model("ops", "Channel").objects
    for pk, plain in list(channels.exclude(url="").values_list("pk", "url")):
        channels.filter(pk=pk).update(url=crypto.seal(plain))


def unseal_existing(apps, schema_editor):
    channels = apps.get_model("ops", "Channel").objects
    for pk, token in list(channels.exclude(url="").values_list("pk", "url")):
        channels.filter(pk=pk).update(url=crypto.unseal(token))


class Migration(migrations.Migration):
    dependencies = [
        ("ops", "0005_channel_secret_sealed"),
    ]

    operations = [
        migrations.AlterField(
            model_name="channel",
            name="url",
            field=models.TextField(blank=True),
        ),
        migrations.RunPython(seal_existing, unseal_existing),
    ]
