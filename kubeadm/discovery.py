"""CA public-key pins for token discovery (--discovery-token-ca-cert-hash).

Source: cmd/kubeadm/app/util/pubkeypin/pubkeypin.go. A pin is
"sha256:" + lowercase hex of SHA-256 over the CA's DER SubjectPublicKeyInfo
(not over the whole certificate).
"""

from __future__ import annotations

import hashlib
import re

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from kubeadm.errors import PinError

_HEX64_RE = re.compile(r"[0-9a-fA-F]{64}")


def ca_pin_hash(cert: x509.Certificate) -> str:
    """pubkeypin.Hash: "sha256:<hex of SHA-256(SubjectPublicKeyInfo DER)>"."""
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def parse_pin(pin: str) -> str:
    """pubkeypin.Set.Allow for one pin: returns the normalized "sha256:<lowercase hex>".

    Only the sha256 type exists; a bare hex value without "sha256:" is rejected
    as current kubeadm does. Pins are public, so they may appear in messages.
    """
    if not isinstance(pin, str) or ":" not in pin:
        raise PinError(
            f"pin: expected the form sha256:<64 hex characters>, found {pin!r} (missing the 'sha256:' type prefix)"
        )
    kind, _, value = pin.partition(":")
    if kind.lower() != "sha256":
        raise PinError(f"pin: expected type 'sha256', found unknown type {kind!r} in {pin!r}")
    if not _HEX64_RE.fullmatch(value):
        raise PinError(
            f"pin: expected 64 hexadecimal characters after 'sha256:', found {len(value)} characters in {pin!r}"
        )
    return "sha256:" + value.lower()


def verify_pins(cert: x509.Certificate | list[x509.Certificate], pins: list[str]) -> None:
    """pubkeypin.Set.CheckAny: pass when some certificate's hash is pinned.

    Raises PinError for malformed pins, an empty pin list, or no match; the
    message lists the actual hashes so the operator can compare.
    """
    certs = cert if isinstance(cert, list) else [cert]
    if not pins:
        raise PinError("pins: expected at least one sha256:<hex> pin, found an empty list")
    allowed = {parse_pin(p) for p in pins}
    actual = [ca_pin_hash(c) for c in certs]
    if not any(h in allowed for h in actual):
        raise PinError(
            f"pins: none of the public keys {', '.join(repr(h) for h in actual)} are pinned "
            f"(expected one of {', '.join(sorted(allowed))})"
        )


# --- kube-public/cluster-info, as a joining node checks it ------------------------

CLUSTER_INFO_KUBECONFIG_KEY = "kubeconfig"


def jws_signature_ids(configmap_data: dict) -> list[str]:
    """Token ids that have a ``jws-kubeconfig-<id>`` signature in cluster-info, sorted."""
    from kubeadm.tokens import JWS_KEY_PREFIX

    return sorted(k[len(JWS_KEY_PREFIX) :] for k in configmap_data or {} if k.startswith(JWS_KEY_PREFIX))


def verify_cluster_info(configmap_data: dict, token: object, pins: list[str]) -> None:
    """Check kube-public/cluster-info's ``data`` the way ``kubeadm join`` does
    (discovery/token/token.go, retrieveValidatedConfigInfo), in the same order:

    1. a ``jws-kubeconfig-<token id>`` signature exists (JWSError "no signature":
       the token is unknown to the cluster or expired — the bootstrap signer drops
       the signatures of expired tokens);
    2. it is a valid detached JWS over the exact ``kubeconfig`` text, keyed with the
       token secret (JWSError: wrong secret, or the content changed);
    3. the kubeconfig's CA matches one of ``pins`` (PinError with the expected and
       the actual hashes).

    ``token`` is "id.secret" or a BootstrapTokenString. Messages never contain the
    token secret. Returns None; raises on the first failed check.
    """
    from kubeadm import kubeconfig, tokens
    from kubeadm.errors import JWSError, KubeconfigError

    parsed = token if isinstance(token, tokens.BootstrapTokenString) else tokens.parse_token(token)
    data = configmap_data or {}
    content = data.get(CLUSTER_INFO_KUBECONFIG_KEY)
    if not isinstance(content, str) or not content:
        raise KubeconfigError(
            f"cluster-info: expected a 'kubeconfig' key holding the cluster's kubeconfig, found keys {sorted(data)}"
        )
    key = tokens.JWS_KEY_PREFIX + parsed.id
    if key not in data:
        found = jws_signature_ids(data)
        raise JWSError(
            f"cluster-info: expected a signature {key} for token id {parsed.id!r}, found signatures for "
            f"{', '.join(repr(i) for i in found) or 'no token'} (the token is unknown to the cluster or "
            "has expired)"
        )
    tokens.verify_detached_jws(data[key], content, parsed.id, parsed.secret)
    config = kubeconfig.parse_kubeconfig(content)
    verify_pins(kubeconfig.ca_certificates(config), pins)
