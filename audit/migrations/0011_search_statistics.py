"""PostgreSQL: the detail search's trigram index (0005) gets a larger statistics sample.

The planner chooses between two plans for a page of a detail search: walk the id index and
test each record (fast for a common term), or collect every match through the trigram index
and sort (fast for a rare one). It guesses how common the term is from the sampled details;
with the default sample a term in 2 % of the records was often guessed rare, and its first page
read 20,000 rows (about a second with a million records). 2,000 histogram entries make the
guess good for any term in more than about 0.25 % of the records.

Also creates the index if 0005 could not (pg_trgm was missing then and was installed since).
No-op on SQLite. ANALYZE reads a sample of up to 600,000 records (about a minute for a million).
"""

from django.db import migrations

INDEX = "audit_details_trgm"
STATISTICS = 2000


def forward(apps, schema_editor):
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
            except Exception as exc:  # no privilege: the search scans instead
                cursor.execute("ROLLBACK TO SAVEPOINT audit_trgm")
                print(
                    f"\n  audit: pg_trgm is not installed and this role may not install it ({exc}); the "
                    "history's detail search will scan the table. Fix: as a superuser, CREATE EXTENSION pg_trgm; "
                    "in this database, then: manage.py migrate audit 0010 && manage.py migrate"
                )
                return
        cursor.execute(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON audit_auditevent USING gin ((details::text) gin_trgm_ops)"
        )
        cursor.execute(f"ALTER INDEX {INDEX} ALTER COLUMN 1 SET STATISTICS {STATISTICS}")
        cursor.execute("ANALYZE audit_auditevent")


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(f"SELECT 1 FROM pg_class WHERE relname = '{INDEX}'")
            if cursor.fetchone() is not None:
                cursor.execute(f"ALTER INDEX {INDEX} ALTER COLUMN 1 SET STATISTICS -1")


class Migration(migrations.Migration):
    dependencies = [("audit", "0010_staged_records")]

    operations = [migrations.RunPython(forward, backward)]
