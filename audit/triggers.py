"""Database triggers that refuse UPDATE and DELETE of audit rows, whoever sends them.

PostgreSQL: a row trigger raises. SQLite: a trigger raises unless the guard function
``kubeboard_audit_locked()`` says otherwise; Kubeboard registers that function on each of its
connections and lets it pass only inside ``manage.py flush`` (which empties the whole database,
as the test suite does between tests). Any other SQLite client (``sqlite3`` shell) has no such
function, so its UPDATE or DELETE fails too. PostgreSQL's TRUNCATE (the table owner's
privilege) is not refused; ``verify_audit`` against a checkpoint detects it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

TABLES = ("audit_auditevent", "audit_auditcheckpoint")
GUARD = "kubeboard_audit_locked"

_erasing: ContextVar[bool] = ContextVar("kubeboard_audit_erasing", default=False)


def _guard() -> int:
    return 0 if _erasing.get() else 1


def register_guard(sender=None, connection=None, **kwargs) -> None:
    """``connection_created`` receiver: give each SQLite connection the guard function."""
    if connection is not None and connection.vendor == "sqlite":
        connection.connection.create_function(GUARD, 0, _guard)


@contextmanager
def erasing() -> Iterator[None]:
    token = _erasing.set(True)
    try:
        yield
    finally:
        _erasing.reset(token)


def _sqlite_sql(table: str) -> list[str]:
    return [
        f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} WHEN {GUARD}() "
        f"BEGIN SELECT RAISE(ABORT, 'audit records are append-only: {op} on {table} refused'); END"
        for op in ("UPDATE", "DELETE")
    ]


POSTGRES_FUNCTION = """
CREATE OR REPLACE FUNCTION kubeboard_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit records are append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$
"""


def install_sql(vendor: str) -> list[str]:
    if vendor == "sqlite":
        return [sql for table in TABLES for sql in _sqlite_sql(table)]
    if vendor == "postgresql":
        return [POSTGRES_FUNCTION] + [
            f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}; "
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION kubeboard_audit_append_only()"
            for table in TABLES
        ]
    raise NotImplementedError(f"no audit triggers for database vendor {vendor!r}")


def remove_sql(vendor: str) -> list[str]:
    if vendor == "sqlite":
        return [f"DROP TRIGGER IF EXISTS {table}_no_{op} " for table in TABLES for op in ("update", "delete")]
    return [f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}" for table in TABLES] + [
        "DROP FUNCTION IF EXISTS kubeboard_audit_append_only()"
    ]


def install(apps, schema_editor) -> None:
    register_guard(connection=schema_editor.connection)
    for sql in install_sql(schema_editor.connection.vendor):
        schema_editor.execute(sql, None)


def remove(apps, schema_editor) -> None:
    for sql in remove_sql(schema_editor.connection.vendor):
        schema_editor.execute(sql, None)


def installed(connection) -> set[str]:
    """Names of the audit triggers present (for tests and checks)."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name LIKE 'audit_%'")
        else:
            cursor.execute(
                "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgrelid::regclass::text LIKE 'audit_%'"
            )
        return {row[0] for row in cursor.fetchall()}
