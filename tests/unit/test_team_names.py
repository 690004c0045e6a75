"""Team names are unique whatever their letter case, everywhere: the database (a unique index on
LOWER(name), SQLite and PostgreSQL), the admin's Group add and change forms (a sentence, not a
500), and the Teams page; the migration stops on an existing pair and names it."""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import Group
from django.db import IntegrityError, connection, transaction
from django.test import Client

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

migration = importlib.import_module("core.migrations.0003_team_names_ignore_case")


@pytest.fixture
def admin_client(make_user):
    client = Client()
    client.force_login(make_user("root", superuser=True, team=None))
    return client


def test_the_database_refuses_a_name_that_differs_only_in_case():
    Group.objects.create(name="team-alpha")
    with pytest.raises(IntegrityError), transaction.atomic():
        Group.objects.create(name="TEAM-ALPHA")
    Group.objects.create(name="team-beta")  # another name is fine
    assert sorted(Group.objects.values_list("name", flat=True)) == ["team-alpha", "team-beta"]


def test_the_admin_add_form_refuses_it_with_a_sentence(admin_client):
    Group.objects.create(name="team-alpha")
    response = admin_client.post("/admin/auth/group/add/", {"name": "TEAM-ALPHA"})
    assert response.status_code == 200
    assert "a team named “team-alpha” already exists; team names ignore letter case" in response.content.decode()
    assert list(Group.objects.values_list("name", flat=True)) == ["team-alpha"]


def test_the_admin_change_form_refuses_renaming_onto_another_team(admin_client):
    Group.objects.create(name="team-alpha")
    beta = Group.objects.create(name="team-beta")
    response = admin_client.post(f"/admin/auth/group/{beta.pk}/change/", {"name": "Team-Alpha"})
    assert response.status_code == 200
    assert "a team named “team-alpha” already exists" in response.content.decode()
    beta.refresh_from_db()
    assert beta.name == "team-beta"


def test_the_admin_may_change_the_case_of_a_teams_own_name(admin_client):
    alpha = Group.objects.create(name="team-alpha")
    response = admin_client.post(f"/admin/auth/group/{alpha.pk}/change/", {"name": "Team-Alpha"})
    assert response.status_code == 302
    alpha.refresh_from_db()
    assert alpha.name == "Team-Alpha"


def test_the_teams_page_and_the_admin_agree(admin_client):
    assert admin_client.post("/admin/auth/group/add/", {"name": "Platform"}).status_code == 302
    response = admin_client.post("/teams/new/", {"name": "platform"})
    assert response.status_code == 400
    assert Group.objects.filter(name__iexact="platform").count() == 1


def test_the_migration_names_the_pairs_to_rename_before_it_can_add_the_index():
    editor = SimpleNamespace(connection=connection)  # all the check uses of a schema editor
    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX {migration.INDEX}")
    Group.objects.bulk_create([Group(name="team-alpha"), Group(name="TEAM-ALPHA"), Group(name="other")])
    with pytest.raises(RuntimeError) as refused:
        migration.refuse_case_duplicates(None, editor)
    assert "“TEAM-ALPHA” and “team-alpha”" in str(refused.value)
    assert "Rename all but one" in str(refused.value)
    Group.objects.filter(name="TEAM-ALPHA").delete()
    migration.refuse_case_duplicates(None, editor)  # nothing left to refuse
    # The test's transaction is rolled back, index included (DDL is transactional on both).


def test_a_team_created_meanwhile_is_a_sentence_not_a_server_error(admin_client, monkeypatch):
    # Two superusers creating "Platform" and "platform" at once: the second insert meets the
    # index after its own check passed. The race is made certain by hiding the first from the check.
    from teams import services

    Group.objects.create(name="Platform")
    monkeypatch.setattr(services, "clashing_team", lambda name, exclude_pk=None: None)
    response = admin_client.post("/teams/new/", {"name": "platform"})
    assert response.status_code == 400
    assert "already exists" in response.content.decode()
    assert Group.objects.filter(name__iexact="platform").count() == 1
