from django.db import migrations, models


class Migration(migrations.Migration):
    """Loopback URLs of local environments an administrator approved (obeya.deploy.reach).
    Nothing is approved by this migration: a loopback health URL saved before it was never
    checked, so an administrator approves it by saving the environment once."""

    dependencies = [
        ("deploy", "0003_deployment_approval_rules"),
    ]

    operations = [
        migrations.AddField(
            model_name="environment",
            name="approved_origins",
            field=models.JSONField(blank=True, default=list),
        ),
    ]
