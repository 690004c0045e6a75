"""Migration clusters 0008 gives read-back rows stored before it the keys of
kubeadm.readback.certificate_row, so the cluster page shows them until the next read-back,
and gives them back their old keys when migrated back."""

from __future__ import annotations

import importlib

migration = importlib.import_module("clusters.migrations.0008_certificate_rows")

OLD = [
    {
        "name": "etcd/server",
        "path": "/etc/kubernetes/pki/etcd/server.crt",
        "kind": "leaf",
        "not_after": "2027-12-06T14:00:00+00:00",
        "residual_days": 365.0,
        "custody": "signed by Kubeboard's etcd/ca",
    },
    {"name": "admin.conf", "path": "/etc/kubernetes/admin.conf", "kind": "kubeconfig", "residual_days": 364.9},
    {"name": "ca", "path": "/etc/kubernetes/pki/ca.crt", "kind": "cert", "error": "not a PEM", "custody": "unreadable"},
]


def test_old_rows_take_the_new_keys_and_back():
    new = [migration._new_row(row) for row in OLD]
    assert [(r["name"], r["source"], r["kind"]) for r in new] == [
        ("etcd-server", "cert", "leaf"),
        ("admin.conf", "kubeconfig", "kubeconfig"),
        ("ca", "cert", "unreadable"),
    ]
    assert new[0]["days_left"] == 365.0 and "residual_days" not in new[0] and new[0]["drift"] == []
    assert [migration._new_row(row) for row in new] == new  # rows already new stay as they are
    assert [migration._old_row(row) for row in new] == [dict(row, drift=[]) for row in OLD]
