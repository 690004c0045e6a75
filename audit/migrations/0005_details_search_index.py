"""PostgreSQL: a trigram index for the history's detail search (substring, case-insensitive).

Needs the pg_trgm extension (a trusted extension: a database owner may create it). Without the
privilege the search still works, by scanning; the migration says so and goes on. SQLite scans.
"""

from django.db import migrations

INDEX = "audit_details_trgm"


def create(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
        if cursor.fetchone() is None:
            try:
                cursor.execute("SAVEPOINT audit_trgm")
                cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
                cursor.execute("RELEASE SAVEPOINT audit_trgm")
            except Exception as exc:  # no privilege: search scans instead
                cursor.execute("ROLLBACK TO SAVEPOINT audit_trgm")
                print(f"\n  audit: pg_trgm unavailable ({exc}); detail search will scan the table")
                return
        cursor.execute(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON audit_auditevent USING gin ((details::text) gin_trgm_ops)"
        )


def remove(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):

    dependencies = [("audit", "0004_checkpoint_schedule")]

    operations = [migrations.RunPython(create, remove)]
