"""The "prepare cluster identity" operation: validate, make the CAs, pin, render the config."""

from __future__ import annotations

from datetime import UTC

from django.db import transaction

from audit.services import record
from clusters import kubeadm_config
from clusters.models import CertificateAuthority, Cluster
from kubeadm import CONFIG_API_VERSION, discovery, pki, uploads
from operations.models import Operation
from operations.registry import OperationKind, PhaseSpec
from operations.runner import PhaseContext, PhaseError
from remote.commands import RemoteFile


def validate_config(ctx: PhaseContext) -> None:
    cluster = ctx.cluster
    errors = kubeadm_config.configuration_errors(kubeadm_config.cluster_values(cluster))
    for error in errors:
        ctx.log(str(error), level="error")
    if errors:
        raise PhaseError(f"the cluster configuration has {len(errors)} error(s): " + "; ".join(map(str, errors)))
    ctx.log(f"Configuration valid for Kubernetes {cluster.kubernetes_version} ({CONFIG_API_VERSION}).")


def store_authority(cluster: Cluster, name: str, pair: pki.KeyPair) -> CertificateAuthority:
    """Put one CA (or the service-account key pair) into the cluster's custody, its key encrypted."""
    cert = pair.cert
    return CertificateAuthority.objects.create(
        cluster=cluster,
        name=name,
        certificate_pem=pair.cert_pem().decode() if cert is not None else "",
        public_key_pem=pair.public_key_pem().decode(),
        private_key=pair.key_pem().decode(),
        subject=cert.subject.rfc4514_string() if cert is not None else "",
        fingerprint_sha256=pki.fingerprint_sha256(cert) if cert is not None else "",
        not_before=cert.not_valid_before_utc.astimezone(UTC) if cert is not None else None,
        not_after=cert.not_valid_after_utc.astimezone(UTC) if cert is not None else None,
    )


def generate_authorities(ctx: PhaseContext) -> None:
    cluster = ctx.cluster
    existing = set(cluster.authorities.values_list("name", flat=True))
    if {"ca", "front-proxy-ca", "etcd/ca", "sa"} <= existing:
        # Idempotent on resume: a CA, once issued, is never silently replaced.
        ctx.log("Certificate authorities already exist; keeping them.")
        return
    ctx.log(f"Generating certificate authorities with {cluster.encryption_algorithm} keys…")
    authorities = pki.generate_cluster_authorities(cluster.encryption_algorithm)
    with transaction.atomic():
        for name, pair in authorities.items():
            if name in existing:
                continue
            stored = store_authority(cluster, name, pair)
            if pair.cert is not None:
                ctx.log(
                    f"{name}: {stored.subject}, SHA-256 {stored.fingerprint_sha256}, expires {stored.not_after:%Y-%m-%d}"
                )
            else:
                ctx.log(f"{name}: service-account signing key pair generated")
        record(
            "cluster.authorities_generated",
            obj=cluster,
            cluster=cluster,
            details={"algorithm": cluster.encryption_algorithm, "authorities": sorted(authorities)},
        )


def compute_ca_pin(ctx: PhaseContext) -> None:
    cluster = ctx.cluster
    ca = cluster.authorities.filter(name="ca").first()
    if ca is None:
        raise PhaseError("the cluster CA is missing; run the certificate-authorities phase first")
    pin = discovery.ca_pin_hash(pki.load_certificate(ca.certificate_pem.encode()))
    Cluster.objects.filter(pk=cluster.pk).update(ca_pin_hash=pin)
    cluster.ca_pin_hash = pin
    ctx.log(f"CA-pin hash: {pin}")


def render_config(ctx: PhaseContext) -> None:
    cluster = ctx.cluster
    text = kubeadm_config.render(cluster)
    Cluster.objects.filter(pk=cluster.pk).update(kubeadm_config=text)
    ctx.log(
        f"Rendered kubeadm configuration ({len(text.splitlines())} lines, InitConfiguration + ClusterConfiguration)."
    )


PREPARE_IDENTITY_PHASES = [
    # Pure functions of the database state: safe to re-run automatically after a lost worker.
    PhaseSpec("validate-config", "Check the cluster settings as kubeadm would", validate_config, idempotent=True),
    # Not declared idempotent: it writes key material, so after a crash a person resumes it.
    PhaseSpec(
        "certificate-authorities",
        "Generate the cluster, front-proxy and etcd CAs and the service-account key",
        generate_authorities,
    ),
    PhaseSpec(
        "ca-pin", "Compute the CA-pin hash joining nodes use to trust the cluster", compute_ca_pin, idempotent=True
    ),
    PhaseSpec(
        "render-config", "Render the kubeadm InitConfiguration and ClusterConfiguration", render_config, idempotent=True
    ),
]


def on_operation_finished(operation: Operation) -> None:
    status = Cluster.Status.READY if operation.status == Operation.Status.SUCCEEDED else Cluster.Status.FAILED
    Cluster.objects.filter(pk=operation.cluster_id).update(status=status)


PREPARE_IDENTITY = OperationKind(
    name="prepare-identity",
    label="Prepare cluster identity",
    phases=tuple(PREPARE_IDENTITY_PHASES),
    on_finished=on_operation_finished,
)


def authority_files(cluster: Cluster, *, shared: bool = False) -> list[RemoteFile]:
    """The CA certificates and keys (and the service-account key pair) from Kubeboard's custody,
    as kubeadm expects them under /etc/kubernetes/pki (kubeadm.uploads: paths and modes). On the
    first control plane (``shared`` False) kubeadm then reuses them instead of generating its own
    ("Using existing ... certificate authority"); ``shared`` pre-seeds a joining control plane."""
    held = {authority.name: authority for authority in cluster.authorities.all()}
    missing = sorted(set(uploads.AUTHORITY_FILES) - set(held))
    if missing:
        raise PhaseError(
            f"Kubeboard holds no {', '.join(missing)} for cluster {cluster.name}",
            hint="prepare the cluster's identity first (it generates the certificate authorities)",
        )
    authorities = {
        name: (
            authority.public_key_pem if name == "sa" else authority.certificate_pem,
            authority.private_key.reveal(),
        )
        for name, authority in held.items()
        if name in uploads.AUTHORITY_FILES
    }
    make = uploads.control_plane_shared_files if shared else uploads.init_upload_files
    return [RemoteFile(item.path, item.data, item.mode) for item in make(authorities)]
