"""A deployment keeps the approval rules it was requested under (issue #13, gates).

Deployments already recorded take their environment's rules as they stand at the upgrade:
the only rules anyone can still know for them.
"""

from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def copy_rules(apps, schema_editor):
    Deployment = apps.get_model("deploy", "Deployment")
    Environment = apps.get_model("deploy", "Environment")
    of_its_environment = Environment.objects.filter(pk=OuterRef("environment_id"))
    Deployment.objects.update(
        required_approvals=Subquery(of_its_environment.values("required_approvals")[:1]),
        approval_role=Subquery(of_its_environment.values("approval_role")[:1]),
    )


class Migration(migrations.Migration):
    dependencies = [("deploy", "0002_deployment_serving_index")]

    operations = [
        migrations.AddField(
            model_name="deployment",
            name="required_approvals",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="deployment",
            name="approval_role",
            field=models.CharField(blank=True, max_length=32),
        ),
        migrations.RunPython(copy_rules, migrations.RunPython.noop),
    ]
