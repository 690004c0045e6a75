"""Appends no longer stage records: the staging table goes, after its leftovers join the chain.

A record staged by a process that died before sealing it (PostgreSQL, migrations 0010-0012) is
appended now, if its writer's HMAC verifies, so dropping the table loses nothing Kubeboard wrote.
A row without a valid HMAC was not written by Kubeboard: it is dropped, and said so.
"""

from django.db import migrations

SEALED_LATER = ("seq", "prev", "key_id")


def append_leftovers(apps, schema_editor):
    staged_model = apps.get_model("audit", "AuditStaged")
    if not staged_model.objects.exists():
        return
    from audit import chain, keys
    from audit.models import AuditEvent, canonical_json, event_content

    ring = keys.keyring()
    copied = [field.attname for field in staged_model._meta.concrete_fields if field.name not in ("id", "stage_key_id", "stage_mac")]
    for staged in staged_model.objects.order_by("id"):
        event = AuditEvent(**{name: getattr(staged, name) for name in copied})
        content = event_content(event)
        for name in SEALED_LATER:
            content.pop(name)
        if not ring.verifies(staged.stage_key_id, canonical_json({"staged": staged.id, **content}), staged.stage_mac):
            print(f"\n  audit: dropped staged row {staged.id} ({staged.action[:64]}): its MAC does not verify")
            continue
        chain.append(event)


class Migration(migrations.Migration):

    dependencies = [
        ("audit", "0012_staged_mac"),
    ]

    operations = [
        migrations.RunPython(append_leftovers, migrations.RunPython.noop),
        migrations.DeleteModel(name="AuditStaged"),
    ]
