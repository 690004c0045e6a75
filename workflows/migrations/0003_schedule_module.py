# The app's module was renamed from daytwo to workflows (its label, and so its tables, stayed
# "daytwo"). django-q2 finds a schedule's function by its dotted path, so a database that ran
# 0002 before the rename still names daytwo.tasks.due, which no longer imports: point it at the
# new module. A new database gets the new path from 0002 already; this changes nothing there.

from django.db import migrations

NAME = "daytwo: due"
OLD, NEW = "daytwo.tasks.due", "workflows.tasks.due"


def forward(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME, func=OLD).update(func=NEW)


def backward(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME, func=NEW).update(func=OLD)


class Migration(migrations.Migration):
    dependencies = [("daytwo", "0002_schedules")]

    operations = [migrations.RunPython(forward, backward)]
