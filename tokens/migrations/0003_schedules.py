# The token sweep and the cluster sync run as django-q2 schedules (every minute; each pass only
# touches what is due).

from django.db import migrations

SCHEDULES = [
    ("tokens: sweep", "tokens.tasks.sweep", "Token policies, rotations, retirements, expiries, certificate keys"),
    ("tokens: sync", "tokens.tasks.sync_due", "Compare due clusters' token Secrets with Kubeboard's rows"),
]


def create(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    for name, func, _ in SCHEDULES:
        Schedule.objects.update_or_create(
            name=name, defaults={"func": func, "schedule_type": "I", "minutes": 1, "repeats": -1}
        )


def remove(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.filter(name__in=[name for name, _, _ in SCHEDULES]).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("tokens", "0002_lifecycle"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create, remove)]
