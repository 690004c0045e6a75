"""Team names are unique whatever their letter case (``TEAM-ALPHA`` is ``team-alpha``).

The database enforces it (a unique index on LOWER(name), core migration 0003); forms ask here
first so a person gets a sentence instead of a failed insert. The comparison is the index's
own (SQL LOWER on both sides), so the form and the database never disagree.
"""

from __future__ import annotations

from django.contrib.auth.models import Group
from django.db.models import Value
from django.db.models.functions import Lower


def clashing_team(name: str, *, exclude_pk: int | None = None) -> Group | None:
    """The existing team whose name equals ``name`` but for letter case, if any."""
    found = Group.objects.annotate(lowered=Lower("name")).filter(lowered=Lower(Value(name.strip())))
    if exclude_pk is not None:
        found = found.exclude(pk=exclude_pk)
    return found.first()


def clash_message(name: str, existing: Group) -> str:
    if existing.name == name.strip():
        return f"a team named “{existing.name}” already exists"
    return f"a team named “{existing.name}” already exists; team names ignore letter case, so choose another name"
