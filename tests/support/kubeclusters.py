"""Clusters on the real test bed, as the tokens tests use them.

``store_authorities`` puts CA key pairs into a cluster's custody the way the identity
operation does; ``seed_node_pki`` writes them onto a sandbox node before ``kubeadm init
phase certs`` runs, so kubeadm reuses Kubeboard's CA ("Using existing ca certificate
authority") exactly as on a cluster Kubeboard creates.
"""

from __future__ import annotations

from datetime import UTC

from kubeadm import pki

# kubeadm base name -> (certificate file, key file) under /etc/kubernetes/pki
PKI_FILES = {
    "ca": ("ca.crt", "ca.key"),
    "front-proxy-ca": ("front-proxy-ca.crt", "front-proxy-ca.key"),
    "etcd/ca": ("etcd/ca.crt", "etcd/ca.key"),
    "sa": ("sa.pub", "sa.key"),
}


def store_authorities(cluster, pairs: dict[str, pki.KeyPair]) -> None:
    from clusters.models import CertificateAuthority

    for name, pair in pairs.items():
        cert = pair.cert
        CertificateAuthority.objects.create(
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


def seed_node_pki(node, pairs: dict[str, pki.KeyPair]) -> None:
    """Write Kubeboard's CAs into the node's /etc/kubernetes/pki (kubeadm then reuses them)."""
    for name, (cert_file, key_file) in PKI_FILES.items():
        pair = pairs[name]
        cert_path = node.host_path(f"/etc/kubernetes/pki/{cert_file}")
        key_path = node.host_path(f"/etc/kubernetes/pki/{key_file}")
        cert_path.parent.mkdir(parents=True, exist_ok=True)
        cert_path.write_bytes(pair.public_key_pem() if name == "sa" else pair.cert_pem())
        key_path.write_bytes(pair.key_pem())
        key_path.chmod(0o600)
