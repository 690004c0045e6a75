"""Stored read-back rows take the keys of kubeadm.readback.certificate_row, the one builder the
read-back and the day-two certificate inventory now share: check-expiration names ("etcd/server"
becomes "etcd-server"), ``days_left`` for ``residual_days``, ``source`` for the section kind, and an
unreadable certificate's kind "unreadable". Rows read before stay readable until the next read-back
replaces them with full ones."""

from django.db import migrations

OLD_SOURCES = ("cert", "kubeconfig")


def _new_row(row: dict) -> dict:
    if "residual_days" not in row and "source" in row:
        return row
    row = dict(row)
    if "residual_days" in row:
        row["days_left"] = row.pop("residual_days")
    row["name"] = row.get("name", "").replace("/", "-")
    if row.get("error") and row.get("kind") in OLD_SOURCES:
        row["source"], row["kind"] = row["kind"], "unreadable"
    else:
        row.setdefault("source", "kubeconfig" if row.get("kind") == "kubeconfig" else "cert")
    row.setdefault("drift", [])
    return row


def _old_row(row: dict) -> dict:
    if "residual_days" in row or "source" not in row:
        return row
    row = dict(row)
    if "days_left" in row:
        row["residual_days"] = round(row.pop("days_left"), 1)
    path = row.get("path", "")
    for prefix in ("/etc/kubernetes/pki/", "/etc/kubernetes/"):
        if path.startswith(prefix):
            row["name"] = path.removeprefix(prefix).removesuffix(".crt")
            break
    source = row.pop("source")
    if row.get("kind") == "unreadable":
        row["kind"] = source
    return row


def _rewrite(apps, change) -> None:
    MachineInventory = apps.get_model("clusters", "MachineInventory")
    for inventory in MachineInventory.objects.exclude(certificates=[]).iterator():
        rows = [change(row) if isinstance(row, dict) else row for row in inventory.certificates or []]
        if rows != inventory.certificates:
            MachineInventory.objects.filter(pk=inventory.pk).update(certificates=rows)


def forwards(apps, schema_editor) -> None:
    _rewrite(apps, _new_row)


def backwards(apps, schema_editor) -> None:
    _rewrite(apps, _old_row)


class Migration(migrations.Migration):
    dependencies = [
        ("clusters", "0007_cluster_name_rule"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
