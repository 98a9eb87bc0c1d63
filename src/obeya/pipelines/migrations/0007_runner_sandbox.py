"""What a runner's jobs run in, as the runner says when it claims."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("pipelines", "0006_job_awaiting_ack")]
    operations = [
        migrations.AddField(
            model_name="runner",
            name="sandbox",
            field=models.CharField(blank=True, max_length=20),
        ),
    ]
