"""Adopt a cluster Kubeboard did not create, through an admin kubeconfig.

Nothing is stored until the kubeconfig has proven itself: it must be a usable kubeconfig
(embedded credentials, the cluster CA), the API server must answer through it, and a
SelfSubjectAccessReview must show that its identity may create, delete, list and get Secrets
in kube-system (bootstrap tokens are such Secrets). The kubeconfig is then stored encrypted,
the CA pin is computed from its CA, and a first token sync imports the tokens already there.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.db import transaction
from django.utils import timezone

import kube
from audit.services import record, refusals
from clusters.models import Cluster
from core.encryption import SecretValue
from kubeadm import discovery, pki

REQUIRED_ACCESS = [
    ("create", "secrets", "kube-system"),
    ("delete", "secrets", "kube-system"),
    ("list", "secrets", "kube-system"),
    ("get", "secrets", "kube-system"),
]


class AdoptionError(Exception):
    """The cluster cannot be adopted; ``field`` names the form field, the message what to do."""

    def __init__(self, message: str, *, field: str | None = "kubeconfig") -> None:
        self.field = field
        super().__init__(message)


def _probe(name: str, text: str, creds: kube.Credentials) -> Cluster:
    """An unsaved cluster that reaches the API server through ``text``."""
    return Cluster(
        name=name,
        origin=Cluster.Origin.ADOPTED,
        admin_kubeconfig=SecretValue(plaintext=text),
        control_plane_endpoint=urlsplit(creds.server).netloc,
    )


def check_kubeconfig(name: str, text: str) -> tuple[kube.Credentials, str, str]:
    """Validate, reach and authorize; returns (credentials, server version, identity). No writes."""
    try:
        creds = kube.credentials_from_kubeconfig(text)
    except kube.KubeconfigRejected as exc:
        raise AdoptionError(f"This kubeconfig cannot be used: {exc}.") from None
    probe = _probe(name, text, creds)
    try:
        version = kube.server_version(probe)
        username, groups = kube.whoami(probe)
        missing = []
        for verb, resource, namespace in REQUIRED_ACCESS:
            allowed, _ = kube.self_subject_access(probe, verb=verb, resource=resource, namespace=namespace)
            if not allowed:
                missing.append(f"{verb} {resource}")
    except kube.ClusterUnreachable as exc:
        raise AdoptionError(
            f"The API server at {creds.server} cannot be reached: {exc}. Check that the kubeconfig's server "
            "address is the one this Kubeboard can reach, then try again."
        ) from None
    except kube.ClusterForbidden as exc:
        raise AdoptionError(
            f"The API server at {creds.server} refused this kubeconfig's credentials ({exc}). Upload a current "
            "admin kubeconfig (e.g. /etc/kubernetes/admin.conf of a control-plane node)."
        ) from None
    except kube.KubeAPIError as exc:
        raise AdoptionError(f"The API server at {creds.server} answered with an error: {exc}") from None
    if missing:
        raise AdoptionError(
            f"The kubeconfig's identity {username!r} (groups {', '.join(groups) or 'none'}) may not "
            f"{', '.join(missing)} in namespace kube-system, which managing bootstrap tokens needs. Upload an admin "
            "kubeconfig, or bind this identity to a role that allows it."
        )
    return creds, version, username


def adopt_cluster(*, name: str, team, kubeconfig: str, user) -> Cluster:
    """Register the cluster (all or nothing), then run a first token sync. An attempt that is
    refused (the name is taken) or fails (the API server cannot be reached or refuses the
    kubeconfig) writes its one ``cluster.adopted`` record with that outcome and the reason."""
    attempt = {"name": name, "team": team.name if team else None}
    with refusals("cluster.adopted", AdoptionError, actor=user, details=attempt):
        if Cluster.objects.filter(name=name).exists():
            raise AdoptionError(f"A cluster named {name!r} already exists; choose another name.", field="name")
    with refusals("cluster.adopted", failed=(AdoptionError,), actor=user, details=attempt):
        return _adopt(name=name, team=team, kubeconfig=kubeconfig, user=user)


def _adopt(*, name: str, team, kubeconfig: str, user) -> Cluster:
    from tokens.models import TokenSync
    from tokens.sync import sync_cluster

    creds, version, username = check_kubeconfig(name, kubeconfig)
    ca_certs = pki.load_certificates(creds.ca_pem, name="certificate-authority-data")
    pin = discovery.ca_pin_hash(ca_certs[0])
    now = timezone.now()
    with transaction.atomic():
        cluster = Cluster.objects.create(
            name=name,
            team=team,
            origin=Cluster.Origin.ADOPTED,
            admin_kubeconfig=kubeconfig,
            control_plane_endpoint=urlsplit(creds.server).netloc,
            kubernetes_version=version,
            status=Cluster.Status.READY,
            ca_pin_hash=pin,
            created_by=user if getattr(user, "pk", None) else None,
        )
        TokenSync.objects.create(cluster=cluster, next_sync_at=now)
        record(
            "cluster.adopted",
            actor=user,
            obj=cluster,
            cluster=cluster,
            details={
                "server": creds.server,
                "kubernetes_version": version,
                "ca_pin_hash": pin,
                "identity": username,
                "team": team.name if team else None,
            },
        )
    sync_cluster(cluster, user=user)
    return cluster
