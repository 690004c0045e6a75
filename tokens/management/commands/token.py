"""manage.py token create|list|delete|generate|sync CLUSTER ... — `kubeadm token` for Kubeboard.

Flags and output follow `kubeadm token` (v1.37): `create` prints the token, or with
--print-join-command the join line (with --certificate-key the control-plane one); `list`
prints kubeadm's columns; `delete` prints `bootstrap token "<id>" deleted`; `generate` prints a
fresh token without storing it. Unlike kubeadm, `list` withholds the secrets unless
--show-secrets is given (each shown token is an audited reveal), and a TTL of 0 is refused.

--as USERNAME acts as that user: their team role decides (core.permissions) and the audit
trail names them. Without it the command acts as "system", as any shell on the server could.
"""

from __future__ import annotations

import json

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

import kube
from audit.services import refusals
from clusters.models import Cluster
from core.permissions import ADMIN, OPERATE, VIEW, require
from kubeadm import join as kubeadm_join
from kubeadm import tokens as kubeadm_tokens
from kubeadm.certkeys import decode_certificate_key
from kubeadm.durations import parse_duration
from kubeadm.errors import KubeadmError
from kubeadm.tokenlist import ListedToken, format_token_list
from tokens import services
from tokens.models import BootstrapToken
from tokens.policies import TokenError
from tokens.sync import sync_now


class Command(BaseCommand):
    help = "Manage a cluster's bootstrap tokens like `kubeadm token` (create, list, delete, generate, sync)."

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="{create,list,delete,generate,sync}")

        def with_cluster(name: str, help_text: str):
            p = sub.add_parser(name, help=help_text)
            p.add_argument("cluster", help="cluster name")
            p.add_argument("--as", dest="as_user", default="", help="act as this Kubeboard user (permissions, audit)")
            return p

        create = with_cluster("create", "create a bootstrap token in the cluster")
        create.add_argument("token", nargs="?", default="", help="the token to write, [a-z0-9]{6}.[a-z0-9]{16}")
        create.add_argument("--ttl", default="", help="duration before the token is deleted (default: the policy's)")
        create.add_argument("--description", default="", help="a human friendly description of how the token is used")
        create.add_argument(
            "--usages",
            default=",".join(kubeadm_tokens.DEFAULT_USAGES),
            help="comma-separated usages (signing, authentication)",
        )
        create.add_argument(
            "--groups",
            default=",".join(kubeadm_tokens.DEFAULT_GROUPS),
            help="comma-separated extra groups the token authenticates as",
        )
        create.add_argument(
            "--print-join-command",
            action="store_true",
            help="print the full `kubeadm join` command instead of the token",
        )
        create.add_argument(
            "--certificate-key",
            default="",
            help="with --print-join-command: print the control-plane join command with this key",
        )
        create.add_argument("--auto-rotate", action="store_true", help="rotate before expiry (Kubeboard policy)")

        listing = with_cluster("list", "list the cluster's bootstrap tokens")
        listing.add_argument("--show-secrets", action="store_true", help="print full tokens (audited as reveals)")
        listing.add_argument("-o", "--output", choices=("text", "json"), default="text")

        delete = with_cluster("delete", "delete bootstrap tokens from the cluster")
        delete.add_argument("tokens", nargs="+", metavar="TOKEN_ID_OR_TOKEN")

        sub.add_parser("generate", help="print a random token without creating it")
        with_cluster("sync", "compare the cluster's token Secrets with Kubeboard and reconcile")

    def handle(self, *args, **options) -> None:
        action = options["action"]
        if action == "generate":
            self.stdout.write(str(kubeadm_tokens.generate_token()))
            return
        cluster = Cluster.objects.filter(name=options["cluster"]).first()
        if cluster is None:
            raise CommandError(f"no cluster named {options['cluster']!r} (see the cluster list)")
        user = self._user(options["as_user"])
        try:
            getattr(self, f"_{action}")(cluster, user, options)
        except (TokenError, kube.KubeAPIError) as exc:
            raise CommandError(str(exc)) from None

    def _user(self, username: str):
        if not username:
            return None
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"--as: no active user {username!r}")
        return user

    def _require(self, user, action: str, cluster) -> None:
        if user is None:
            return
        from django.core.exceptions import PermissionDenied

        try:
            require(user, action, cluster)
        except PermissionDenied as exc:
            raise CommandError(f"{user.username}: {exc}") from None

    def _create(self, cluster, user, options) -> None:
        self._require(user, OPERATE, cluster)
        if options["certificate_key"] and not options["print_join_command"]:
            raise CommandError("--certificate-key is used with --print-join-command only")
        if options["certificate_key"]:
            try:
                decode_certificate_key(options["certificate_key"])
            except KubeadmError as exc:
                raise CommandError(f"--certificate-key: {exc}") from None
        ttl = None
        if options["ttl"]:
            try:
                ttl = parse_duration(options["ttl"], field="--ttl")
            except KubeadmError as exc:
                raise CommandError(str(exc)) from None
        with refusals("token.created", TokenError, failed=(kube.KubeAPIError,), actor=user, obj=cluster):
            token, full = services.create_token(
                cluster,
                user=user,
                token=options["token"] or None,
                ttl=ttl,
                description=options["description"],
                usages=[u for u in options["usages"].split(",") if u],
                groups=[g for g in options["groups"].split(",") if g],
                auto_rotate=options["auto_rotate"],
            )
        if not options["print_join_command"]:
            self.stdout.write(full)
            return
        command = services.join_command_for(
            cluster, full, control_plane=bool(options["certificate_key"]), certificate_key=options["certificate_key"]
        )
        self.stdout.write(kubeadm_join.one_line(command))

    def _list(self, cluster, user, options) -> None:
        self._require(user, ADMIN if options["show_secrets"] else VIEW, cluster)
        now = timezone.now()
        rows = BootstrapToken.objects.filter(cluster=cluster, status=BootstrapToken.Status.ACTIVE).order_by("token_id")
        listed = []
        for row in rows:
            if row.is_expired(now):
                continue
            token = services.reveal_token(row, user=user) if options["show_secrets"] else str(row)
            listed.append(ListedToken(token, row.expires_at, tuple(row.usages), row.description, tuple(row.groups)))
        if options["output"] == "json":
            payload = [
                {
                    "token": t.token,
                    "expires": t.expires.isoformat() if t.expires else None,
                    "usages": list(t.usages),
                    "description": t.description,
                    "groups": list(t.groups),
                }
                for t in listed
            ]
            self.stdout.write(json.dumps(payload, indent=2))
            return
        self.stdout.write(format_token_list(listed, now=now), ending="")

    def _delete(self, cluster, user, options) -> None:
        self._require(user, OPERATE, cluster)
        for given in options["tokens"]:
            try:
                token_id = kubeadm_tokens.parse_token_id(given, field="token")
            except KubeadmError as exc:
                raise CommandError(str(exc)) from None
            row = BootstrapToken.objects.filter(cluster=cluster, token_id=token_id).first()
            if row is None:
                raise CommandError(
                    f"bootstrap token {token_id!r} is not known in cluster {cluster.name}; "
                    f"run `manage.py token sync {cluster.name}` to import tokens made elsewhere"
                )
            with refusals("token.revoked", TokenError, failed=(kube.KubeAPIError,), actor=user, obj=row):
                services.delete_token(row, user=user, reason="deleted with manage.py token delete")
            self.stdout.write(f'bootstrap token "{token_id}" deleted')

    def _sync(self, cluster, user, options) -> None:
        self._require(user, OPERATE, cluster)
        report = sync_now(cluster, user=user)
        if not report.ok:
            raise CommandError(f"sync {report.result}: {report.message}")
        for line in report.drift:
            self.stdout.write(line)
        self.stdout.write(
            f"cluster {cluster.name} in sync"
            + (f"; cluster-info: {report.cluster_info}" if report.cluster_info else "")
        )
