"""etcd as the e2e tests read it on a test-bed control plane: ``etcdctl member list`` with the
healthcheck client certificate kubeadm writes. No Django: the kubeadm recipe tests use it too."""

from __future__ import annotations

import json
from pathlib import Path


def member_names(node, bin_dir: Path) -> list[str]:
    """The names of etcd's members, sorted, asked through ``node``'s local etcd."""
    out = node.exec(
        [
            str(bin_dir / "etcdctl"),
            "--endpoints=https://127.0.0.1:2379",
            "--cacert=/etc/kubernetes/pki/etcd/ca.crt",
            "--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt",
            "--key=/etc/kubernetes/pki/etcd/healthcheck-client.key",
            "member",
            "list",
            "-w",
            "json",
        ]
    ).stdout
    return sorted(member["name"] for member in json.loads(out)["members"])
