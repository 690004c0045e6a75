"""Address, CIDR and DNS-name helpers with the rules kubeadm applies.

Sources: k8s.io/apimachinery/pkg/util/validation (IsDNS1123Label/Subdomain,
IsWildcardDNS1123Subdomain), k8s.io/utils/net (ParseCIDRs, IsDualStackCIDRs),
cmd/kubeadm/app/util/endpoint.go (ParseHostPort) and constants.go
(GetAPIServerVirtualIP, GetDNSIP).
"""

from __future__ import annotations

import ipaddress
import re

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def is_dns1123_label(value: str) -> bool:
    return len(value) <= DNS1123_LABEL_MAX and bool(_LABEL_RE.match(value))


def is_dns1123_subdomain(value: str) -> bool:
    return len(value) <= DNS1123_SUBDOMAIN_MAX and bool(_SUBDOMAIN_RE.match(value))


def is_wildcard_dns1123_subdomain(value: str) -> bool:
    return value.startswith("*.") and is_dns1123_subdomain(value[2:])


def parse_ip(value: str) -> IPAddress | None:
    """Parse an IP like netutils.ParseIPSloppy (leading zeros allowed in IPv4)."""
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        pass
    parts = value.split(".")
    if len(parts) == 4 and all(p.isdigit() and len(p) <= 3 for p in parts):
        try:
            return ipaddress.IPv4Address(".".join(str(int(p)) for p in parts))
        except ValueError:
            return None
    return None


def parse_cidr(value: str) -> IPNetwork | None:
    """Parse one CIDR the way Go's net.ParseCIDR does (host bits allowed)."""
    if "/" not in value:
        return None
    address, _, prefix = value.partition("/")
    if not prefix.isdigit() or parse_ip(address) is None:
        return None
    try:
        return ipaddress.ip_network(f"{parse_ip(address)}/{int(prefix)}", strict=False)
    except ValueError:
        return None


def parse_cidrs(value: str) -> list[IPNetwork] | None:
    """Parse a comma-separated CIDR list; None when any element is invalid."""
    result = []
    for part in value.split(","):
        cidr = parse_cidr(part.strip()) if part.strip() == part else None
        if cidr is None:
            return None
        result.append(cidr)
    return result


def nth_ip(network: IPNetwork, index: int) -> IPAddress:
    """The index-th address of a network (kubeadm's GetIndexedIP)."""
    if index >= network.num_addresses:
        raise ValueError(f"can't generate IP with index {index} from subnet {network}: subnet too small")
    return network.network_address + index


def api_server_virtual_ip(service_subnet: str) -> IPAddress:
    """First usable IP of the first service CIDR (constants.GetAPIServerVirtualIP)."""
    cidrs = parse_cidrs(service_subnet)
    if not cidrs:
        raise ValueError(f"unable to parse the service subnet {service_subnet!r}")
    return nth_ip(cidrs[0], 1)


def dns_ip(service_subnet: str) -> IPAddress:
    """Tenth IP of the first service CIDR (constants.GetDNSIP)."""
    cidrs = parse_cidrs(service_subnet)
    if not cidrs:
        raise ValueError(f"unable to parse the service subnet {service_subnet!r}")
    return nth_ip(cidrs[0], 10)


def split_host_port(hostport: str) -> tuple[str, str] | None:
    """Go's net.SplitHostPort; None when it would fail."""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0 or not hostport[end + 1 :].startswith(":"):
            return None
        host, port = hostport[1:end], hostport[end + 2 :]
        if "[" in host or "]" in port or "[" in port:
            return None
        return host, port
    if hostport.count(":") != 1:
        return None
    host, port = hostport.split(":")
    return host, port


def parse_host_port(hostport: str) -> tuple[str, str]:
    """kubeadm's util.ParseHostPort: (host, port-or-""); raises ValueError.

    A value that is not host:port is taken whole as the host, so a bare IPv6
    address such as ``fd00::1`` is accepted; with a port IPv6 needs brackets.
    """
    parts = split_host_port(hostport)
    host, port = parts if parts is not None else (hostport, "")
    if port:
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError(f"port {port!r} must be a valid number between 1 and 65535, inclusive")
    if parse_ip(host) is not None:
        return host, port
    if is_dns1123_subdomain(host):
        return host, port
    raise ValueError(f"host {host!r} must be a valid IP address or a valid RFC-1123 DNS subdomain")


def join_host_port(host: str, port: int | str) -> str:
    """Go's net.JoinHostPort: brackets around IPv6 literals."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
