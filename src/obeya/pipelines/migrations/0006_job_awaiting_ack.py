from django.db import migrations, models


class Migration(migrations.Migration):
    """Jobs handed to a runner wait for its first call (RELIABILITY A3): a running job
    from before this migration was already heard from, so it starts as acknowledged."""

    dependencies = [
        ("pipelines", "0005_protected_scoped_sealed_secrets"),
    ]

    operations = [
        migrations.AddField(
            model_name="job",
            name="awaiting_ack",
            field=models.BooleanField(default=False),
        ),
    ]
