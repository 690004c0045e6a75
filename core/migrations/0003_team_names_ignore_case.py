"""Team names (auth groups) are unique whatever their letter case: a unique index on LOWER(name).

Django's own unique constraint on ``auth_group.name`` lets ``TEAM-ALPHA`` sit beside
``team-alpha``; the Teams page refused that, the admin did not. The index is plain SQL that
SQLite and PostgreSQL both accept. An installation that already has such a pair cannot get the
index: the migration stops and names the pairs to rename first.
"""

from django.db import migrations

INDEX = "core_team_name_lower_unique"


def refuse_case_duplicates(apps, schema_editor) -> None:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT LOWER(name) FROM auth_group GROUP BY LOWER(name) HAVING COUNT(*) > 1 ORDER BY LOWER(name)"
        )
        clashing = [row[0] for row in cursor.fetchall()]
        if not clashing:
            return
        groups = []
        for lowered in clashing:
            cursor.execute("SELECT name FROM auth_group WHERE LOWER(name) = %s ORDER BY name", [lowered])
            groups.append(" and ".join(f"“{row[0]}”" for row in cursor.fetchall()))
    raise RuntimeError(
        "team names must differ in more than letter case, and these do: "
        + "; ".join(groups)
        + ". Rename all but one of each (admin, Groups), then run `manage.py migrate` again."
    )


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0002_worker_heartbeat"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.RunPython(refuse_case_duplicates, migrations.RunPython.noop),
        migrations.RunSQL(
            f"CREATE UNIQUE INDEX {INDEX} ON auth_group (LOWER(name))",
            f"DROP INDEX {INDEX}",
        ),
    ]
