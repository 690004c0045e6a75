# How a deleted token ended (tokens.vocabulary), so a token used for a join shows "consumed" and one
# replaced by its successor "retired" instead of every deleted token showing "revoked".

import datetime

from django.db import migrations, models

# Before this field, the reason text and node_joined_at were the only trace of how a token ended;
# the sweep wrote these exact reasons (tokens/sweeps.py).
RETIRED_PREFIX = "rotated; successor "
LIFETIME_REASON = "reached the hard maximum lifetime"


def backfill(apps, schema_editor):
    BootstrapToken = apps.get_model("tokens", "BootstrapToken")
    ended = BootstrapToken.objects.filter(status="revoked", ended_as="")
    ended.filter(node_joined_at__isnull=False).update(ended_as="consumed")
    ended.filter(ended_as="", revoke_reason__startswith=RETIRED_PREFIX).update(ended_as="retired")
    ended.filter(ended_as="", revoke_reason=LIFETIME_REASON).update(ended_as="lifetime-ended")
    BootstrapToken.objects.filter(status="revoked", ended_as="").update(ended_as="revoked")


class Migration(migrations.Migration):
    dependencies = [
        ("tokens", "0003_schedules"),
    ]

    operations = [
        migrations.AddField(
            model_name="bootstraptoken",
            name="ended_as",
            field=models.CharField(blank=True, max_length=16),
        ),
        migrations.AlterField(
            model_name="tokenpolicy",
            name="rotate_before",
            field=models.DurationField(
                default=datetime.timedelta(seconds=7200),
                help_text="A token marked for rotation gets its successor this long before it expires.",
                verbose_name="rotate before expiry",
            ),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
