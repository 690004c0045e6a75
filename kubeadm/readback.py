"""What kubeadm left on a machine under /etc/kubernetes, read back in one read-only command.

``read_command`` prints sections that ``parse_sections`` splits again:

* ``@@cert PATH``: every certificate under /etc/kubernetes/pki (``*.crt``, sorted);
* ``@@kubeconfig PATH``: the client certificate of each kubeconfig kubeadm writes, and only
  that: the ``client-certificate-data`` line decoded, or the certificate block of the file
  ``client-certificate`` points to (kubelet.conf names the kubelet's rotated
  ``kubelet-client-current.pem``, which also holds the key). Keys never leave the machine;
* ``@@manifest PATH``: each static Pod manifest (``manifests=True``);
* ``@@check-expiration``: ``kubeadm certs check-expiration``'s own table
  (``check_expiration=True``), followed by ``@@exit STATUS``.

The read-back after init and joins (clusters/inventory.py) and the certificate inventory and
renewal (workflows/certificates.py) read machines through this one command, and turn each
certificate it prints into the same row with ``certificate_row``.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple

from cryptography import x509

from kubeadm import pki
from kubeadm.components import KUBERNETES_DIR
from kubeadm.config import DEFAULT_CERTIFICATES_DIR

PKI_DIR = DEFAULT_CERTIFICATES_DIR
# The kubeconfig files kubeadm writes on a node (kubeconfig phase, kubelet-start), in the order read.
KUBECONFIG_FILES = ("admin.conf", "super-admin.conf", "controller-manager.conf", "scheduler.conf", "kubelet.conf")

# Sections that only mark where the output ends; they carry nothing to read.
_MARKERS = ("end", "exit")


class Section(NamedTuple):
    kind: str  # "cert", "kubeconfig", "manifest" or "check-expiration"
    path: str  # empty for check-expiration
    text: str


def read_command(
    *, check_expiration: bool = False, manifests: bool = False, root: str = KUBERNETES_DIR, kubeadm: str = "kubeadm"
) -> str:
    """The shell text that prints the sections (``root`` is /etc/kubernetes except in tests)."""
    top = shlex.quote(root.rstrip("/"))
    parts = []
    if check_expiration:
        parts.append(f'echo "@@check-expiration"; {shlex.quote(kubeadm)} certs check-expiration 2>&1; echo "@@exit $?"')
    parts.append(
        f'for f in $(find {top}/pki -name \'*.crt\' 2>/dev/null | sort); do\n  echo "@@cert $f"; cat "$f"\ndone'
    )
    parts.append(
        f"for f in {' '.join(KUBECONFIG_FILES)}; do\n"
        f"  p={top}/$f\n"
        '  [ -f "$p" ] || continue\n'
        '  echo "@@kubeconfig $p"\n'
        "  data=$(sed -n 's/^ *client-certificate-data: *//p' \"$p\" | head -n 1)\n"
        '  if [ -n "$data" ]; then echo "$data" | base64 -d 2>/dev/null\n'
        "  else\n"
        "    file=$(sed -n 's/^ *client-certificate: *//p' \"$p\" | head -n 1)\n"
        '    [ -n "$file" ] && [ -f "$file" ] && sed -n \'/BEGIN CERTIFICATE/,/END CERTIFICATE/p\' "$file"\n'
        "  fi\n"
        "done"
    )
    if manifests:
        parts.append(
            f"for f in $(find {top}/manifests -maxdepth 1 -name '*.yaml' 2>/dev/null | sort); do\n"
            '  echo "@@manifest $f"; cat "$f"\n'
            "done"
        )
    parts.append('echo "@@end"')
    return "\n" + "\n".join(parts) + "\n"


def parse_sections(lines: Iterable[str]) -> list[Section]:
    """The sections of ``read_command``'s output, in order, without the end markers."""
    found: list[tuple[str, str, list[str]]] = []
    for line in lines:
        if line.startswith("@@"):
            kind, _, path = line[2:].partition(" ")
            found.append((kind, path.strip(), []))
        elif found:
            found[-1][2].append(line)
    return [Section(kind, path, "\n".join(body) + "\n") for kind, path, body in found if kind not in _MARKERS]


def check_expiration_name(path: str) -> str:
    """The name ``kubeadm certs check-expiration`` uses for a file ("etcd/server.crt" -> "etcd-server")."""
    base = path.removeprefix(f"{PKI_DIR}/").removeprefix(f"{KUBERNETES_DIR}/").removesuffix(".crt")
    return base.replace("/", "-")


def certificate_row(source: str, path: str, text: str, held: dict[str, x509.Certificate], now: datetime) -> dict:
    """One certificate section (``source`` "cert" or "kubeconfig") as a row, compared with the CAs
    Kubeboard holds (``held``, by base name such as "etcd/ca").

    Keys: ``name`` (check-expiration's), ``path``, ``source``, ``kind`` ("ca", "leaf",
    "kubeconfig" or "unreadable"), ``subject`` (common name), ``issuer``, ``serial`` (hex),
    ``not_before``, ``not_after`` (ISO), ``days_left``, ``dns``, ``ips``, ``fingerprint``,
    ``custody`` (in words), ``ca`` (the held CA that signed a leaf), ``drift`` (findings),
    ``error`` (unreadable only).
    """
    name = check_expiration_name(path)
    row: dict = {"name": name, "path": path, "source": source, "drift": []}
    try:
        cert = pki.load_certificate(text.encode(), name=path)
    except Exception as exc:  # a truncated or foreign file is shown, not fatal
        row.update(kind="unreadable", error=f"not a PEM certificate: {exc}", custody="unreadable")
        row["drift"].append(f"{path} is not a readable certificate")
        return row
    dns, ips = pki.alt_names(cert)
    not_after = cert.not_valid_after_utc
    row.update(
        kind="ca" if pki.is_ca(cert) and source == "cert" else ("kubeconfig" if source == "kubeconfig" else "leaf"),
        subject=pki.common_name(cert),
        issuer=cert.issuer.rfc4514_string(),
        serial=format(cert.serial_number, "x"),
        not_before=cert.not_valid_before_utc.isoformat(),
        not_after=not_after.isoformat(),
        days_left=round((not_after - now).total_seconds() / 86400, 2),
        dns=dns,
        ips=ips,
        fingerprint=pki.fingerprint_sha256(cert),
    )
    if row["kind"] == "ca":
        base = path.removeprefix(f"{PKI_DIR}/").removesuffix(".crt")
        ours = held.get(base)
        if ours is None:
            row["custody"] = "not held by Kubeboard"
        elif pki.fingerprint_sha256(ours) == row["fingerprint"]:
            row["custody"] = "same as Kubeboard's"
        else:
            row["custody"] = "DIFFERENT from Kubeboard's"
            row["drift"].append(f"CA {base} on the machine is not the one Kubeboard holds")
        return row
    signer = pki.signer_among(cert, held)
    if signer:
        row["custody"] = f"signed by Kubeboard's {signer}"
        row["ca"] = signer
        return row
    if held:
        row["custody"] = "NOT signed by a CA Kubeboard holds"
        row["drift"].append(f"{name} is not signed by a CA Kubeboard holds")
    else:
        row["custody"] = "Kubeboard holds no CA of this cluster"
    return row
