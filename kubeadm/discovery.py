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
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def parse_pin(pin: str) -> str:
    """pubkeypin.Set.Allow for one pin: returns the normalized "sha256:<lowercase hex>".

    Only the sha256 type exists; a bare hex value without "sha256:" is rejected
    as current kubeadm does. Pins are public, so they may appear in messages.
    """
    if not isinstance(pin, str) or ":" not in pin:
        raise PinError(f"pin: expected the form sha256:<64 hex characters>, found {pin!r} "
                       "(missing the 'sha256:' type prefix)")
    kind, _, value = pin.partition(":")
    if kind.lower() != "sha256":
        raise PinError(f"pin: expected type 'sha256', found unknown type {kind!r} in {pin!r}")
    if not _HEX64_RE.fullmatch(value):
        raise PinError(f"pin: expected 64 hexadecimal characters after 'sha256:', found {len(value)} characters "
                       f"in {pin!r}")
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
        raise PinError(f"pins: none of the public keys {', '.join(repr(h) for h in actual)} are pinned "
                       f"(expected one of {', '.join(sorted(allowed))})")
