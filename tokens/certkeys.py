"""Certificate keys for control-plane joins (kubeadm's upload-certs), through an operation.

For a cluster whose CA keys Kubeboard holds, the ``upload-certs`` operation writes the
``kube-system/kubeadm-certs`` Secret itself through the API — no SSH to a control plane —
exactly as ``kubeadm init phase upload-certs --upload-certs`` would: a fresh 64-hex key,
AES-GCM encrypted CA material (``kubeadm.certkeys.kubeadm_certs_secret``), owned by a new
two-hour token without usages, so the Secret disappears with that token. The key is stored
encrypted, shown with its countdown, and wiped at its expiry (the sweep) or when a newer key
supersedes it.
"""

from __future__ import annotations

from django.db import transaction

import kube
from audit.services import record, refusals_of
from kubeadm import certkeys, uploads
from operations.registry import OperationKind, PhaseSpec
from operations.runner import PhaseContext, PhaseError
from tokens.models import BootstrapToken, CertificateKey
from tokens.policies import policy_for
from tokens.services import TokenStateError, create_token

KIND = "upload-certs"


def can_upload_certs(cluster) -> bool:
    """Kubeboard can write kubeadm-certs only with the CA material in its custody."""
    if cluster.is_adopted:
        return False
    # The same four authorities (CA files of certsToTransfer) kubeadm.uploads writes onto machines.
    wanted = list(uploads.AUTHORITY_FILES)
    held = {name for name, key in cluster.authorities.filter(name__in=wanted).values_list("name", "private_key") if key}
    return set(wanted) <= held


class CertificateKeyRefused(Exception):
    """A new certificate key cannot be made here (the message says what to do instead)."""


@refusals_of("operation.queued", CertificateKeyRefused, details={"kind": KIND})
def request_certificate_key(cluster, *, user=None):
    """Queue the ``upload-certs`` operation, or refuse (audited) when Kubeboard lacks the CA keys."""
    from operations.services import start_operation

    if not can_upload_certs(cluster):
        raise CertificateKeyRefused(
            "Kubeboard does not hold this cluster's CA keys; run `kubeadm init phase upload-certs --upload-certs` "
            "on a control-plane node instead."
        )
    return start_operation(cluster, KIND, user=user)


def ca_files(cluster) -> dict[str, bytes]:
    """PKI-relative path -> bytes, as the files sit in /etc/kubernetes/pki on a control plane."""
    files: dict[str, bytes] = {}
    for authority in cluster.authorities.filter(name__in=list(uploads.AUTHORITY_FILES)):
        cert_file, key_file = uploads.AUTHORITY_FILES[authority.name]
        public = authority.public_key_pem if authority.name == "sa" else authority.certificate_pem
        files[cert_file] = public.encode()
        files[key_file] = authority.private_key.reveal().encode()
    return files


def current_key(cluster, *, now=None) -> CertificateKey | None:
    from django.utils import timezone

    now = now or timezone.now()
    return (
        CertificateKey.objects.filter(cluster=cluster, status=CertificateKey.Status.ACTIVE, expires_at__gt=now)
        .order_by("-created_at")
        .first()
    )


def issue_certificate_key(cluster, *, user=None, operation=None, log=lambda message: None) -> CertificateKey:
    """Write a fresh kubeadm-certs Secret and record its key (the work of the operation's phase)."""
    if not can_upload_certs(cluster):
        raise PhaseError(
            f"Kubeboard does not hold the CA keys of cluster {cluster.name}",
            hint="run `kubeadm init phase upload-certs --upload-certs` on a control-plane node instead",
        )
    policy = policy_for(cluster)
    owner, _ = create_token(
        cluster,
        user=user,
        ttl=min(certkeys.LIFETIME, policy.max_ttl),
        usages=(),
        groups=(),
        description=certkeys.TOKEN_DESCRIPTION,
        purpose=BootstrapToken.Purpose.UPLOAD_CERTS,
    )
    log(f"Created token {owner.token_id} (no usages) that owns kubeadm-certs until {owner.expires_at:%H:%M:%S} UTC.")
    key = certkeys.generate_certificate_key()
    body = certkeys.kubeadm_certs_secret(
        ca_files(cluster), key, owner_token_id=owner.token_id, owner_uid=owner.secret_uid
    )
    kube.ensure_role_and_binding(cluster, certkeys.ROLE, certkeys.ROLE_BINDING, user=user)
    kube.put_secret(cluster, body, user=user)
    log('Stored the certificates in Secret "kubeadm-certs" in the "kube-system" Namespace.')
    with transaction.atomic():
        superseded = list(
            CertificateKey.objects.filter(cluster=cluster, status=CertificateKey.Status.ACTIVE).values_list(
                "pk", flat=True
            )
        )
        CertificateKey.objects.filter(pk__in=superseded).update(
            status=CertificateKey.Status.SUPERSEDED, key="", next_action_at=None
        )
        row = CertificateKey.objects.create(
            cluster=cluster,
            key=key,
            token=owner,
            operation=operation,
            created_by=user if getattr(user, "pk", None) else None,
            expires_at=owner.expires_at,
            next_action_at=owner.expires_at,
        )
        record(
            "certificate_key.issued",
            actor=user,
            obj=row,
            cluster=cluster,
            details={
                "certificate_key_id": row.pk,
                "owner_token_id": owner.token_id,
                "expires_at": row.expires_at.isoformat(),
                "superseded": superseded,
            },
        )
    log(f"New certificate key valid until {row.expires_at:%Y-%m-%d %H:%M:%S} UTC (shown on the cluster page).")
    return row


def _upload_certs_phase(ctx: PhaseContext) -> None:
    with kube.phase_errors("retry the operation"):
        issue_certificate_key(ctx.cluster, user=ctx.operation.requested_by, operation=ctx.operation, log=ctx.log)


UPLOAD_CERTS = OperationKind(
    name=KIND,
    label="Upload control-plane certificates (new certificate key)",
    phases=(
        PhaseSpec(
            "upload-certs",
            "Write the kubeadm-certs Secret with a fresh certificate key through the API",
            _upload_certs_phase,
        ),
    ),
)


@refusals_of("certificate_key.revealed", TokenStateError)
def reveal_certificate_key(key: CertificateKey, *, user) -> str:
    """The key itself, for an admin, while it is valid; audited."""
    from core.permissions import ADMIN, require

    if user is not None:
        require(user, ADMIN, key.cluster)
    if not key.is_valid():
        raise TokenStateError("this certificate key has expired or was superseded; request a new one")
    record("certificate_key.revealed", actor=user, obj=key, cluster=key.cluster, details={"certificate_key_id": key.pk})
    return key.plain_key()
