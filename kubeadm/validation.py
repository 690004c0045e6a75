"""Validation of kubeadm configuration, with kubeadm's rules and messages.

Source: cmd/kubeadm/app/apis/kubeadm/validation/validation.go and
constants.go. Each problem is a ConfigError whose ``field`` is the dotted path
("networking.podSubnet") and whose message names expected and found values.
A few checks are Kubeboard's own and stricter than kubeadm; they say so.
Token secrets and certificate keys are never put into a message.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING

from kubeadm import netutil, tokens
from kubeadm.errors import ConfigError, TokenFormatError, UnsupportedVersionError
from kubeadm.versions import ECDSA_P384_MINIMUM_MINOR, parse_version

if TYPE_CHECKING:
    from kubeadm.config import (
        APIEndpoint,
        Arg,
        ClusterConfiguration,
        InitConfiguration,
        JoinConfiguration,
        NodeRegistrationOptions,
    )

# constants.go
MINIMUM_ADDRESSES_IN_SERVICE_SUBNET = 10  # the DNS service is always the 10th IP
MAXIMUM_BITS_FOR_SERVICE_SUBNET = 20  # largest service subnet: /12 IPv4, /108 IPv6
MINIMUM_ADDRESSES_IN_POD_SUBNET = 14
POD_SUBNET_NODE_MASK_MAX_DIFF = 16
DEFAULT_NODE_MASK_IPV4 = 24
DEFAULT_NODE_MASK_IPV6 = 64
CERTIFICATE_KEY_HEX_LENGTH = 64  # CertificateKeySize = 32 bytes
RECOMMENDED_CERTIFICATE_VALIDITY = timedelta(days=365)
RECOMMENDED_CA_CERTIFICATE_VALIDITY = timedelta(days=3650)
ENCRYPTION_ALGORITHMS = ("ECDSA-P256", "ECDSA-P384", "RSA-2048", "RSA-3072", "RSA-4096")
IMAGE_PULL_POLICIES = ("Always", "IfNotPresent", "Never")

# github.com/distribution/reference grammar, enough to check "<repo>/name:tag".
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REFERENCE_RE = re.compile(rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*(?::[\w][\w.-]{{0,127}})?")


def _subnet_errors(value: str, min_addresses: int, path: str) -> list[ConfigError]:
    """ValidateIPNetFromString: parse, dual-stack shape, minimum size."""
    cidrs = netutil.parse_cidrs(value)
    if cidrs is None:
        return [
            ConfigError(
                path,
                "a CIDR such as 10.96.0.0/12, or an IPv4 and an IPv6 CIDR separated by a comma",
                value,
                hint="couldn't parse subnet",
            )
        ]
    errors: list[ConfigError] = []
    if len(cidrs) > 2 or (len(cidrs) == 2 and cidrs[0].version == cidrs[1].version):
        errors.append(
            ConfigError(path, "one (IPv4 or IPv6) CIDR or two CIDRs from each family for dual-stack networking", value)
        )
    for cidr in cidrs:
        if cidr.num_addresses < min_addresses:
            errors.append(
                ConfigError(
                    path,
                    f"a subnet with at least {min_addresses} addresses",
                    str(cidr),
                    hint=f"subnet with {cidr.num_addresses} address(es) is too small",
                )
            )
    return errors


def _service_subnet_size_errors(value: str, path: str) -> list[ConfigError]:
    """ValidateServiceSubnetSize: host bits at most MaximumBitsForServiceSubnet."""
    errors = []
    for cidr in netutil.parse_cidrs(value) or []:
        bits = cidr.max_prefixlen
        if bits - cidr.prefixlen > MAXIMUM_BITS_FOR_SERVICE_SUBNET:
            errors.append(
                ConfigError(
                    path,
                    f"a mask >= /{bits - MAXIMUM_BITS_FOR_SERVICE_SUBNET} for {bits}-bit addresses",
                    str(cidr),
                    hint="specified service subnet is too large",
                )
            )
    return errors


def _arg_value(args: list[Arg] | None, name: str) -> str | None:
    """Last value of an extra arg (kubeadm.GetArgValue with idx -1)."""
    found = None
    for arg in args or []:
        if arg.name == name:
            found = arg.value
    return found


def _pod_subnet_node_mask_errors(cluster: ClusterConfiguration, path: str) -> list[ConfigError]:
    errors = []
    args = cluster.controller_manager.extra_args
    for cidr in netutil.parse_cidrs(cluster.networking.pod_subnet) or []:
        flag = "node-cidr-mask-size-ipv6" if cidr.version == 6 else "node-cidr-mask-size-ipv4"
        raw = _arg_value(args, flag)
        default = DEFAULT_NODE_MASK_IPV6 if cidr.version == 6 else DEFAULT_NODE_MASK_IPV4
        try:
            node_mask = int(raw) if raw else default
        except ValueError:
            errors.append(ConfigError(f"controllerManager.extraArgs[{flag}]", "an integer mask size", raw))
            continue
        if cidr.prefixlen > node_mask:
            errors.append(
                ConfigError(
                    path,
                    f"a pod subnet mask of at most /{node_mask} (the node mask)",
                    str(cidr),
                    hint="the pod subnet is smaller than one node's subnet",
                )
            )
        elif node_mask - cidr.prefixlen > POD_SUBNET_NODE_MASK_MAX_DIFF:
            errors.append(
                ConfigError(
                    path,
                    f"a pod subnet mask of at least /{node_mask - POD_SUBNET_NODE_MASK_MAX_DIFF} "
                    f"(node mask {node_mask} minus {POD_SUBNET_NODE_MASK_MAX_DIFF})",
                    str(cidr),
                )
            )
    return errors


def _overlap_errors(cluster: ClusterConfiguration) -> list[ConfigError]:
    """Kubeboard's own check (kubeadm does not make it): pod and service CIDRs
    must not overlap, or Services and Pods get the same addresses."""
    pods = netutil.parse_cidrs(cluster.networking.pod_subnet) or []
    services = netutil.parse_cidrs(cluster.networking.service_subnet) or []
    errors = []
    for pod in pods:
        for service in services:
            if pod.version == service.version and pod.overlaps(service):
                errors.append(
                    ConfigError(
                        "networking.podSubnet", f"a subnet that does not overlap serviceSubnet {service}", str(pod)
                    )
                )
    return errors


def _cert_sans_errors(sans: list[str] | None, path: str) -> list[ConfigError]:
    errors = []
    for i, san in enumerate(sans or []):
        if not (
            netutil.is_dns1123_subdomain(san)
            or netutil.is_wildcard_dns1123_subdomain(san)
            or netutil.parse_ip(san) is not None
        ):
            errors.append(ConfigError(f"{path}[{i}]", "an IP address, a DNS name or a wildcard DNS name", san))
    return errors


def _extra_args_errors(args: list[Arg] | None, path: str) -> list[ConfigError]:
    return [
        ConfigError(f"{path}[{i}].name", "a flag name without leading dashes", arg.name)
        for i, arg in enumerate(args or [])
        if not arg.name
    ]


def _absolute_path_errors(value: str, path: str) -> list[ConfigError]:
    if not value.startswith("/"):
        return [ConfigError(path, "an absolute path", value)]
    return []


def validate_image_repository(value: str, path: str = "imageRepository") -> list[ConfigError]:
    if not _REFERENCE_RE.fullmatch(f"{value}/name:tag"):
        return [ConfigError(path, "an image repository such as registry.k8s.io or my.registry:5000/k8s", value)]
    return []


# Kubeboard's rule for a cluster's name, stricter than kubeadm's clusterName: the name is also a
# URL path segment, a kubeconfig cluster/context name and --cluster-name, so a DNS label.
CLUSTER_NAME_RULE = (
    f"a DNS label: at most {netutil.DNS1123_LABEL_MAX} lower-case letters, digits and '-', "
    "starting and ending with a letter or digit (e.g. prod-eu1)"
)
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def validate_cluster_name(value: str, path: str = "clusterName") -> list[ConfigError]:
    """The one rule for a cluster's name; forms, the model and the configuration all use it."""
    if not isinstance(value, str) or not netutil.is_dns1123_label(value):
        return [ConfigError(path, CLUSTER_NAME_RULE, value)]
    return []


def validate_kubernetes_version(value: str, path: str = "kubernetesVersion") -> list[ConfigError]:
    try:
        parse_version(value, field=path)
    except UnsupportedVersionError as exc:
        return [exc]
    return []


def validate_cluster_configuration(cluster: ClusterConfiguration) -> list[ConfigError]:
    """All problems kubeadm (and Kubeboard) would reject; [] when valid."""
    errors: list[ConfigError] = []
    errors += validate_cluster_name(cluster.cluster_name)
    errors += validate_kubernetes_version(cluster.kubernetes_version)

    net = cluster.networking
    if not netutil.is_dns1123_subdomain(net.dns_domain):
        errors.append(ConfigError("networking.dnsDomain", "a DNS-1123 subdomain such as cluster.local", net.dns_domain))
    service_ok = False
    if net.service_subnet:
        found = _subnet_errors(net.service_subnet, MINIMUM_ADDRESSES_IN_SERVICE_SUBNET, "networking.serviceSubnet")
        errors += found
        if not found:
            size_errors = _service_subnet_size_errors(net.service_subnet, "networking.serviceSubnet")
            errors += size_errors
            service_ok = not size_errors
    if net.pod_subnet:
        found = _subnet_errors(net.pod_subnet, MINIMUM_ADDRESSES_IN_POD_SUBNET, "networking.podSubnet")
        errors += found
        if not found:
            if _arg_value(cluster.controller_manager.extra_args, "allocate-node-cidrs") != "false":
                errors += _pod_subnet_node_mask_errors(cluster, "networking.podSubnet")
            if service_ok:
                errors += _overlap_errors(cluster)

    if cluster.control_plane_endpoint and _SCHEME_RE.match(cluster.control_plane_endpoint):
        # kubeadm would say "port '//x' must be a valid number": name the real mistake.
        errors.append(
            ConfigError(
                "controlPlaneEndpoint",
                "host or host:port (IP, DNS name, or [IPv6]:port)",
                cluster.control_plane_endpoint,
                hint="a scheme is not allowed; use host or host:port, e.g. 10.0.0.10:6443",
            )
        )
    elif cluster.control_plane_endpoint:
        try:
            netutil.parse_host_port(cluster.control_plane_endpoint)
        except ValueError as exc:
            errors.append(
                ConfigError(
                    "controlPlaneEndpoint",
                    "host or host:port (IP, DNS name, or [IPv6]:port)",
                    cluster.control_plane_endpoint,
                    hint=str(exc),
                )
            )

    errors += validate_image_repository(cluster.image_repository)
    if cluster.dns.image_repository:
        errors += validate_image_repository(cluster.dns.image_repository, "dns.imageRepository")
    errors += _absolute_path_errors(cluster.certificates_dir, "certificatesDir")
    errors += _cert_sans_errors(cluster.api_server.cert_sans, "apiServer.certSANs")
    errors += _extra_args_errors(cluster.api_server.extra_args, "apiServer.extraArgs")
    errors += _extra_args_errors(cluster.controller_manager.extra_args, "controllerManager.extraArgs")
    errors += _extra_args_errors(cluster.scheduler.extra_args, "scheduler.extraArgs")
    errors += _etcd_errors(cluster)
    errors += _encryption_algorithm_errors(cluster)
    errors += _validity_errors(cluster)
    return errors


def _etcd_errors(cluster: ClusterConfiguration) -> list[ConfigError]:
    etcd = cluster.etcd
    if etcd.local is None and etcd.external is None:
        return [ConfigError("etcd", "either etcd.local or etcd.external", "neither")]
    if etcd.local is not None and etcd.external is not None:
        return [ConfigError("etcd", "either etcd.local or etcd.external (mutually exclusive)", "both")]
    errors: list[ConfigError] = []
    if etcd.local is not None:
        errors += _absolute_path_errors(etcd.local.data_dir, "etcd.local.dataDir")
        errors += _cert_sans_errors(etcd.local.server_cert_sans, "etcd.local.serverCertSANs")
        errors += _cert_sans_errors(etcd.local.peer_cert_sans, "etcd.local.peerCertSANs")
        if etcd.local.image_repository:
            errors += validate_image_repository(etcd.local.image_repository, "etcd.local.imageRepository")
        errors += _extra_args_errors(etcd.local.extra_args, "etcd.local.extraArgs")
        return errors
    ext = etcd.external
    if bool(ext.cert_file) != bool(ext.key_file):
        errors.append(
            ConfigError(
                "etcd.external",
                "both or none of certFile and keyFile",
                "only certFile" if ext.cert_file else "only keyFile",
            )
        )
    if ext.cert_file and ext.key_file and not ext.ca_file:
        errors.append(ConfigError("etcd.external.caFile", "a CA file when certFile and keyFile are set", ""))
    require_https = bool(ext.ca_file or ext.cert_file or ext.key_file)
    if not ext.endpoints:
        errors.append(ConfigError("etcd.external.endpoints", "at least one etcd URL", ext.endpoints))
    for i, url in enumerate(ext.endpoints or []):
        scheme = url.split("://", 1)[0] if "://" in url else ""
        if not scheme:
            errors.append(ConfigError(f"etcd.external.endpoints[{i}]", "a URL with a scheme", url))
        elif require_https and scheme != "https":
            errors.append(ConfigError(f"etcd.external.endpoints[{i}]", "an https:// URL (TLS files are set)", url))
    for name, value in (("caFile", ext.ca_file), ("certFile", ext.cert_file), ("keyFile", ext.key_file)):
        if value:
            errors += _absolute_path_errors(value, f"etcd.external.{name}")
    return errors


def _encryption_algorithm_errors(cluster: ClusterConfiguration) -> list[ConfigError]:
    algorithm = cluster.encryption_algorithm
    if algorithm not in ENCRYPTION_ALGORITHMS:
        return [ConfigError("encryptionAlgorithm", "one of " + ", ".join(ENCRYPTION_ALGORITHMS), algorithm)]
    if algorithm == "ECDSA-P384":
        try:
            _, minor, _ = parse_version(cluster.kubernetes_version, check_supported=False)
        except UnsupportedVersionError:
            return []  # already reported under kubernetesVersion
        if minor < ECDSA_P384_MINIMUM_MINOR:
            return [
                ConfigError(
                    "encryptionAlgorithm",
                    f"ECDSA-P384 only with Kubernetes v1.{ECDSA_P384_MINIMUM_MINOR}+",
                    algorithm,
                    hint=f"kubernetesVersion is {cluster.kubernetes_version}",
                )
            ]
    return []


def _validity_errors(cluster: ClusterConfiguration) -> list[ConfigError]:
    errors = []
    leaf, ca = cluster.certificate_validity_period, cluster.ca_certificate_validity_period
    if leaf is not None and leaf <= timedelta(0):
        errors.append(ConfigError("certificateValidityPeriod", "a positive duration such as 8760h0m0s", str(leaf)))
    if ca is not None and ca <= timedelta(0):
        errors.append(ConfigError("caCertificateValidityPeriod", "a positive duration such as 87600h0m0s", str(ca)))
    return errors


def cluster_configuration_warnings(cluster: ClusterConfiguration) -> list[str]:
    """ValidateCertValidity: kubeadm only warns when periods exceed the defaults."""
    from kubeadm.durations import format_duration

    warnings = []
    leaf, ca = cluster.certificate_validity_period, cluster.ca_certificate_validity_period
    if leaf is not None and leaf > RECOMMENDED_CERTIFICATE_VALIDITY:
        warnings.append(
            f"certificateValidityPeriod: the value {format_duration(leaf)} is more than the recommended "
            f"default for certificate expiration: {format_duration(RECOMMENDED_CERTIFICATE_VALIDITY)}"
        )
    if ca is not None and ca > RECOMMENDED_CA_CERTIFICATE_VALIDITY:
        warnings.append(
            f"caCertificateValidityPeriod: the value {format_duration(ca)} is more than the recommended "
            f"default for CA certificate expiration: {format_duration(RECOMMENDED_CA_CERTIFICATE_VALIDITY)}"
        )
    if leaf is not None and ca is not None and leaf > ca:
        warnings.append(
            "certificateValidityPeriod is longer than caCertificateValidityPeriod: leaf certificates "
            "would outlive their CA"
        )
    return warnings


def _token_error(value: str, path: str) -> list[ConfigError]:
    if tokens.is_valid_token(value):
        return []
    try:
        tokens.parse_token(value, field=path)
    except TokenFormatError as exc:
        return [
            ConfigError(
                path,
                "a bootstrap token [a-z0-9]{6}.[a-z0-9]{16}",
                value,
                secret=True,
                hint=str(exc).split("found ", 1)[-1],
            )
        ]
    return []


def validate_certificate_key(value: str, path: str = "certificateKey") -> list[ConfigError]:
    if not value:
        return []
    if len(value) != CERTIFICATE_KEY_HEX_LENGTH or not re.fullmatch(r"[0-9a-fA-F]+", value):
        return [ConfigError(path, "64 hexadecimal characters (a 32-byte AES key)", value, secret=True)]
    return []


def _node_registration_errors(nro: NodeRegistrationOptions, path: str) -> list[ConfigError]:
    errors = []
    if not nro.name:
        errors.append(ConfigError(f"{path}.name", "the node name (a DNS-1123 subdomain)", ""))
    elif not netutil.is_dns1123_subdomain(nro.name):
        errors.append(ConfigError(f"{path}.name", "a lowercase DNS-1123 subdomain", nro.name))
    if not nro.cri_socket:
        errors.append(ConfigError(f"{path}.criSocket", "a unix:// socket URL", "", hint="empty CRI socket"))
    elif not nro.cri_socket.startswith("unix://"):
        errors.append(ConfigError(f"{path}.criSocket", 'a URL with scheme "unix"', nro.cri_socket))
    if nro.image_pull_policy and nro.image_pull_policy not in IMAGE_PULL_POLICIES:
        errors.append(
            ConfigError(f"{path}.imagePullPolicy", "one of " + ", ".join(IMAGE_PULL_POLICIES), nro.image_pull_policy)
        )
    errors += _extra_args_errors(nro.kubelet_extra_args, f"{path}.kubeletExtraArgs")
    return errors


def _api_endpoint_errors(endpoint: APIEndpoint, path: str) -> list[ConfigError]:
    errors = []
    if netutil.parse_ip(endpoint.advertise_address) is None:
        errors.append(ConfigError(f"{path}.advertiseAddress", "an IP address", endpoint.advertise_address))
    if not 1 <= endpoint.bind_port <= 65535:
        errors.append(ConfigError(f"{path}.bindPort", "a port between 1 and 65535", endpoint.bind_port))
    return errors


def validate_init_configuration(
    init: InitConfiguration, cluster: ClusterConfiguration | None = None
) -> list[ConfigError]:
    """ValidateInitConfiguration (plus the ClusterConfiguration when given)."""
    errors = _node_registration_errors(init.node_registration, "nodeRegistration")
    for i, bt in enumerate(init.bootstrap_tokens or []):
        path = f"bootstrapTokens[{i}]"
        errors += _token_error(bt.token or "", f"{path}.token")
        try:
            tokens.validate_usages(bt.usages or [], field=f"{path}.usages")
            tokens.validate_groups(bt.groups or [], bt.usages or [], field=f"{path}.groups")
        except TokenFormatError as exc:
            errors.append(ConfigError(f"{path}", "valid usages and groups", "invalid", hint=str(exc)))
        if bt.ttl is not None and bt.expires is not None:
            errors.append(ConfigError(path, "either ttl or expires (mutually exclusive)", "both"))
    errors += _api_endpoint_errors(init.local_api_endpoint, "localAPIEndpoint")
    errors += validate_certificate_key(init.certificate_key)
    if cluster is not None:
        errors += validate_cluster_configuration(cluster)
    return errors


def validate_join_configuration(join: JoinConfiguration) -> list[ConfigError]:
    """ValidateJoinConfiguration."""
    errors = _node_registration_errors(join.node_registration, "nodeRegistration")
    discovery = join.discovery
    if discovery.bootstrap_token is None and discovery.file is None:
        errors.append(ConfigError("discovery", "bootstrapToken or file", "neither"))
    if discovery.bootstrap_token is not None and discovery.file is not None:
        errors.append(ConfigError("discovery", "bootstrapToken or file (mutually exclusive)", "both"))
    bt = discovery.bootstrap_token
    if bt is not None:
        if not bt.api_server_endpoint:
            errors.append(ConfigError("discovery.bootstrapToken.apiServerEndpoint", "host:port of the API server", ""))
        elif netutil.split_host_port(bt.api_server_endpoint) is None:
            errors.append(
                ConfigError(
                    "discovery.bootstrapToken.apiServerEndpoint", "host:port ([IPv6]:port)", bt.api_server_endpoint
                )
            )
        if not bt.ca_cert_hashes and not bt.unsafe_skip_ca_verification:
            errors.append(
                ConfigError(
                    "discovery.bootstrapToken.caCertHashes",
                    "at least one sha256:<hex> pin (or unsafeSkipCAVerification: true)",
                    bt.ca_cert_hashes,
                )
            )
        from kubeadm.discovery import parse_pin
        from kubeadm.errors import PinError

        for i, pin in enumerate(bt.ca_cert_hashes or []):
            try:
                parse_pin(pin)
            except PinError as exc:
                errors.append(
                    ConfigError(f"discovery.bootstrapToken.caCertHashes[{i}]", "sha256:<64 hex>", pin, hint=str(exc))
                )
        errors += _token_error(bt.token, "discovery.bootstrapToken.token")
        errors += _token_error(discovery.tls_bootstrap_token, "discovery.tlsBootstrapToken")
    if discovery.file is not None:
        if not discovery.file.kube_config_path:
            errors.append(ConfigError("discovery.file.kubeConfigPath", "a file path or https:// URL", ""))
        if discovery.tls_bootstrap_token:
            errors += _token_error(discovery.tls_bootstrap_token, "discovery.tlsBootstrapToken")
    if join.control_plane is not None:
        errors += _api_endpoint_errors(join.control_plane.local_api_endpoint, "controlPlane.localAPIEndpoint")
        errors += validate_certificate_key(join.control_plane.certificate_key, "controlPlane.certificateKey")
    if not join.ca_cert_path.startswith("/") or not join.ca_cert_path.endswith(".crt"):
        errors.append(ConfigError("caCertPath", "an absolute path ending in .crt", join.ca_cert_path))
    return errors
