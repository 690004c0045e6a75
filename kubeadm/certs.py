"""The whole certificate tree kubeadm makes, its files, expiry and renewal.

Sources: cmd/kubeadm/app/phases/certs/certlist.go (the KubeadmCert* specs),
certs.go, renewal/manager.go, cmd/certs.go (check-expiration), checked against
the real kubeadm v1.37.2 (tests/unit/kubeadm/data/real-v1.37.2): names, CNs,
organizations (no O on any leaf of the certs phase), usages, SAN order, file
modes (sa.pub is written 0600 like a key) and the check-expiration table.
"""

from __future__ import annotations

import datetime
import os
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509

from kubeadm import netutil, pki
from kubeadm.durations import short_human_duration
from kubeadm.errors import CertificateError
from kubeadm.pki import CLIENT_AUTH, SERVER_AUTH, KeyPair
from kubeadm.tabwriter import tabwriter

if TYPE_CHECKING:
    from kubeadm.config import ClusterConfiguration, InitConfiguration


@dataclass(frozen=True)
class CertSpec:
    """One kubeadm-managed certificate (certlist.go KubeadmCert)."""

    name: str  # kubeadm's name: "apiserver", "etcd-server", ...
    base_name: str  # file base under certificatesDir: "apiserver", "etcd/server"
    ca_base_name: str  # "ca", "front-proxy-ca", "etcd/ca"
    common_name: str  # "" means the node name
    usages: tuple[str, ...]
    long_name: str
    organization: tuple[str, ...] = ()
    alt_names: str = ""  # "apiserver", "etcd-server", "etcd-peer" or ""
    etcd: bool = False  # only with local etcd


CA_SPECS: dict[str, tuple[str, str]] = {
    # base name: (check-expiration name, CN)
    "ca": ("ca", "kubernetes"),
    "front-proxy-ca": ("front-proxy-ca", "front-proxy-ca"),
    "etcd/ca": ("etcd-ca", "etcd-ca"),
}

LEAF_SPECS: tuple[CertSpec, ...] = (
    CertSpec(
        "apiserver",
        "apiserver",
        "ca",
        "kube-apiserver",
        (SERVER_AUTH,),
        "certificate for serving the Kubernetes API",
        alt_names="apiserver",
    ),
    CertSpec(
        "apiserver-kubelet-client",
        "apiserver-kubelet-client",
        "ca",
        "kube-apiserver-kubelet-client",
        (CLIENT_AUTH,),
        "certificate for the API server to connect to kubelet",
    ),
    CertSpec(
        "front-proxy-client",
        "front-proxy-client",
        "front-proxy-ca",
        "front-proxy-client",
        (CLIENT_AUTH,),
        "certificate for the front proxy client",
    ),
    CertSpec(
        "etcd-server",
        "etcd/server",
        "etcd/ca",
        "",
        (SERVER_AUTH, CLIENT_AUTH),
        "certificate for serving etcd",
        alt_names="etcd-server",
        etcd=True,
    ),
    CertSpec(
        "etcd-peer",
        "etcd/peer",
        "etcd/ca",
        "",
        (SERVER_AUTH, CLIENT_AUTH),
        "certificate for etcd nodes to communicate with each other",
        alt_names="etcd-peer",
        etcd=True,
    ),
    CertSpec(
        "etcd-healthcheck-client",
        "etcd/healthcheck-client",
        "etcd/ca",
        "kube-etcd-healthcheck-client",
        (CLIENT_AUTH,),
        "certificate for liveness probes to healthcheck etcd",
        etcd=True,
    ),
    CertSpec(
        "apiserver-etcd-client",
        "apiserver-etcd-client",
        "etcd/ca",
        "kube-apiserver-etcd-client",
        (CLIENT_AUTH,),
        "certificate the apiserver uses to access etcd",
        etcd=True,
    ),
)

# Renewal-manager names of the kubeconfig client certificates (all from "ca").
KUBECONFIG_CERT_NAMES = ("admin.conf", "controller-manager.conf", "scheduler.conf", "super-admin.conf")


def spec(name: str) -> CertSpec:
    for s in LEAF_SPECS:
        if name in (s.name, s.base_name):
            return s
    raise CertificateError(f"certificate name: expected one of {', '.join(s.name for s in LEAF_SPECS)}, found {name!r}")


def _is_external_etcd(cluster: ClusterConfiguration) -> bool:
    return cluster.etcd.external is not None


def _append_sans(dns: list[str], ips: list[str], sans: list[str] | None) -> None:
    """appendSANsToAltNames: IPs, then DNS subdomains or wildcards; others skipped."""
    for san in sans or []:
        if netutil.parse_ip(san) is not None:
            ips.append(str(netutil.parse_ip(san)))
        elif netutil.is_dns1123_subdomain(san) or netutil.is_wildcard_dns1123_subdomain(san):
            dns.append(san)


def apiserver_alt_names(init: InitConfiguration, cluster: ClusterConfiguration) -> tuple[list[str], list[str]]:
    """GetAPIServerAltNames, before de-duplication (pki sorts DNS, dedupes IPs)."""
    advertise = init.local_api_endpoint.advertise_address
    if netutil.parse_ip(advertise) is None:
        raise CertificateError(f"localAPIEndpoint.advertiseAddress: expected an IP address, found {advertise!r}")
    try:
        vip = netutil.api_server_virtual_ip(cluster.networking.service_subnet)
    except ValueError as exc:
        raise CertificateError(f"networking.serviceSubnet: {exc}") from None
    dns = [
        init.node_registration.name,
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        f"kubernetes.default.svc.{cluster.networking.dns_domain}",
    ]
    ips = [str(vip), str(netutil.parse_ip(advertise))]
    if cluster.control_plane_endpoint:
        try:
            host, _ = netutil.parse_host_port(cluster.control_plane_endpoint)
        except ValueError as exc:
            raise CertificateError(f"controlPlaneEndpoint: {exc}") from None
        if netutil.parse_ip(host) is not None:
            ips.append(str(netutil.parse_ip(host)))
        else:
            dns.append(host)
    _append_sans(dns, ips, cluster.api_server.cert_sans)
    return dns, ips


def etcd_alt_names(init: InitConfiguration, cluster: ClusterConfiguration, which: str) -> tuple[list[str], list[str]]:
    """getAltNames for etcd-server / etcd-peer."""
    advertise = init.local_api_endpoint.advertise_address
    if netutil.parse_ip(advertise) is None:
        raise CertificateError(f"localAPIEndpoint.advertiseAddress: expected an IP address, found {advertise!r}")
    dns = [init.node_registration.name, "localhost"]
    ips = [str(netutil.parse_ip(advertise)), "127.0.0.1", "::1"]
    local = cluster.etcd.local
    if local is not None:
        _append_sans(dns, ips, local.server_cert_sans if which == "etcd-server" else local.peer_cert_sans)
    return dns, ips


def _validity(cluster: ClusterConfiguration) -> tuple[timedelta, timedelta]:
    leaf = cluster.certificate_validity_period or pki.CERT_VALIDITY
    ca = cluster.ca_certificate_validity_period or pki.CA_VALIDITY
    return leaf, ca


def issue_leaf(
    s: CertSpec,
    ca: KeyPair,
    init: InitConfiguration,
    cluster: ClusterConfiguration,
    *,
    now: datetime.datetime | None = None,
) -> KeyPair:
    """Issue one leaf of the tree from its spec and the configuration."""
    dns: list[str] = []
    ips: list[str] = []
    if s.alt_names == "apiserver":
        dns, ips = apiserver_alt_names(init, cluster)
    elif s.alt_names:
        dns, ips = etcd_alt_names(init, cluster, s.alt_names)
    leaf_validity, _ = _validity(cluster)
    return pki.issue_certificate(
        ca,
        s.common_name or init.node_registration.name,
        organization=s.organization,
        usages=s.usages,
        dns_names=dns,
        ip_addresses=ips,
        algorithm=cluster.encryption_algorithm or pki.DEFAULT_ALGORITHM,
        validity=leaf_validity,
        now=now,
    )


def generate_pki_tree(
    init: InitConfiguration,
    cluster: ClusterConfiguration,
    *,
    now: datetime.datetime | None = None,
    authorities: dict[str, KeyPair] | None = None,
) -> dict[str, KeyPair]:
    """Every certificate and key of `kubeadm init phase certs all`, keyed by
    base name ("ca", "apiserver", "etcd/server", ..., "sa").

    Pass ``authorities`` (e.g. CAs held by Kubeboard) to reuse them; missing
    ones are generated. With external etcd the etcd entries are absent.
    """
    start = pki._utc_seconds(now) if now else pki.now_utc()
    algorithm = cluster.encryption_algorithm or pki.DEFAULT_ALGORITHM
    _, ca_validity = _validity(cluster)
    external = _is_external_etcd(cluster)
    tree: dict[str, KeyPair] = {}
    given = authorities or {}
    for base, (_, cn) in CA_SPECS.items():
        if base == "etcd/ca" and external:
            continue
        tree[base] = given.get(base) or pki.generate_ca(cn, algorithm, ca_validity, start)
    for s in LEAF_SPECS:
        if s.etcd and external:
            continue
        if s.base_name == "apiserver-etcd-client" and external:
            continue
        tree[s.base_name] = issue_leaf(s, tree[s.ca_base_name], init, cluster, now=start)
    tree["sa"] = given.get("sa") or pki.generate_service_account_key(algorithm)
    return tree


# --- files -------------------------------------------------------------------

CERT_MODE = 0o644
KEY_MODE = 0o600


def pki_files(tree: dict[str, KeyPair]) -> dict[str, tuple[bytes, int]]:
    """Relative path -> (content, file mode), as kubeadm writes them.

    sa.pub is written with keyutil.WriteKey, hence 0600 like the keys.
    """
    files: dict[str, tuple[bytes, int]] = {}
    for base, pair in tree.items():
        if base == "sa":
            files["sa.key"] = (pair.key_pem(), KEY_MODE)
            files["sa.pub"] = (pair.public_key_pem(), KEY_MODE)
            continue
        if pair.cert is not None:
            files[f"{base}.crt"] = (pair.cert_pem(), CERT_MODE)
        if pair.key is not None:
            files[f"{base}.key"] = (pair.key_pem(), KEY_MODE)
    return files


def write_pki(tree: dict[str, KeyPair], directory: str | os.PathLike, *, overwrite: bool = False) -> list[Path]:
    """Write the tree under ``directory`` (file I/O). Existing files are kept
    unless ``overwrite``, as kubeadm reuses what is on disk."""
    root = Path(directory)
    written = []
    for rel, (content, mode) in sorted(pki_files(tree).items()):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        if path.exists() and not overwrite:
            continue
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
        os.chmod(path, mode)
        written.append(path)
    return written


def _base_names() -> list[str]:
    return list(CA_SPECS) + [s.base_name for s in LEAF_SPECS]


def load_pki(directory: str | os.PathLike) -> dict[str, KeyPair | x509.Certificate]:
    """Load a kubeadm certificate directory (file I/O).

    Entries with certificate and key become KeyPair; a certificate without
    its key (external CA) stays a bare x509.Certificate; "sa" is a KeyPair
    without certificate. Missing files are simply absent from the result.
    """
    root = Path(directory)
    result: dict[str, KeyPair | x509.Certificate] = {}
    for base in _base_names():
        crt, key = root / f"{base}.crt", root / f"{base}.key"
        if not crt.exists():
            continue
        if key.exists():
            result[base] = pki.load_key_pair(crt.read_bytes(), key.read_bytes(), name=base)
        else:
            result[base] = pki.load_certificate(crt.read_bytes(), name=base)
    if (root / "sa.key").exists():
        result["sa"] = pki.load_key_pair(None, (root / "sa.key").read_bytes(), name="sa")
    return result


def _cert_of(entry: KeyPair | x509.Certificate | None) -> x509.Certificate | None:
    if entry is None:
        return None
    return entry.cert if isinstance(entry, KeyPair) else entry


# --- check-expiration ----------------------------------------------------------


@dataclass(frozen=True)
class ExpirationRow:
    name: str
    ca_name: str  # "" for CAs
    expires: datetime.datetime | None  # None when missing
    externally_managed: bool

    @property
    def missing(self) -> bool:
        return self.expires is None

    def residual(self, now: datetime.datetime) -> timedelta | None:
        return None if self.expires is None else self.expires - now


_ROW_SOURCES = {
    # check-expiration name: (tree base name or kubeconfig file, CA check-expiration name, CA base)
    "admin.conf": ("admin.conf", "ca", "ca"),
    "apiserver": ("apiserver", "ca", "ca"),
    "apiserver-etcd-client": ("apiserver-etcd-client", "etcd-ca", "etcd/ca"),
    "apiserver-kubelet-client": ("apiserver-kubelet-client", "ca", "ca"),
    "controller-manager.conf": ("controller-manager.conf", "ca", "ca"),
    "etcd-healthcheck-client": ("etcd/healthcheck-client", "etcd-ca", "etcd/ca"),
    "etcd-peer": ("etcd/peer", "etcd-ca", "etcd/ca"),
    "etcd-server": ("etcd/server", "etcd-ca", "etcd/ca"),
    "front-proxy-client": ("front-proxy-client", "front-proxy-ca", "front-proxy-ca"),
    "scheduler.conf": ("scheduler.conf", "ca", "ca"),
    "super-admin.conf": ("super-admin.conf", "ca", "ca"),
}


def check_expiration(
    tree: dict[str, KeyPair | x509.Certificate],
    kubeconfig_certs: dict[str, x509.Certificate | None] | None = None,
    *,
    external_etcd: bool = False,
) -> tuple[list[ExpirationRow], list[ExpirationRow]]:
    """The two tables of `kubeadm certs check-expiration`: (certificates, CAs).

    ``tree`` is what load_pki returns; ``kubeconfig_certs`` maps "admin.conf"
    etc. to the client certificate embedded in that file (see
    kubeadm.kubeconfig.client_certificate). A CA whose key is absent makes it
    and its leaves "externally managed", as in kubeadm.
    """
    kubeconfig_certs = kubeconfig_certs or {}
    rows = []
    for name, (source, ca_name, ca_base) in _ROW_SOURCES.items():
        if external_etcd and ca_base == "etcd/ca":
            continue
        cert = kubeconfig_certs.get(source) if source.endswith(".conf") else _cert_of(tree.get(source))
        external = not isinstance(tree.get(ca_base), KeyPair)
        rows.append(ExpirationRow(name, ca_name, cert.not_valid_after_utc if cert else None, external))
    cas = []
    for base, (ca_name, _) in sorted(CA_SPECS.items(), key=lambda kv: kv[1][0]):
        if external_etcd and base == "etcd/ca":
            continue
        cert = _cert_of(tree.get(base))
        cas.append(
            ExpirationRow(
                ca_name, "", cert.not_valid_after_utc if cert else None, not isinstance(tree.get(base), KeyPair)
            )
        )
    return rows, cas


def format_check_expiration(
    rows: list[ExpirationRow], cas: list[ExpirationRow], now: datetime.datetime | None = None
) -> str:
    """The text table of `kubeadm certs check-expiration` (cmd/certs.go
    certTextPrinter: tabwriter minwidth 10, padding 3; "%-8v" yes/no)."""
    now = now or datetime.datetime.now(datetime.UTC)

    def date(d: datetime.datetime) -> str:
        return d.astimezone(datetime.UTC).strftime("%b %d, %Y %H:%M UTC")

    def yes_no(b: bool) -> str:
        return f"{'yes' if b else 'no':<8}"

    lines = ["CERTIFICATE\tEXPIRES\tRESIDUAL TIME\tCERTIFICATE AUTHORITY\tEXTERNALLY MANAGED"]
    for r in rows:
        if r.missing:
            lines.append(f"!MISSING! {r.name}\t\t\t\t")
        else:
            lines.append(
                f"{r.name}\t{date(r.expires)}\t{short_human_duration(r.expires - now)}\t{r.ca_name}\t"
                f"{yes_no(r.externally_managed)}"
            )
    lines.append("")
    lines.append("CERTIFICATE AUTHORITY\tEXPIRES\tRESIDUAL TIME\tEXTERNALLY MANAGED")
    for r in cas:
        if r.missing:
            lines.append(f"!MISSING! {r.name}\t\t\t")
        else:
            lines.append(
                f"{r.name}\t{date(r.expires)}\t{short_human_duration(r.expires - now)}\t{yes_no(r.externally_managed)}"
            )
    return tabwriter(lines)


# --- renewal ---------------------------------------------------------------------


def renew_certificate(
    cert: x509.Certificate,
    ca: KeyPair,
    *,
    algorithm: str | None = None,
    validity: timedelta = pki.CERT_VALIDITY,
    now: datetime.datetime | None = None,
) -> KeyPair:
    """`kubeadm certs renew`: copy CN, O, DNS/IP SANs and extended key usages
    from the existing certificate (certToConfig) and issue it again from the
    held CA, with a new key. ``algorithm`` defaults to the old key's."""
    if not isinstance(ca, KeyPair) or ca.key is None or ca.cert is None:
        raise CertificateError("ca: expected a CA certificate with its key; an external CA cannot renew")
    pki.verify_signed_by(cert, ca.cert, name=pki.common_name(cert) or "certificate")
    dns, ips = pki.alt_names(cert)
    usages = [u for u in pki.extended_key_usages(cert) if u in (SERVER_AUTH, CLIENT_AUTH)]
    return pki.issue_certificate(
        ca,
        pki.common_name(cert),
        organization=pki.organizations(cert),
        usages=usages or [CLIENT_AUTH],
        dns_names=dns,
        ip_addresses=ips,
        algorithm=algorithm or pki.algorithm_of(cert.public_key()),
        validity=validity,
        now=now,
    )


def renew_leaves(
    tree: dict[str, KeyPair | x509.Certificate],
    names: list[str] | None = None,
    *,
    algorithm: str | None = None,
    validity: timedelta = pki.CERT_VALIDITY,
    now: datetime.datetime | None = None,
) -> dict[str, KeyPair]:
    """Renew leaf certificates of a loaded tree (all by default). Returns the
    renewed pairs keyed by base name; CAs are never renewed."""
    renewed = {}
    for s in LEAF_SPECS:
        if names is not None and s.name not in names and s.base_name not in names:
            continue
        cert = _cert_of(tree.get(s.base_name))
        if cert is None:
            continue
        ca = tree.get(s.ca_base_name)
        if not isinstance(ca, KeyPair):
            raise CertificateError(
                f"{s.name}: expected the key of CA {s.ca_base_name!r} to renew it, found none (externally managed CA)"
            )
        renewed[s.base_name] = renew_certificate(cert, ca, algorithm=algorithm, validity=validity, now=now)
    return renewed


_DATE_FORMAT = "%b %d, %Y %H:%M UTC"
_CERT_ROW = re.compile(
    r"^(?P<name>\S+)\s+(?P<expires>[A-Z][a-z]{2} \d{2}, \d{4} \d{2}:\d{2} UTC)\s+(?P<residual>\S+)\s+"
    r"(?P<ca>\S+)\s+(?P<external>yes|no)\s*$"
)
_CA_ROW = re.compile(
    r"^(?P<name>\S+)\s+(?P<expires>[A-Z][a-z]{2} \d{2}, \d{4} \d{2}:\d{2} UTC)\s+(?P<residual>\S+)\s+"
    r"(?P<external>yes|no)\s*$"
)


def parse_check_expiration(text: str) -> tuple[list[ExpirationRow], list[ExpirationRow]]:
    """Read the output of `kubeadm certs check-expiration` back into (certificates, CAs).

    The inverse of format_check_expiration, for what the real binary prints on a node (leading
    "[check-expiration] Reading configuration ..." lines are skipped; "!MISSING! name" rows have
    ``expires`` None). Expiry has minute precision, as printed. Raises CertificateError naming the
    line that is neither a header nor a row.
    """
    certs: list[ExpirationRow] = []
    cas: list[ExpirationRow] = []
    table: list[ExpirationRow] | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if not line.strip() or line.startswith("["):
            continue
        if line.startswith("CERTIFICATE AUTHORITY") and "EXPIRES" in line:
            table = cas
            continue
        if line.startswith("CERTIFICATE") and "EXPIRES" in line:
            table = certs
            continue
        if table is None:
            raise CertificateError(f"check-expiration line {number}: expected a table header, found {line!r}")
        if line.startswith("!MISSING! "):
            name = line.removeprefix("!MISSING! ").split()[0]
            table.append(ExpirationRow(name, "", None, False))
            continue
        match = (_CA_ROW if table is cas else _CERT_ROW).match(line)
        if match is None:
            raise CertificateError(f"check-expiration line {number}: expected a certificate row, found {line!r}")
        expires = datetime.datetime.strptime(match.group("expires"), _DATE_FORMAT).replace(tzinfo=datetime.UTC)
        ca_name = match.group("ca") if table is certs else ""
        table.append(ExpirationRow(match.group("name"), ca_name, expires, match.group("external") == "yes"))
    if not certs and not cas:
        raise CertificateError(
            "check-expiration: expected the CERTIFICATE and CERTIFICATE AUTHORITY tables, found none"
        )
    return certs, cas
