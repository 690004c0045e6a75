"""etcd on kubeadm's control planes, through ``etcdctl``/``etcdutl`` on the machines.

kubeadm runs a local etcd member on every control plane (static Pod, client port 2379 on
127.0.0.1 and the node's address, TLS with client certificates from the etcd CA). Kubeboard
talks to it the way an operator does on the machine: ``etcdctl`` with the member's
``healthcheck-client`` certificate (kubeadm's own etcd probe identity), so no key leaves the
machine. ``etcdctl`` 3.6+ only saves snapshots; ``etcdutl`` reads and restores them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from kubeadm import certs, yamlio
from kubeadm.components import ETCD, ETCD_CLIENT_PORT, TMP_DIR, manifest_path
from kubeadm.config import DEFAULT_CERTIFICATES_DIR

_HEALTHCHECK = certs.spec("etcd-healthcheck-client")
CA = f"{DEFAULT_CERTIFICATES_DIR}/{_HEALTHCHECK.ca_base_name}.crt"
CLIENT_CERT = f"{DEFAULT_CERTIFICATES_DIR}/{_HEALTHCHECK.base_name}.crt"
CLIENT_KEY = f"{DEFAULT_CERTIFICATES_DIR}/{_HEALTHCHECK.base_name}.key"
LOCAL_ENDPOINT = f"https://127.0.0.1:{ETCD_CLIENT_PORT}"
MANIFEST = manifest_path(ETCD)
# Snapshots and restores work in kubeadm's own scratch directory (see components.TMP_DIR).
SCRATCH = TMP_DIR


def etcdctl(program: str, *args: str, endpoints: str = LOCAL_ENDPOINT) -> list[str]:
    return [
        program,
        f"--endpoints={endpoints}",
        f"--cacert={CA}",
        f"--cert={CLIENT_CERT}",
        f"--key={CLIENT_KEY}",
        *args,
    ]


def snapshot_save(program: str, path: str) -> list[str]:
    return etcdctl(program, "snapshot", "save", path)


def snapshot_status(program: str, path: str) -> list[str]:
    return [program, "snapshot", "status", path, "-w", "json"]


@dataclass(frozen=True)
class SnapshotStatus:
    hash: int
    revision: int
    total_keys: int
    total_size: int
    version: str


def parse_snapshot_status(lines: list[str]) -> SnapshotStatus:
    """``etcdutl snapshot status -w json``: {"hash","revision","totalKey","totalSize","version"}."""
    for line in reversed(lines):
        line = line.strip()
        if line.startswith("{") and '"revision"' in line:
            data = json.loads(line)
            return SnapshotStatus(
                hash=int(data["hash"]),
                revision=int(data["revision"]),
                total_keys=int(data["totalKey"]),
                total_size=int(data["totalSize"]),
                version=str(data.get("version", "")),
            )
    raise ValueError("etcdutl snapshot status printed no JSON status line")


@dataclass(frozen=True)
class Member:
    id: int
    name: str
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]
    is_learner: bool = False


def parse_member_list(lines: list[str]) -> list[Member]:
    """``etcdctl member list -w json`` (IDs are numbers in JSON)."""
    for line in reversed(lines):
        line = line.strip()
        if line.startswith("{") and '"members"' in line:
            data = json.loads(line)
            return [
                Member(
                    id=int(m["ID"]),
                    name=str(m.get("name", "")),
                    peer_urls=tuple(m.get("peerURLs") or ()),
                    client_urls=tuple(m.get("clientURLs") or ()),
                    is_learner=bool(m.get("isLearner", False)),
                )
                for m in data.get("members") or []
            ]
    raise ValueError("etcdctl member list printed no JSON member list")


def parse_endpoint_health(lines: list[str]) -> dict[str, bool]:
    """``etcdctl endpoint health -w json``: endpoint -> healthy. etcdctl exits 1 when one is not,
    and still prints the JSON array."""
    for line in reversed(lines):
        line = line.strip()
        if line.startswith("[") and '"endpoint"' in line:
            return {str(item["endpoint"]): bool(item.get("health")) for item in json.loads(line)}
    return {}


def quorum_after_removal(members: int, healthy_after: int) -> bool:
    """Whether an etcd cluster keeps quorum when one of ``members`` is removed and
    ``healthy_after`` members that stay are healthy."""
    remaining = members - 1
    if remaining < 1:
        return False
    return healthy_after >= remaining // 2 + 1


@dataclass(frozen=True)
class LocalMember:
    """What kubeadm's etcd manifest says about the member on this machine (for a restore)."""

    name: str
    peer_url: str
    data_dir: str


def local_member(manifest_text: str) -> LocalMember:
    pod = yamlio.load_documents(manifest_text)[0]
    containers = (pod.get("spec") or {}).get("containers") or []
    command = [str(arg) for c in containers if c.get("name") == ETCD for arg in (c.get("command") or [])]
    flags = {}
    for arg in command:
        if arg.startswith("--") and "=" in arg:
            key, _, value = arg[2:].partition("=")
            flags[key] = value
    missing = [flag for flag in ("name", "initial-advertise-peer-urls", "data-dir") if not flags.get(flag)]
    if missing:
        raise ValueError(f"the etcd manifest has no {', '.join('--' + f for f in missing)}")
    return LocalMember(
        name=flags["name"], peer_url=flags["initial-advertise-peer-urls"].split(",")[0], data_dir=flags["data-dir"]
    )


def snapshot_restore(program: str, snapshot: str, member: LocalMember, data_dir: str) -> list[str]:
    """Restore into a new data directory as a one-member cluster. The revision jumps by a billion
    and the old ones are marked compacted, so clients (the API server's watch caches,
    controllers) see that time moved and relist instead of trusting stale revisions."""
    return [
        program,
        "snapshot",
        "restore",
        snapshot,
        f"--name={member.name}",
        f"--initial-cluster={member.name}={member.peer_url}",
        f"--initial-advertise-peer-urls={member.peer_url}",
        f"--data-dir={data_dir}",
        "--bump-revision=1000000000",
        "--mark-compacted",
    ]
