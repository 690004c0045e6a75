# Signed checkpoints on a django-q2 schedule: the task runs every 5 minutes and signs one when
# records were added and the last checkpoint is older than KUBEBOARD_AUDIT_CHECKPOINT_MINUTES.

from django.db import migrations

NAME = "audit: checkpoint"


def create(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name=NAME,
        defaults={"func": "audit.checkpoints.scheduled_checkpoint", "schedule_type": "I", "minutes": 5, "repeats": -1},
    )


def remove(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("audit", "0003_keyed_chain"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create, remove)]
