"""What each state-changing entry point writes to the audit trail: the declarative coverage list.

``tests/unit/test_audit_coverage.py`` walks every URL pattern (each method the permission
matrix declares), every management command of Kubeboard's apps (each subcommand) and every
background task module, and checks each against the entries below:

* ``Audited(actions, ...)``: running it writes exactly these records, each exactly once (one per
  action: a cluster create is "cluster.created" + "operation.queued"), each with ``outcome``
  (default "success"), and nothing else.
* ``ReadOnly(reason)``: it changes nothing worth a record; running it must write none.
* ``Elsewhere(test, reason, fails=...)``: it needs a real cluster or machine to succeed; the named
  test proves its record. Here, where it cannot succeed, it writes exactly the records of its
  refused or failed attempt, ``fails``, with ``outcome`` ("denied": refused before anything was
  tried; "failure": tried and did not work). ``fails=()`` only where the form it is given here
  does not validate: nothing was attempted, so nothing is written.

``REFUSED_ROUTES`` and ``REFUSED_COMMANDS`` add a second run of an ``Audited`` route or command,
set up so that it is refused or fails cheaply (no cluster needed): it must write its one record
with the outcome it really had, never "success" and never nothing.

Every GET of every route must write no record at all (GET is safe), whether declared or not, and
every route that accepts a POST must have an entry (a route that only reads answers 405).

Adding a POST route, a command or a task? Add its entry here, e.g.

    "tokens:create": {"POST": Audited("token.created", role="operator", data=lambda w: {...})},
    "node add": Audited(("cluster.ssh_key_generated", "node.added"), argv=lambda w: ["node", "add", w.cluster.name, "n9", "--address", "10.0.0.9"]),
    "tokens.tasks.sweep": ReadOnly("nothing is due in an empty database; tests/... prove the sweep's records"),

Routes use the World of ``tests/permission_matrix.py`` (add objects there).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.factories import CLUSTER_FORM


@dataclass(frozen=True)
class Audited:
    actions: str | tuple[str, ...]
    role: str = "admin"  # routes: who acts (a role of tests.permission_matrix.ROLES)
    data: Callable[[Any], dict] = lambda w: {}
    argv: Callable[[Any], list[str]] | None = None  # commands: call_command arguments
    call: Callable[[Any], None] | None = None  # tasks: how to run it
    setup: Callable[[Any], None] | None = None  # prepare the world first
    outcome: str = "success"  # of every record it writes: success, failure, denied, cancelled

    @property
    def expected(self) -> list[str]:
        return sorted([self.actions] if isinstance(self.actions, str) else self.actions)


@dataclass(frozen=True)
class ReadOnly:
    reason: str
    role: str = "admin"
    data: Callable[[Any], dict] = lambda w: {}
    argv: Callable[[Any], list[str]] | None = None
    call: Callable[[Any], None] | None = None
    exits: int | None = None  # a command that refuses in the world: the status it exits with


@dataclass(frozen=True)
class Elsewhere:
    test: str
    reason: str
    role: str = "admin"
    data: Callable[[Any], dict] = lambda w: {}
    fails: str | tuple[str, ...] = ()  # what its refused or failed attempt writes here
    outcome: str = "denied"
    argv: Callable[[Any], list[str]] | None = None  # commands: run it here (it fails)
    setup: Callable[[Any], None] | None = None

    @property
    def expected(self) -> list[str]:
        return sorted([self.fails] if isinstance(self.fails, str) else self.fails)


def _offer_host_key(w) -> None:
    from nodes.models import Node

    Node.objects.filter(pk=w.node.pk).update(
        offered_host_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ0sNEWpZf1gL2Xh1R5Cw8Y8KxFQ0Vq3l9Xq2b5Q8f0a",
        offered_host_key_fingerprint="SHA256:coverage",
    )


def _pin_and_offer_other(w) -> None:
    from nodes.models import Node

    Node.objects.filter(pk=w.node.pk).update(
        ssh_host_key="ssh-ed25519 AAAApinned",
        ssh_host_key_fingerprint="SHA256:pinned",
        offered_host_key="ssh-ed25519 AAAAother",
        offered_host_key_fingerprint="SHA256:other",
    )


def _login_password(w) -> None:
    w.users["admin"].set_password("right-password-123")
    w.users["admin"].save()


def _config_file() -> str:
    """A kubeadm ClusterConfiguration file to import (removed when the test process ends)."""
    import atexit
    import os
    import tempfile

    handle, path = tempfile.mkstemp(suffix=".yaml")
    with os.fdopen(handle, "w") as file:
        file.write(IMPORTED_CONFIG)
    atexit.register(os.unlink, path)
    return path


def _unreachable_kubeconfig() -> str:
    """A well-formed admin kubeconfig (token user) for an API server at a documentation address."""
    import yaml

    from kubeadm import kubeconfig, pki

    ca = pki.generate_ca("kubernetes", "ECDSA-P256")
    config = kubeconfig.build_kubeconfig(
        "https://192.0.2.1:6443", "kubernetes", "kubernetes-admin", ca.cert, token="abcdef.0123456789abcdef"
    )
    return yaml.safe_dump(config)


CLUSTER_E2E = "tests/e2e/test_tokens_cluster.py"
DAY2_UPGRADE_E2E = "tests/e2e/test_day2_upgrade.py"
DAY2_CERTS_E2E = "tests/e2e/test_day2_certificates.py"
IMPORTED_CONFIG = (
    "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nkubernetesVersion: v1.37.2\n"
    "controlPlaneEndpoint: 10.0.0.30:6443\nnetworking:\n  podSubnet: 10.244.0.0/16\n"
)

ROUTES: dict[str, dict[str, Audited | ReadOnly | Elsewhere]] = {
    "login": {
        "POST": Audited(
            "auth.login_failed",
            role="anonymous",
            data=lambda w: {"username": "blue-admin", "password": "wrong"},
            outcome="failure",
        )
    },
    "logout": {"POST": Audited("auth.logout")},
    # One's own password: the old one, then the new one twice; the record names the user, no password.
    "password-change": {
        "POST": Audited(
            "user.password_changed",
            setup=_login_password,
            data=lambda w: {
                "old_password": "right-password-123",
                "new_password1": "a-new-password-456",
                "new_password2": "a-new-password-456",
            },
        )
    },
    "clusters:create": {
        "POST": Audited(
            ("cluster.created", "operation.queued"),
            role="operator",
            data=lambda w: CLUSTER_FORM | {"name": "fresh", "team": w.team.pk},
        )
    },
    "adopt-cluster": {
        "POST": Elsewhere(
            CLUSTER_E2E,
            "reads a live API server with the given kubeconfig",
            data=lambda w: {"name": "adopted", "team": w.team.pk, "kubeconfig_text": _unreachable_kubeconfig()},
            fails="cluster.adopted",  # the network guard refuses the API server's address
            outcome="failure",
        )
    },
    "clusters:initialize": {
        "POST": Elsewhere(
            "tests/unit/test_cluster_actions.py",  # the one operation.queued of a started init
            "needs a cluster with its identity and a machine with a pinned host key",
            role="operator",
            data=lambda w: {"node": w.node.pk},
            fails="operation.queued",
        )
    },
    "clusters:join": {
        "POST": Elsewhere(
            CLUSTER_E2E,
            "needs a running control plane and machines",
            role="operator",
            data=lambda w: {"nodes": [w.node.pk], "control_plane": "True"},  # n1 is a control plane
            fails="operation.queued",
        )
    },
    "clusters:engine-settings": {"POST": Elsewhere("tests/unit/test_cluster_actions.py", "form owned by the engine")},
    "clusters:pod-network-settings": {
        "POST": Audited("cluster.pod_network_changed", role="operator", data=lambda w: {"pod_network": "none"})
    },
    "clusters:pod-network": {
        "POST": Elsewhere(
            "tests/unit/test_pod_network_choice.py",  # the one operation.queued of a started apply
            "needs an initialized cluster whose CA key Kubeboard holds, with Flannel or Calico chosen",
            role="operator",
            fails="operation.queued",
        )
    },
    "clusters:admin-kubeconfig": {
        "POST": Elsewhere(
            CLUSTER_E2E,
            "issues a certificate from the cluster CA",
            data=lambda w: {"ttl": "1h"},
            fails="cluster.admin_kubeconfig_issued",
        )
    },
    "clusters:read-back": {
        "POST": Elsewhere(CLUSTER_E2E, "reads a live API server", role="operator", fails="operation.queued")
    },
    "clusters:delete": {
        "POST": Audited("cluster.deleted", role="superuser", data=lambda w: {"confirm": w.cluster.name})
    },
    "nodes:add": {
        # The first machine of a cluster also makes the cluster's key pair: two actions.
        "POST": Audited(
            ("cluster.ssh_key_generated", "node.added"),
            role="operator",
            data=lambda w: {
                "name": "n9",
                "address": "10.0.0.99",
                "ssh_port": 22,
                "ssh_user": "root",
                "role": "worker",
                "credential": "cluster-key",
            },
        )
    },
    "nodes:cluster-key": {"POST": Audited("cluster.ssh_key_generated", role="operator")},
    "nodes:edit": {
        "POST": Audited(
            ("cluster.ssh_key_generated", "node.changed"),
            role="operator",
            data=lambda w: {
                "name": "n1",
                "address": "10.0.0.22",
                "ssh_port": 22,
                "ssh_user": "root",
                "role": "worker",
                "credential": "cluster-key",
            },
        )
    },
    "nodes:delete": {"POST": Audited("node.deleted", role="operator")},
    "nodes:check": {"POST": Audited("node.check_requested", role="operator")},
    "nodes:host-key-accept": {
        "POST": Audited(
            "node.host_key_accepted",
            role="operator",
            setup=_offer_host_key,
            data=lambda w: {"fingerprint": "SHA256:coverage"},
        )
    },
    "nodes:host-key-keep": {"POST": Audited("node.host_key_kept", role="operator", setup=_pin_and_offer_other)},
    "nodes:bulk-add": {
        # One machine listed: its node.added, and the cluster's key pair made for it.
        "POST": Audited(
            ("cluster.ssh_key_generated", "node.added"),
            role="operator",
            data=lambda w: {
                "bulk-machines": "n9,10.0.0.99",
                "bulk-ssh_user": "root",
                "bulk-ssh_port": 22,
                "bulk-role": "worker",
            },
        )
    },
    "nodes:bulk-check": {
        "POST": Audited("node.check_requested", role="operator", data=lambda w: {"nodes": [w.node.pk]})
    },
    "nodes:bulk-host-key-accept": {
        "POST": Audited(
            "node.host_key_accepted",
            role="operator",
            setup=_offer_host_key,
            data=lambda w: {"accept": f"{w.node.name} SHA256:coverage"},
        )
    },
    "tokens:create": {
        "POST": Elsewhere(
            CLUSTER_E2E,
            "creates the Secret in a live cluster",
            role="operator",
            data=lambda w: {"ttl": "1h", "usages": ["signing", "authentication"]},
            fails="token.created",
            outcome="failure",
        )
    },
    "tokens:sync": {
        "POST": Elsewhere(CLUSTER_E2E, "reads a live cluster", role="operator", fails="token.synced", outcome="failure")
    },
    "tokens:policy": {
        "POST": Elsewhere("tests/integration/test_token_policies.py", "form owned by the tokens engineer")
    },
    "tokens:certificate_key_create": {
        "POST": Elsewhere(
            CLUSTER_E2E, "uploads certificates to a live cluster", role="operator", fails="operation.queued"
        )
    },
    "tokens:certificate_key_reveal": {"POST": Audited("certificate_key.revealed")},
    "tokens:rotate": {
        "POST": Elsewhere(
            CLUSTER_E2E,
            "creates the successor Secret in a live cluster",
            role="operator",
            fails="token.rotated",
            outcome="failure",
        )
    },
    "tokens:delete": {
        "POST": Elsewhere(
            CLUSTER_E2E,
            "deletes the Secret in a live cluster",
            role="operator",
            fails="token.revoked",
            outcome="failure",
        )
    },
    "tokens:reveal": {"POST": Audited("token.revealed")},
    "tokens:join_command": {"POST": Audited("token.join_command_revealed", data=lambda w: {"role": "worker"})},
    "operations:resume": {"POST": Audited("operation.resumed", role="operator")},
    "operations:cancel": {
        "POST": Audited(
            "operation.cancel_requested",
            role="operator",
            outcome="denied",  # the world's operation has already failed: nothing to cancel
        )
    },
    # The creator becomes the new team's admin, recorded like any membership change.
    "teams:create": {
        "POST": Audited(("team.created", "team.member_added"), role="superuser", data=lambda w: {"name": "green"})
    },
    "teams:user_create": {
        "POST": Audited(
            ("user.created", "team.member_added"),
            role="superuser",
            data=lambda w: {"username": "newcomer", "team": w.team.pk, "role": "viewer"},
        )
    },
    "teams:member_add": {
        "POST": Audited("team.member_added", data=lambda w: {"username": "other-admin", "role": "viewer"})
    },
    "teams:member_role": {"POST": Audited("team.role_changed", data=lambda w: {"role": "operator"})},
    "teams:member_remove": {"POST": Audited("team.member_removed")},
    # day two
    "daytwo:upgrade-start": {
        "POST": Elsewhere(
            DAY2_UPGRADE_E2E,
            "upgrades a running cluster",
            role="operator",
            data=lambda w: {"target": "v1.37.2"},
            fails="operation.queued",
        )
    },
    "daytwo:settings": {
        "POST": Audited(
            "cluster.day2_settings_changed",
            data=lambda w: {"upgrade_batch_size": "2", "etcdctl": "etcdctl", "etcdutl": "etcdutl"},
        )
    },
    "daytwo:prepare-settings": {
        "POST": Audited(
            "prepare_settings.changed",
            role="operator",
            data=lambda w: {
                "source": "packages",
                "repository_key_fingerprint": "DE15B14486CD377B9E876E1A234654DA9A296436",
            },
        )
    },
    # The world's machine has no accepted host key: refused before anything runs, recorded as such.
    "clusters:prepare": {
        "POST": Elsewhere(
            "tests/integration/test_prepare_machines.py",
            "prepares machines over a real sshd",
            role="operator",
            data=lambda w: {"nodes": [w.node.pk]},
            fails="operation.queued",
        )
    },
    "artifacts:upload": {
        "POST": Elsewhere(
            "tests/unit/test_artifact_sets.py", "imports an uploaded set (here no file is sent)", role="superuser"
        )
    },
    "artifacts:delete": {
        "POST": Audited("artifacts.deleted", role="superuser", data=lambda w: {"confirm": w.artifact_set.name})
    },
    "daytwo:reset": {"POST": Elsewhere("tests/e2e/test_day2_reset.py", "resets a machine of a running cluster")},
    # Here the machine never tried to join: refused, recorded like a refused reset.
    "daytwo:undo-join": {
        "POST": Elsewhere(
            "tests/e2e/test_engine_cluster.py",
            "undoes a failed join on a running cluster",
            role="operator",
            fails="operation.queued",
        )
    },
    # Cordon, uncordon, drain: here the machine has not joined (no Node), so refused and recorded.
    "daytwo:node-scheduling": {
        "POST": Elsewhere(
            "tests/unit/test_node_scheduling.py",
            "queues a cordon, uncordon or drain of a joined machine's Node",
            role="operator",
            data=lambda w: {"action": "cordon"},
            fails="operation.queued",
        )
    },
    "daytwo:certificates-read": {
        "POST": Elsewhere(
            DAY2_CERTS_E2E, "reads control-plane machines over SSH", role="operator", fails="operation.queued"
        )
    },
    "daytwo:certificates-renew": {
        "POST": Elsewhere(
            DAY2_CERTS_E2E,
            "renews certificates on control planes",
            role="operator",
            data=lambda w: {"names": ["all"]},
            fails="operation.queued",
        )
    },
    "daytwo:renewal-policy": {
        "POST": Audited("renewal_policy.changed", data=lambda w: {"enabled": "on", "renew_below_days": "30"})
    },
    "daytwo:snapshot": {
        "POST": Elsewhere(
            DAY2_UPGRADE_E2E, "saves a snapshot on a control plane", role="operator", fails="operation.queued"
        )
    },
    "daytwo:backup-schedule": {
        "POST": Audited(
            "backup_schedule.changed", data=lambda w: {"enabled": "on", "interval_hours": "24", "keep": "7"}
        )
    },
    "daytwo:snapshot-download": {"POST": Audited("etcd_snapshot.downloaded")},
    "daytwo:snapshot-delete": {"POST": Audited("etcd_snapshot.deleted")},
    "daytwo:snapshot-restore": {
        "POST": Elsewhere(
            DAY2_UPGRADE_E2E,
            "restores etcd on a control plane",
            data=lambda w: {"confirm": w.cluster.name},
            fails="operation.queued",
        )
    },
    "import-cluster": {
        "POST": Audited(
            ("cluster.created", "cluster.configuration_imported", "operation.queued"),
            role="operator",
            data=lambda w: {"name": "imported", "team": w.team.pk, "text": IMPORTED_CONFIG},
        )
    },
}

# Pages that read only and answer a POST like a GET (no require_GET): a POST must write nothing.
PAGES = (
    "",
    "audit:export",
    "audit:history",
    "audit:node",
    "clusters:ca-certificate",
    "clusters:ca-pin",
    "clusters:detail",
    "clusters:kubeadm-config",
    "clusters:list",
    "clusters:live",
    "daytwo:backups",
    "daytwo:certificates",
    "daytwo:configuration",
    "daytwo:configuration-export",
    "daytwo:upgrade",
    "nodes:check-status",
    "nodes:detail",
    "nodes:host-keys",
    "operations:detail",
    "operations:log-text",
    "teams:detail",
    "teams:list",
    "tokens:list",
    "artifacts:list",
)
for _page in PAGES:
    ROUTES.setdefault(_page, {})["POST"] = ReadOnly("a page: a POST shows it and changes nothing")

COMMANDS: dict[str, Audited | ReadOnly | Elsewhere] = {
    "audit_checkpoint": Audited("audit.checkpoint_created", argv=lambda w: ["audit_checkpoint"]),
    "verify_audit": ReadOnly("verifies only", argv=lambda w: ["verify_audit"]),
    "audit_export": ReadOnly("reads only", argv=lambda w: ["audit_export", "--as", "blue-viewer", "--format", "csv"]),
    "audit_ship": ReadOnly(
        "sends records to the SIEM; refuses without KUBEBOARD_AUDIT_SINK (tests/integration/test_audit_stream.py)"
    ),
    "flush": ReadOnly("empties the whole database (tests, development); the audit trail with it"),
    "ensure_admin": Audited(
        "user.created",
        argv=lambda w: ["ensure_admin", "--username", "first"],
        setup=lambda w: type(w.users["superuser"]).objects.filter(is_superuser=True).delete(),
    ),
    "rotate_encryption_keys": Audited("encryption.keys_rotated", argv=lambda w: ["rotate_encryption_keys"]),
    "reset_password": Audited("user.password_reset", argv=lambda w: ["reset_password", "blue-viewer"]),
    "node add": Audited(
        ("cluster.ssh_key_generated", "node.added"),
        argv=lambda w: ["node", "add", w.cluster.name, "n7", "--address", "10.0.0.77"],
    ),
    "artifacts import": Elsewhere(
        "tests/unit/test_artifact_sets.py",
        "imports a whole set from a directory (here the directory does not exist: refused)",
        argv=lambda w: ["artifacts", "import", "/nonexistent-artifact-set"],
        fails="artifacts.imported",
    ),
    "artifacts list": ReadOnly("lists the sets", argv=lambda w: ["artifacts", "list"]),
    "artifacts delete": Audited("artifacts.deleted", argv=lambda w: ["artifacts", "delete", w.artifact_set.name]),
    "node list": ReadOnly("lists", argv=lambda w: ["node", "list", w.cluster.name]),
    "node show-key": Audited("cluster.ssh_key_generated", argv=lambda w: ["node", "show-key", w.cluster.name]),
    "node accept-host-key": Audited(
        "node.host_key_accepted",
        setup=_offer_host_key,
        argv=lambda w: ["node", "accept-host-key", w.cluster.name, w.node.name, "--fingerprint", "SHA256:coverage"],
    ),
    "node check": Elsewhere(
        "tests/e2e/test_machines_testbed.py",
        "connects to a machine over SSH",
        argv=lambda w: ["node", "check", w.cluster.name, w.node.name],
        fails="node.checked",  # the network guard refuses the world's address: it cannot log in
        outcome="failure",
    ),
    "node join": Elsewhere(
        CLUSTER_E2E,
        "joins machines to a running control plane",
        argv=lambda w: ["node", "join", w.cluster.name, w.node.name, "--no-wait"],
        fails="operation.queued",
    ),
    "cluster init": Elsewhere(
        CLUSTER_E2E,
        "initializes a control plane on a machine",
        argv=lambda w: ["cluster", "init", w.cluster.name, "--node", w.node.name, "--no-wait"],
        fails="operation.queued",
    ),
    # The world's cluster was never initialized: it says so and exits 2, writing nothing.
    "cluster upgrade-plan": ReadOnly(
        "prints the plan", argv=lambda w: ["cluster", "upgrade-plan", w.cluster.name], exits=2
    ),
    "cluster upgrade": Elsewhere(
        DAY2_UPGRADE_E2E,
        "upgrades a running cluster",
        argv=lambda w: ["cluster", "upgrade", w.cluster.name, "v1.37.2", "--no-wait"],
        fails="operation.queued",
    ),
    "cluster certs": ReadOnly("prints what was read", argv=lambda w: ["cluster", "certs", w.cluster.name]),
    "cluster renew-certs": Elsewhere(
        DAY2_CERTS_E2E,
        "renews certificates on control planes",
        argv=lambda w: ["cluster", "renew-certs", w.cluster.name, "all", "--no-wait"],
        fails="operation.queued",
    ),
    "cluster backup": Elsewhere(
        DAY2_UPGRADE_E2E,
        "saves a snapshot on a control plane",
        argv=lambda w: ["cluster", "backup", w.cluster.name, "--no-wait"],
        fails="operation.queued",
    ),
    "cluster backups": ReadOnly("lists", argv=lambda w: ["cluster", "backups", w.cluster.name]),
    "cluster restore": Elsewhere(
        DAY2_UPGRADE_E2E,
        "restores etcd on a control plane",
        argv=lambda w: [
            "cluster",
            "restore",
            w.cluster.name,
            "--snapshot",
            str(w.snapshot.pk),
            "--confirm",
            w.cluster.name,
            "--no-wait",
        ],
        fails="operation.queued",
    ),
    "cluster config-export": ReadOnly("prints", argv=lambda w: ["cluster", "config-export", w.cluster.name]),
    "cluster config-import": Audited(
        ("cluster.created", "cluster.configuration_imported", "operation.queued"),
        argv=lambda w: ["cluster", "config-import", "imported", _config_file(), "--team", w.team.name, "--no-wait"],
    ),
    # The world's machine never had its host key accepted: refused before anything runs.
    "node prepare": Elsewhere(
        "tests/integration/test_prepare_machines.py",
        "prepares a machine over a real sshd",
        argv=lambda w: ["node", "prepare", w.cluster.name, w.node.name, "--no-wait"],
        fails="operation.queued",
    ),
    "node reset": Elsewhere(
        "tests/e2e/test_day2_reset.py",
        "resets a machine of a running cluster",
        argv=lambda w: ["node", "reset", w.cluster.name, w.node.name, "--confirm", w.node.name, "--no-wait"],
        fails="operation.queued",  # the world's machine holds nothing of a cluster
    ),
    "operation follow": ReadOnly("prints events"),
    "token create": Elsewhere(
        CLUSTER_E2E,
        "creates the Secret in a live cluster",
        argv=lambda w: ["token", "create", w.cluster.name, "--ttl", "1h"],
        fails="token.created",
        outcome="failure",
    ),
    "token delete": Elsewhere(
        CLUSTER_E2E,
        "deletes the Secret in a live cluster",
        argv=lambda w: ["token", "delete", w.cluster.name, w.token.token_id],
        fails="token.revoked",
        outcome="failure",
    ),
    "token sync": Elsewhere(
        CLUSTER_E2E,
        "reads a live cluster",
        argv=lambda w: ["token", "sync", w.cluster.name],
        fails="token.synced",
        outcome="failure",
    ),
    "token generate": ReadOnly("prints a new random token; stores nothing", argv=lambda w: ["token", "generate"]),
    "token list": ReadOnly("lists", argv=lambda w: ["token", "list", w.cluster.name]),
    "operation list": ReadOnly("lists", argv=lambda w: ["operation", "list", w.cluster.name]),
    "operation resume": Audited("operation.resumed", argv=lambda w: ["operation", "resume", str(w.operation.pk)]),
    "operation cancel": Audited(
        "operation.cancel_requested",
        argv=lambda w: ["operation", "cancel", str(w.operation.pk)],
        outcome="denied",  # the world's operation has already failed: nothing to cancel
    ),
}

TASKS: dict[str, Audited | ReadOnly | Elsewhere] = {
    "nodes.tasks.check_machine": Elsewhere("tests/e2e/test_machines_testbed.py", "connects to a machine over SSH"),
    "tokens.tasks.sweep": ReadOnly(
        "nothing is due in the world", call=lambda w: __import__("tokens.tasks").tasks.sweep()
    ),
    "tokens.tasks.sync_due": ReadOnly(
        "no sync is due in the world", call=lambda w: __import__("tokens.tasks").tasks.sync_due()
    ),
    "tokens.tasks.sync_cluster": Elsewhere(CLUSTER_E2E, "reads a live cluster"),
    "clusters.tasks.refresh_nodes": ReadOnly(
        "reads the Nodes for the cluster page's summary (a stale claim here: it does nothing); "
        "tests/unit/test_node_status.py and tests/e2e/test_engine_cluster.py prove what it stores",
        call=lambda w: __import__("clusters.tasks").tasks.refresh_nodes(w.cluster.pk, "2000-01-01T00:00:00+00:00"),
    ),
    "operations.tasks.run_operation": Elsewhere("tests/unit/test_operation_pipeline.py", "runs phases"),
    "workflows.tasks.due": ReadOnly(
        "no schedule or policy is due in the world (tests/unit/test_day2_units.py proves they start operations)",
        call=lambda w: __import__("workflows.tasks").tasks.due(),
    ),
    "audit.verification.scheduled_verify": ReadOnly(
        "verifies the trail; its result is a status line in the checkpoint directory, not a record",
        call=lambda w: __import__("audit.verification").verification.scheduled_verify(),
    ),
    "audit.checkpoints.scheduled_checkpoint": Audited(
        "audit.checkpoint_created",
        call=lambda w: __import__("audit.checkpoints").checkpoints.scheduled_checkpoint(),
        setup=lambda w: __import__("audit.services").services.record("test.something"),
    ),
}


# --- refused or failed runs of audited actions -------------------------------------------------------
# Each is set up so the action cannot be done (cheaply, without a cluster); it writes the same
# action as its success, once, with the outcome it really had.


def _operation_status(status: str) -> Callable[[Any], None]:
    def setup(w) -> None:
        type(w.operation).objects.filter(pk=w.operation.pk).update(status=status)

    return setup


def _node_joined(w) -> None:
    type(w.node).objects.filter(pk=w.node.pk).update(status="joined")


def _check_running(w) -> None:
    from django.utils import timezone

    type(w.node).objects.filter(pk=w.node.pk).update(check_status="running", check_started_at=timezone.now())


def _viewer_last_admin(w) -> None:
    """The viewer's membership becomes the team's only admin (the blue admin leaves)."""
    type(w.membership).objects.filter(team=w.team, role="admin").delete()
    type(w.membership).objects.filter(pk=w.membership.pk).update(role="admin")


def _token_revoked(w) -> None:
    type(w.token).objects.filter(pk=w.token.pk).update(status="revoked")


def _certificate_key_superseded(w) -> None:
    from django.utils import timezone

    type(w.certificate_key).objects.filter(pk=w.certificate_key.pk).update(expires_at=timezone.now())


def _prepares_from_artifacts(w) -> None:
    """The world's cluster prepares from artifact sets and its machine is not prepared yet: the
    world's set (same version, a machine of unknown architecture) is in use."""
    from workflows.models import PrepareSettings

    PrepareSettings.objects.create(cluster=w.cluster, source=PrepareSettings.Source.ARTIFACTS)


def _snapshot_damaged(w) -> None:
    type(w.snapshot).objects.filter(pk=w.snapshot.pk).update(sha256="0" * 64)


REFUSED_ROUTES: dict[str, Audited] = {
    "clusters:delete": Audited(
        "cluster.deleted",
        role="superuser",
        setup=_operation_status("running"),
        data=lambda w: {"confirm": w.cluster.name},
        outcome="denied",
    ),
    "nodes:delete": Audited("node.deleted", role="operator", setup=_node_joined, outcome="denied"),
    "nodes:check": Audited("node.check_requested", role="operator", setup=_check_running, outcome="denied"),
    "nodes:host-key-accept": Audited(
        "node.host_key_accepted",
        role="operator",
        data=lambda w: {"fingerprint": "SHA256:never-offered"},
        outcome="denied",
    ),
    "nodes:host-key-keep": Audited("node.host_key_kept", role="operator", outcome="denied"),
    "nodes:bulk-check": Audited(
        "node.check_requested",
        role="operator",
        setup=_check_running,
        data=lambda w: {"nodes": [w.node.pk]},
        outcome="denied",
    ),
    "nodes:bulk-host-key-accept": Audited(
        "node.host_key_accepted",
        role="operator",
        data=lambda w: {"accept": f"{w.node.name} SHA256:never-offered"},
        outcome="denied",
    ),
    "operations:resume": Audited(
        "operation.resumed", role="operator", setup=_operation_status("succeeded"), outcome="denied"
    ),
    "operations:cancel": Audited(
        "operation.cancel_requested", role="operator", setup=_operation_status("succeeded"), outcome="denied"
    ),
    "teams:create": Audited("team.created", role="superuser", data=lambda w: {"name": "blue"}, outcome="denied"),
    "teams:user_create": Audited(
        "user.created", role="superuser", data=lambda w: {"username": "blue-viewer", "role": "viewer"}, outcome="denied"
    ),
    "teams:member_add": Audited(
        "team.member_added", data=lambda w: {"username": "blue-viewer", "role": "viewer"}, outcome="denied"
    ),
    "teams:member_role": Audited(
        "team.role_changed",
        role="superuser",
        setup=_viewer_last_admin,
        data=lambda w: {"role": "viewer"},
        outcome="denied",
    ),
    "teams:member_remove": Audited("team.member_removed", role="superuser", setup=_viewer_last_admin, outcome="denied"),
    "tokens:reveal": Audited("token.revealed", setup=_token_revoked, outcome="denied"),
    "tokens:join_command": Audited(
        "token.join_command_revealed", setup=_token_revoked, data=lambda w: {"role": "worker"}, outcome="denied"
    ),
    "tokens:certificate_key_reveal": Audited(
        "certificate_key.revealed", setup=_certificate_key_superseded, outcome="denied"
    ),
    "daytwo:snapshot-download": Audited("etcd_snapshot.downloaded", setup=_snapshot_damaged, outcome="failure"),
    "artifacts:delete": Audited(
        "artifacts.deleted",
        role="superuser",
        setup=_prepares_from_artifacts,
        data=lambda w: {"confirm": w.artifact_set.name},
        outcome="denied",
    ),
}

REFUSED_COMMANDS: dict[str, Audited] = {
    "operation resume": Audited(
        "operation.resumed",
        setup=_operation_status("succeeded"),
        argv=lambda w: ["operation", "resume", str(w.operation.pk)],
        outcome="denied",
    ),
    "node accept-host-key": Audited(
        "node.host_key_accepted",
        setup=_offer_host_key,
        argv=lambda w: ["node", "accept-host-key", w.cluster.name, w.node.name, "--fingerprint", "SHA256:other"],
        outcome="denied",  # not the fingerprint the machine offered
    ),
    "artifacts delete": Audited(
        "artifacts.deleted",
        setup=_prepares_from_artifacts,
        argv=lambda w: ["artifacts", "delete", w.artifact_set.name],
        outcome="denied",
    ),
}
