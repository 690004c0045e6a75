"""``manage.py node ACTION …``: the machine screens, for scripts.

Each action goes through the same form (validation, messages) and services (transaction,
audit record) as the web UI; audit records name the actor "system". Exit status: 0 on
success, 1 on bad input or a refused action, 2 when a machine cannot be reached or logged
into (``check``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from clusters.commandline import add_registered_parsers, registered_runner
from clusters.models import Cluster
from nodes import services
from nodes.connect import connect
from nodes.forms import NodeForm
from nodes.models import Node
from remote import ssh

UNREACHABLE_EXIT = 2


class Command(BaseCommand):
    help = "Machines of a cluster: add, list, show-key, accept-host-key, check."
    # The "check" action's method shadows BaseCommand.check (system checks), which the command
    # line calls before handle(); without this, `manage.py node …` fails outside call_command.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

        add = actions.add_parser("add", help="register a machine in a cluster")
        add.add_argument("cluster")
        add.add_argument("name", help="the Kubernetes node name")
        add.add_argument("--address", required=True, help="IP address or DNS host name")
        add.add_argument("--port", type=int, default=22, help="SSH port (default 22)")
        add.add_argument("--user", default="root", help="SSH user: root, or one with passwordless sudo")
        add.add_argument("--role", choices=[c.value for c in Node.Role], default=Node.Role.WORKER.value)
        credential = add.add_mutually_exclusive_group()
        credential.add_argument("--key-file", type=Path, help="private key file to log in with")
        credential.add_argument(
            "--password-stdin", action="store_true", help="read the SSH password from the first line of stdin"
        )
        add.add_argument(
            "--passphrase-stdin", action="store_true", help="with --key-file: read the key's passphrase from stdin"
        )
        add.add_argument("--ignore-preflight-errors", default="", help="kubeadm check names, comma separated")

        listing = actions.add_parser("list", help="list a cluster's machines")
        listing.add_argument("cluster")

        show_key = actions.add_parser("show-key", help="print the cluster's public key (for authorized_keys)")
        show_key.add_argument("cluster")

        accept = actions.add_parser("accept-host-key", help="pin the host key a machine offers")
        accept.add_argument("cluster")
        accept.add_argument("name")
        accept.add_argument(
            "--fingerprint", required=True, help="SHA256:… as `ssh-keygen -lf` prints it on the machine"
        )

        check = actions.add_parser("check", help="check a machine (read-only) and print the report")
        check.add_argument("cluster")
        check.add_argument("name")
        check.add_argument("--json", dest="as_json", action="store_true", help="print the report as JSON")

        # join and reset are workflows: the workflows app registers them (clusters.commandline).
        add_registered_parsers("node", actions)

    def handle(self, *args, action: str, **options) -> None:
        handler = {
            "add": self.add,
            "list": self.list,
            "show-key": self.show_key,
            "accept-host-key": self.accept_host_key,
            "check": self.check,
        }.get(action)
        if handler is None:
            return registered_runner("node", action)(self, action, **options)
        handler(**options)

    # -- helpers ---------------------------------------------------------------------------

    def _cluster(self, name: str) -> Cluster:
        cluster = Cluster.objects.filter(name=name).first()
        if cluster is None:
            known = ", ".join(Cluster.objects.values_list("name", flat=True)[:20]) or "none yet"
            raise CommandError(f"no cluster named {name!r} (clusters: {known})")
        return cluster

    def _node(self, cluster_name: str, name: str) -> Node:
        cluster = self._cluster(cluster_name)
        node = cluster.nodes.filter(name=name).first()
        if node is None:
            known = ", ".join(cluster.nodes.values_list("name", flat=True)) or "none yet"
            raise CommandError(f"cluster {cluster.name} has no machine named {name!r} (machines: {known})")
        return node

    def _stdin_line(self, what: str) -> str:
        line = sys.stdin.readline().rstrip("\n")
        if not line:
            raise CommandError(f"expected the {what} on the first line of stdin, got nothing")
        return line

    # -- actions ---------------------------------------------------------------------------

    def add(self, *, cluster, name, address, port, user, role, key_file, password_stdin, passphrase_stdin, **options):
        cluster_obj = self._cluster(cluster)
        data = {
            "name": name,
            "address": address,
            "ssh_port": port,
            "ssh_user": user,
            "role": role,
            "credential": Node.Credential.CLUSTER_KEY,
            "ignore_preflight_errors": options["ignore_preflight_errors"],
        }
        if passphrase_stdin and key_file is None:
            raise CommandError("--passphrase-stdin goes with --key-file")
        if key_file is not None:
            try:
                data["private_key"] = key_file.read_text()
            except (OSError, UnicodeDecodeError) as exc:
                raise CommandError(f"cannot read the key file {key_file}: {exc}") from exc
            data["credential"] = Node.Credential.PRIVATE_KEY
            if passphrase_stdin:
                data["passphrase"] = self._stdin_line("key passphrase")
        elif password_stdin:
            data["credential"] = Node.Credential.PASSWORD
            data["password"] = self._stdin_line("password")
        form = NodeForm(data, cluster=cluster_obj, user=None)
        if not form.is_valid():
            problems = [
                f"{'--' + _OPTION.get(field, field) if field != '__all__' else 'error'}: {message}"
                for field, messages in form.errors.items()
                for message in messages
            ]
            raise CommandError("the machine was not added:\n  " + "\n  ".join(problems))
        node = services.add_node(form.save(), user=None)
        self.stdout.write(
            f"Added machine {node.name} ({node.destination}, {node.get_role_display().lower()}) "
            f"to cluster {cluster_obj.name}, logging in with {node.get_credential_display().lower()}."
        )
        if node.credential == Node.Credential.CLUSTER_KEY:
            self.stdout.write(f"Add this public key to ~{node.ssh_user}/.ssh/authorized_keys on the machine:")
            self.stdout.write(cluster_obj.ssh_key.public_key)
        self.stdout.write(f"Next: manage.py node check {cluster_obj.name} {node.name}")

    def list(self, *, cluster, **options):
        cluster_obj = self._cluster(cluster)
        rows = [("NAME", "ADDRESS", "PORT", "USER", "ROLE", "CREDENTIAL", "HOST KEY", "STATUS", "CHECKED")]
        for node in cluster_obj.nodes.all():
            rows.append(
                (
                    node.name,
                    node.address,
                    str(node.ssh_port),
                    node.ssh_user,
                    node.role,
                    node.credential,
                    node.host_key_state,
                    node.status,
                    node.checked_at.strftime("%Y-%m-%d %H:%M") if node.checked_at else "never",
                )
            )
        if len(rows) == 1:
            self.stdout.write(f"Cluster {cluster_obj.name} has no machines yet.")
            return
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            self.stdout.write("  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip())

    def show_key(self, *, cluster, **options):
        cluster_obj = self._cluster(cluster)
        existed = services.cluster_public_key(cluster_obj) is not None
        pair = services.ensure_cluster_key(cluster_obj, user=None)
        if not existed:
            self.stderr.write(f"Generated the SSH key pair of cluster {cluster_obj.name} ({pair.fingerprint}).")
        # Only the key on stdout, so `manage.py node show-key c1 >> authorized_keys` works.
        self.stdout.write(pair.public_key)

    def accept_host_key(self, *, cluster, name, fingerprint, **options):
        node = self._node(cluster, name)
        if node.host_key_state == Node.HostKeyState.PINNED and node.ssh_host_key_fingerprint == fingerprint:
            self.stdout.write(f"{node} already has host key {fingerprint} pinned.")
            return
        if not node.offered_host_key:
            # Fetch what the machine offers now (connect records it, then refuses it).
            try:
                connect(node).close()
            except (ssh.HostKeyUnknown, ssh.HostKeyChanged):
                pass
            except ssh.SSHError as exc:
                raise CommandError(f"cannot fetch the host key of {node}: {exc.full}") from exc
            node.refresh_from_db()
        try:
            node = services.accept_host_key(node, user=None, fingerprint=fingerprint)
        except services.NodeStateError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Pinned host key {node.ssh_host_key_fingerprint} for {node}.")

    def check(self, *, cluster, name, as_json: bool = False, **options):
        node = self._node(cluster, name)
        progress = (lambda step: None) if as_json else (lambda step: self.stdout.write(f"… {step}"))
        report = services.run_check(node.pk, progress=progress)
        if as_json:
            self.stdout.write(json.dumps(report, indent=2, sort_keys=True))
        else:
            self.stdout.write(format_report(report))
            if report.get("host_key") == "offered":
                self.stdout.write(
                    f"next: accept it after comparing: manage.py node accept-host-key {node.cluster.name} {node.name} "
                    f"--fingerprint {report['offered_fingerprint']}"
                )
        if report.get("host_key") == "offered":
            raise CommandError(f"{node}: host key not accepted yet", returncode=UNREACHABLE_EXIT)
        if not report["login"]:
            raise CommandError(f"{node}: {report['error']}", returncode=UNREACHABLE_EXIT)
        if report["problems"]:
            raise CommandError(f"{node}: {len(report['problems'])} problem(s) found")


_OPTION = {"ssh_port": "port", "ssh_user": "user", "private_key": "key-file", "password": "password-stdin"}


def format_report(report: dict) -> str:
    lines = []
    if not report["login"]:
        lines.append(f"reachable: {'yes' if report['reachable'] else 'no'}; logged in: no")
        lines.append(f"error: {report['error']}")
        if report.get("hint"):
            lines.append(f"hint: {report['hint']}")
        return "\n".join(lines)
    os_name = report.get("os", {}).get("pretty_name", "unknown")
    lines.append(f"operating system: {os_name}")
    lines.append(f"kernel: {report.get('kernel')}  architecture: {report.get('architecture')}")
    for name, binary in report.get("binaries", {}).items():
        if binary["path"]:
            fit = f" — {binary['skew']}" if binary["skew"] else (" — fits" if binary["version"] else "")
            lines.append(f"{name}: {binary['path']} {binary['version'] or '(no version)'}{fit}")
        else:
            lines.append(f"{name}: not found")
    etc = report.get("etc_kubernetes", {})
    lines.append(
        "/etc/kubernetes: "
        + (f"{etc['count']} files" if etc.get("populated") else ("empty" if etc.get("exists") else "absent"))
    )
    for file in etc.get("files", []):
        lines.append(f"  {file}")
    ports = report.get("ports", {})
    in_use = ", ".join(map(str, ports.get("in_use", []))) or "none"
    lines.append(f"ports checked: {', '.join(map(str, ports.get('checked', [])))}; in use: {in_use}")
    for warning in report.get("warnings", []):
        lines.append(f"warning: {warning}")
    for problem in report.get("problems", []):
        lines.append(f"problem: {problem}")
    lines.append(
        "result: " + ("no problems found" if not report["problems"] else f"{len(report['problems'])} problem(s)")
    )
    return "\n".join(lines)
