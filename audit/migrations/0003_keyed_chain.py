"""Keyed chain: HMAC per record, correlation ids, outcome, snapshots, checkpoints, triggers.

Records written before this migration keep their plain SHA-256 hash (``key_id`` empty); they
are numbered (``seq``) in id order and one keyed ``audit.chain_upgraded`` record is appended
whose MAC covers their head, so from then on rewriting them is detected like any other.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def seal_legacy(apps, schema_editor):
    from audit.chain import seal_legacy_chain

    seal_legacy_chain(apps.get_model("audit", "AuditEvent"), apps.get_model("audit", "AuditChainHead"))


def install_triggers(apps, schema_editor):
    from audit.triggers import install

    install(apps, schema_editor)


def remove_triggers(apps, schema_editor):
    from audit.triggers import remove

    remove(apps, schema_editor)


class Migration(migrations.Migration):

    dependencies = [
        ("audit", "0002_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("clusters", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="auditevent",
            name="actor",
            field=models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name="+", to=settings.AUTH_USER_MODEL),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="cluster",
            field=models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name="audit_events", to="clusters.cluster"),
        ),
        migrations.AlterField(model_name="auditevent", name="action", field=models.CharField(max_length=64)),
        migrations.AddField(model_name="auditevent", name="seq", field=models.BigIntegerField(null=True)),
        migrations.AddField(model_name="auditevent", name="outcome", field=models.CharField(choices=[("success", "Succeeded"), ("failure", "Failed"), ("denied", "Refused")], default="success", max_length=16)),
        migrations.AddField(
            model_name="auditevent",
            name="team",
            field=models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name="+", to="auth.group"),
        ),
        migrations.AddField(model_name="auditevent", name="changes", field=models.JSONField(blank=True, default=dict)),
        migrations.AddField(model_name="auditevent", name="request_id", field=models.CharField(blank=True, default="", max_length=64, verbose_name="correlation id"), preserve_default=False),
        migrations.AddField(model_name="auditevent", name="source", field=models.CharField(blank=True, default="", max_length=120), preserve_default=False),
        migrations.AddField(model_name="auditevent", name="source_address", field=models.CharField(blank=True, default="", max_length=45), preserve_default=False),
        migrations.AddField(model_name="auditevent", name="user_agent", field=models.CharField(blank=True, default="", max_length=300), preserve_default=False),
        migrations.AddField(model_name="auditevent", name="key_id", field=models.CharField(blank=True, default="", max_length=32), preserve_default=False),
        migrations.AddField(model_name="auditchainhead", name="key_id", field=models.CharField(blank=True, default="", max_length=32), preserve_default=False),
        migrations.AddField(model_name="auditchainhead", name="mac", field=models.CharField(blank=True, default="", max_length=64), preserve_default=False),
        migrations.RunPython(seal_legacy, migrations.RunPython.noop),
        migrations.AlterField(model_name="auditevent", name="seq", field=models.BigIntegerField(unique=True)),
        migrations.AddIndex(model_name="auditevent", index=models.Index(fields=["action", "-id"], name="audit_action_id")),
        migrations.AddIndex(model_name="auditevent", index=models.Index(fields=["actor_name", "-id"], name="audit_actor_id")),
        migrations.AddIndex(model_name="auditevent", index=models.Index(fields=["object_type", "object_id", "-id"], name="audit_object_id")),
        migrations.AddIndex(model_name="auditevent", index=models.Index(fields=["outcome", "-id"], name="audit_outcome_id")),
        migrations.AddIndex(model_name="auditevent", index=models.Index(fields=["request_id"], name="audit_request")),
        migrations.AddIndex(model_name="auditevent", index=models.Index(fields=["team", "-id"], name="audit_team_id")),
        migrations.CreateModel(
            name="AuditCheckpoint",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("seq", models.BigIntegerField()),
                ("head", models.CharField(max_length=64)),
                ("created", models.DateTimeField()),
                ("public_key", models.CharField(max_length=100)),
                ("signature", models.CharField(max_length=100)),
                ("reason", models.CharField(default="on demand", max_length=32)),
            ],
            options={"ordering": ["-seq", "-id"]},
        ),
        # Last, after every table rebuild SQLite does above: the triggers live on the final table.
        migrations.RunPython(install_triggers, remove_triggers),
    ]
