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
renewal (daytwo/certificates.py) read machines through this one command.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from typing import NamedTuple

from kubeadm.config import DEFAULT_CERTIFICATES_DIR

KUBERNETES_DIR = "/etc/kubernetes"
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
