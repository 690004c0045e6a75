"""kubeadm v1beta4 configuration: typed objects, defaults, YAML render and parse.

The dataclasses mirror cmd/kubeadm/app/apis/kubeadm/v1beta4/types.go field
for field. Each field carries its JSON name and whether Go marks it
``omitempty``, because that decides what kubeadm prints: an omitempty field
holding a zero value disappears, a non-omitempty nil list prints ``null``
(``taints: null``), and a non-pointer struct always prints, as ``{}`` when
empty (``apiServer: {}``). Rendering then goes through kubeadm.yamlio, which
reproduces sigs.k8s.io/yaml's output.

Python conventions: durations are ``datetime.timedelta`` (rendered as Go
durations, "24h0m0s"); ``expires`` is an aware ``datetime``; Go pointers and
nil slices are ``None``; an empty list is ``[]`` (for ``taints`` the two mean
different things, as in kubeadm).
"""

from __future__ import annotations

import dataclasses
import datetime
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from kubeadm import CONFIG_API_VERSION, pki, tokens, yamlio
from kubeadm.components import API_SERVER_PORT, KUBERNETES_DIR
from kubeadm.durations import format_duration, parse_duration
from kubeadm.errors import ConfigError, KubeadmError, YAMLFormatError
from kubeadm.versions import DEFAULT_KUBERNETES_VERSION

# --- constants (cmd/kubeadm/app/constants, v1beta4/defaults.go) -------------

DEFAULT_SERVICE_SUBNET = "10.96.0.0/12"
DEFAULT_DNS_DOMAIN = "cluster.local"
DEFAULT_CERTIFICATES_DIR = f"{KUBERNETES_DIR}/pki"
DEFAULT_IMAGE_REPOSITORY = "registry.k8s.io"
DEFAULT_CLUSTER_NAME = "kubernetes"
DEFAULT_ETCD_DATA_DIR = "/var/lib/etcd"
DEFAULT_BIND_PORT = API_SERVER_PORT
DEFAULT_CRI_SOCKET = "unix:///var/run/containerd/containerd.sock"
DEFAULT_IMAGE_PULL_POLICY = "IfNotPresent"
DEFAULT_ENCRYPTION_ALGORITHM = "RSA-2048"
DEFAULT_CA_CERT_PATH = f"{DEFAULT_CERTIFICATES_DIR}/ca.crt"
DEFAULT_CERTIFICATE_VALIDITY = pki.CERT_VALIDITY
DEFAULT_CA_CERTIFICATE_VALIDITY = pki.CA_VALIDITY
DEFAULT_TOKEN_TTL = tokens.DEFAULT_TTL
DEFAULT_TOKEN_USAGES = tokens.DEFAULT_USAGES
DEFAULT_TOKEN_GROUPS = tokens.DEFAULT_GROUPS

# Where kubeadm keeps the cluster's configuration (constants.KubeadmConfigConfigMap,
# ClusterConfigurationConfigMapKey, KubeletBaseConfigurationConfigMap and its key).
CONFIG_MAP_NAMESPACE = "kube-system"
KUBEADM_CONFIG_MAP = "kubeadm-config"
CLUSTER_CONFIGURATION_KEY = "ClusterConfiguration"
KUBELET_CONFIG_MAP = "kubelet-config"
KUBELET_CONFIGURATION_KEY = "kubelet"

# Placeholders fixed in cmd/kubeadm/app/cmd/config.go for `config print`.
PLACEHOLDER_TOKEN = "abcdef.0123456789abcdef"
PLACEHOLDER_ADVERTISE_ADDRESS = "1.2.3.4"
PLACEHOLDER_NODE_NAME = "node"
PLACEHOLDER_DISCOVERY_ENDPOINT = "kube-apiserver:6443"

ENCRYPTION_ALGORITHMS = ("ECDSA-P256", "ECDSA-P384", "RSA-2048", "RSA-3072", "RSA-4096")

# --- field descriptions -------------------------------------------------------


class _Codec:
    """Converts one field between Python and the JSON-like form kubeadm marshals."""

    expected = "a value"

    def dump(self, value: Any) -> Any:
        return value

    def load(self, value: Any, path: str, ctx: _LoadContext, secret: bool = False) -> Any:
        return value


class _LoadContext:
    def __init__(self) -> None:
        self.unknown_fields: list[str] = []


class _Scalar(_Codec):
    def __init__(self, kind: type, expected: str) -> None:
        self.kind = kind
        self.expected = expected

    def load(self, value: Any, path: str, ctx: _LoadContext, secret: bool = False) -> Any:
        # bool is an int in Python but never a valid int field in Go.
        if self.kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigError(path, self.expected, value, secret=secret)
        if not isinstance(value, self.kind):
            raise ConfigError(path, self.expected, value, secret=secret)
        return value


class _Duration(_Codec):
    expected = 'a Go duration such as "24h0m0s"'

    def dump(self, value: timedelta) -> str:
        return format_duration(value)

    def load(self, value: Any, path: str, ctx: _LoadContext, secret: bool = False) -> timedelta:
        if not isinstance(value, str):
            raise ConfigError(path, self.expected, value)
        return parse_duration(value, field=path)


class _Time(_Codec):
    expected = 'an RFC 3339 time such as "2025-01-02T03:04:05Z"'

    def dump(self, value: datetime.datetime) -> str:
        return format_rfc3339(value)

    def load(self, value: Any, path: str, ctx: _LoadContext, secret: bool = False) -> datetime.datetime:
        if not isinstance(value, str):
            raise ConfigError(path, self.expected, value)
        try:
            parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise ConfigError(path, self.expected, value) from None
        if parsed.tzinfo is None:
            raise ConfigError(path, self.expected, value, hint="a time zone is required")
        return parsed


class _Nested(_Codec):
    def __init__(self, cls: type) -> None:
        self.cls = cls
        self.expected = "a mapping"

    def dump(self, value: Any) -> dict:
        return to_dict(value)

    def load(self, value: Any, path: str, ctx: _LoadContext, secret: bool = False) -> Any:
        return _from_dict(self.cls, value, path, ctx)


class _ListOf(_Codec):
    def __init__(self, item: _Codec) -> None:
        self.item = item
        self.expected = "a list"

    def dump(self, value: list) -> list:
        return [self.item.dump(v) for v in value]

    def load(self, value: Any, path: str, ctx: _LoadContext, secret: bool = False) -> list:
        if not isinstance(value, list):
            raise ConfigError(path, self.expected, value)
        return [self.item.load(v, f"{path}[{i}]", ctx, secret=secret) for i, v in enumerate(value)]


class _MapOf(_Codec):
    def __init__(self, item: _Codec) -> None:
        self.item = item
        self.expected = "a mapping"

    def dump(self, value: dict) -> dict:
        return {k: self.item.dump(v) for k, v in value.items()}

    def load(self, value: Any, path: str, ctx: _LoadContext, secret: bool = False) -> dict:
        if not isinstance(value, dict):
            raise ConfigError(path, self.expected, value)
        return {str(k): self.item.load(v, f"{path}.{k}", ctx, secret=secret) for k, v in value.items()}


class _Raw(_Codec):
    expected = "any value"

    def load(self, value: Any, path: str, ctx: _LoadContext, secret: bool = False) -> Any:
        return value


STR = _Scalar(str, "a string")
INT = _Scalar(int, "an integer")
BOOL = _Scalar(bool, "true or false")
DURATION = _Duration()
TIME = _Time()
RAW = _Raw()


def _f(
    json_name: str,
    codec: _Codec,
    default: Any = None,
    *,
    omitempty: bool = True,
    factory: Any = None,
    secret: bool = False,
    struct: bool = False,
) -> Any:
    """Declare a field: its JSON name, codec and Go tag semantics.

    struct=True marks a non-pointer Go struct: always printed, even if empty.
    secret=True keeps the value out of error messages.
    """
    metadata = {"json": json_name, "codec": codec, "omitempty": omitempty, "secret": secret, "struct": struct}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def _is_empty(value: Any) -> bool:
    """Go's omitempty test: zero scalars, nil pointers, empty lists/maps."""
    if value is None or value is False or value == "" or (isinstance(value, int) and value == 0):
        return True
    if isinstance(value, (list, dict, tuple)) and len(value) == 0:
        return True
    if isinstance(value, timedelta):
        return False  # a set *metav1.Duration pointer is printed even when 0s
    return False


def to_dict(obj: Any) -> dict:
    """Convert a config dataclass to the JSON-like dict kubeadm would marshal."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        meta = f.metadata
        if "json" not in meta:
            continue
        value = getattr(obj, f.name)
        if meta["struct"]:
            out[meta["json"]] = meta["codec"].dump(value)
            continue
        if value is None:
            if not meta["omitempty"]:
                out[meta["json"]] = None
            continue
        if meta["omitempty"] and _is_empty(value):
            continue
        out[meta["json"]] = meta["codec"].dump(value)
    return out


def _from_dict(cls: type, data: Any, path: str, ctx: _LoadContext) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(path or "document", "a mapping", data)
    by_json = {f.metadata["json"]: f for f in dataclasses.fields(cls) if "json" in f.metadata}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        f = by_json.get(str(key))
        child = f"{path}.{key}" if path else str(key)
        if f is None:
            ctx.unknown_fields.append(child)
            continue
        meta = f.metadata
        if value is None:
            # JSON null: the Go zero value (nil pointer / nil slice / "" / 0).
            kwargs[f.name] = _zero_for(f)
            continue
        kwargs[f.name] = meta["codec"].load(value, child, ctx, secret=meta["secret"])
    return cls(**kwargs)


def _zero_for(f: dataclasses.Field) -> Any:
    meta = f.metadata
    if meta["struct"]:
        return meta["codec"].cls()
    codec = meta["codec"]
    if codec is STR:
        return ""
    if codec is INT:
        return 0
    if codec is BOOL and f.default is False:
        return False
    return None


# --- shared types -----------------------------------------------------------


@dataclass
class Arg:
    name: str = _f("name", STR, "", omitempty=False)
    value: str = _f("value", STR, "", omitempty=False)


@dataclass
class EnvVar:
    name: str = _f("name", STR, "", omitempty=False)
    value: str = _f("value", STR, "")
    value_from: dict | None = _f("valueFrom", RAW)


@dataclass
class HostPathMount:
    name: str = _f("name", STR, "", omitempty=False)
    host_path: str = _f("hostPath", STR, "", omitempty=False)
    mount_path: str = _f("mountPath", STR, "", omitempty=False)
    read_only: bool = _f("readOnly", BOOL, False)
    path_type: str = _f("pathType", STR, "")


@dataclass
class Taint:
    key: str = _f("key", STR, "", omitempty=False)
    value: str = _f("value", STR, "")
    effect: str = _f("effect", STR, "", omitempty=False)
    time_added: str = _f("timeAdded", STR, "")


@dataclass
class APIEndpoint:
    advertise_address: str = _f("advertiseAddress", STR, "")
    bind_port: int = _f("bindPort", INT, 0)


@dataclass
class NodeRegistrationOptions:
    name: str = _f("name", STR, "")
    cri_socket: str = _f("criSocket", STR, "")
    # Not omitempty in Go: None prints "taints: null" (= default control-plane
    # taint), [] prints "taints: []" (= no taints).
    taints: list[Taint] | None = _f("taints", _ListOf(_Nested(Taint)), omitempty=False)
    kubelet_extra_args: list[Arg] | None = _f("kubeletExtraArgs", _ListOf(_Nested(Arg)))
    ignore_preflight_errors: list[str] | None = _f("ignorePreflightErrors", _ListOf(STR))
    image_pull_policy: str = _f("imagePullPolicy", STR, "")
    image_pull_serial: bool | None = _f("imagePullSerial", BOOL)


@dataclass
class Patches:
    directory: str = _f("directory", STR, "")


@dataclass
class Timeouts:
    control_plane_component_health_check: timedelta | None = _f("controlPlaneComponentHealthCheck", DURATION)
    kubelet_health_check: timedelta | None = _f("kubeletHealthCheck", DURATION)
    kubernetes_api_call: timedelta | None = _f("kubernetesAPICall", DURATION)
    etcd_api_call: timedelta | None = _f("etcdAPICall", DURATION)
    tls_bootstrap: timedelta | None = _f("tlsBootstrap", DURATION)
    discovery: timedelta | None = _f("discovery", DURATION)
    upgrade_manifests: timedelta | None = _f("upgradeManifests", DURATION)


@dataclass
class BootstrapToken:
    """bootstraptoken/v1.BootstrapToken; ``token`` is "id.secret"."""

    token: str | None = _f("token", STR, omitempty=False, secret=True)
    description: str = _f("description", STR, "")
    ttl: timedelta | None = _f("ttl", DURATION)
    expires: datetime.datetime | None = _f("expires", TIME)
    usages: list[str] | None = _f("usages", _ListOf(STR))
    groups: list[str] | None = _f("groups", _ListOf(STR))


# --- InitConfiguration --------------------------------------------------------


@dataclass
class InitConfiguration:
    bootstrap_tokens: list[BootstrapToken] | None = _f("bootstrapTokens", _ListOf(_Nested(BootstrapToken)))
    dry_run: bool = _f("dryRun", BOOL, False)
    node_registration: NodeRegistrationOptions = _f(
        "nodeRegistration", _Nested(NodeRegistrationOptions), factory=NodeRegistrationOptions, struct=True
    )
    local_api_endpoint: APIEndpoint = _f("localAPIEndpoint", _Nested(APIEndpoint), factory=APIEndpoint, struct=True)
    certificate_key: str = _f("certificateKey", STR, "", secret=True)
    skip_phases: list[str] | None = _f("skipPhases", _ListOf(STR))
    patches: Patches | None = _f("patches", _Nested(Patches))
    timeouts: Timeouts | None = _f("timeouts", _Nested(Timeouts))

    KIND = "InitConfiguration"


# --- ClusterConfiguration -----------------------------------------------------


@dataclass
class LocalEtcd:
    image_repository: str = _f("imageRepository", STR, "")
    image_tag: str = _f("imageTag", STR, "")
    data_dir: str = _f("dataDir", STR, "", omitempty=False)
    extra_args: list[Arg] | None = _f("extraArgs", _ListOf(_Nested(Arg)))
    extra_envs: list[EnvVar] | None = _f("extraEnvs", _ListOf(_Nested(EnvVar)))
    server_cert_sans: list[str] | None = _f("serverCertSANs", _ListOf(STR))
    peer_cert_sans: list[str] | None = _f("peerCertSANs", _ListOf(STR))


@dataclass
class ExternalEtcd:
    endpoints: list[str] | None = _f("endpoints", _ListOf(STR), omitempty=False)
    ca_file: str = _f("caFile", STR, "", omitempty=False)
    cert_file: str = _f("certFile", STR, "", omitempty=False)
    key_file: str = _f("keyFile", STR, "", omitempty=False)


@dataclass
class Etcd:
    local: LocalEtcd | None = _f("local", _Nested(LocalEtcd))
    external: ExternalEtcd | None = _f("external", _Nested(ExternalEtcd))


@dataclass
class Networking:
    service_subnet: str = _f("serviceSubnet", STR, "")
    pod_subnet: str = _f("podSubnet", STR, "")
    dns_domain: str = _f("dnsDomain", STR, "")


@dataclass
class ControlPlaneComponent:
    extra_args: list[Arg] | None = _f("extraArgs", _ListOf(_Nested(Arg)))
    extra_volumes: list[HostPathMount] | None = _f("extraVolumes", _ListOf(_Nested(HostPathMount)))
    extra_envs: list[EnvVar] | None = _f("extraEnvs", _ListOf(_Nested(EnvVar)))


@dataclass
class APIServer:
    extra_args: list[Arg] | None = _f("extraArgs", _ListOf(_Nested(Arg)))
    extra_volumes: list[HostPathMount] | None = _f("extraVolumes", _ListOf(_Nested(HostPathMount)))
    extra_envs: list[EnvVar] | None = _f("extraEnvs", _ListOf(_Nested(EnvVar)))
    cert_sans: list[str] | None = _f("certSANs", _ListOf(STR))


@dataclass
class DNS:
    image_repository: str = _f("imageRepository", STR, "")
    image_tag: str = _f("imageTag", STR, "")
    disabled: bool = _f("disabled", BOOL, False)


@dataclass
class Proxy:
    disabled: bool = _f("disabled", BOOL, False)


@dataclass
class ClusterConfiguration:
    etcd: Etcd = _f("etcd", _Nested(Etcd), factory=Etcd, struct=True)
    networking: Networking = _f("networking", _Nested(Networking), factory=Networking, struct=True)
    kubernetes_version: str = _f("kubernetesVersion", STR, "")
    control_plane_endpoint: str = _f("controlPlaneEndpoint", STR, "")
    api_server: APIServer = _f("apiServer", _Nested(APIServer), factory=APIServer, struct=True)
    controller_manager: ControlPlaneComponent = _f(
        "controllerManager", _Nested(ControlPlaneComponent), factory=ControlPlaneComponent, struct=True
    )
    scheduler: ControlPlaneComponent = _f(
        "scheduler", _Nested(ControlPlaneComponent), factory=ControlPlaneComponent, struct=True
    )
    dns: DNS = _f("dns", _Nested(DNS), factory=DNS, struct=True)
    proxy: Proxy = _f("proxy", _Nested(Proxy), factory=Proxy, struct=True)
    certificates_dir: str = _f("certificatesDir", STR, "")
    image_repository: str = _f("imageRepository", STR, "")
    feature_gates: dict[str, bool] | None = _f("featureGates", _MapOf(BOOL))
    cluster_name: str = _f("clusterName", STR, "")
    encryption_algorithm: str = _f("encryptionAlgorithm", STR, "")
    certificate_validity_period: timedelta | None = _f("certificateValidityPeriod", DURATION)
    ca_certificate_validity_period: timedelta | None = _f("caCertificateValidityPeriod", DURATION)

    KIND = "ClusterConfiguration"


# --- JoinConfiguration --------------------------------------------------------


@dataclass
class BootstrapTokenDiscovery:
    token: str = _f("token", STR, "", omitempty=False, secret=True)
    api_server_endpoint: str = _f("apiServerEndpoint", STR, "")
    ca_cert_hashes: list[str] | None = _f("caCertHashes", _ListOf(STR))
    unsafe_skip_ca_verification: bool = _f("unsafeSkipCAVerification", BOOL, False)


@dataclass
class FileDiscovery:
    kube_config_path: str = _f("kubeConfigPath", STR, "", omitempty=False)


@dataclass
class Discovery:
    bootstrap_token: BootstrapTokenDiscovery | None = _f("bootstrapToken", _Nested(BootstrapTokenDiscovery))
    file: FileDiscovery | None = _f("file", _Nested(FileDiscovery))
    tls_bootstrap_token: str = _f("tlsBootstrapToken", STR, "", secret=True)


@dataclass
class JoinControlPlane:
    local_api_endpoint: APIEndpoint = _f("localAPIEndpoint", _Nested(APIEndpoint), factory=APIEndpoint, struct=True)
    certificate_key: str = _f("certificateKey", STR, "", secret=True)


@dataclass
class JoinConfiguration:
    dry_run: bool = _f("dryRun", BOOL, False)
    node_registration: NodeRegistrationOptions = _f(
        "nodeRegistration", _Nested(NodeRegistrationOptions), factory=NodeRegistrationOptions, struct=True
    )
    ca_cert_path: str = _f("caCertPath", STR, "")
    discovery: Discovery = _f("discovery", _Nested(Discovery), factory=Discovery, struct=True)
    control_plane: JoinControlPlane | None = _f("controlPlane", _Nested(JoinControlPlane))
    skip_phases: list[str] | None = _f("skipPhases", _ListOf(STR))
    patches: Patches | None = _f("patches", _Nested(Patches))
    timeouts: Timeouts | None = _f("timeouts", _Nested(Timeouts))

    KIND = "JoinConfiguration"


# --- defaults -------------------------------------------------------------------


def default_timeouts() -> Timeouts:
    """SetDefaults_Timeouts (v1beta4/defaults.go)."""
    return Timeouts(
        control_plane_component_health_check=timedelta(minutes=4),
        kubelet_health_check=timedelta(minutes=4),
        kubernetes_api_call=timedelta(minutes=1),
        etcd_api_call=timedelta(minutes=2),
        tls_bootstrap=timedelta(minutes=5),
        discovery=timedelta(minutes=5),
        upgrade_manifests=timedelta(minutes=5),
    )


def default_bootstrap_token(token: str = PLACEHOLDER_TOKEN) -> BootstrapToken:
    """SetDefaults_BootstrapToken: 24h TTL, signing+authentication, default group."""
    return BootstrapToken(
        token=token, ttl=DEFAULT_TOKEN_TTL, usages=list(DEFAULT_TOKEN_USAGES), groups=list(DEFAULT_TOKEN_GROUPS)
    )


def default_node_registration(name: str = PLACEHOLDER_NODE_NAME) -> NodeRegistrationOptions:
    return NodeRegistrationOptions(
        name=name,
        cri_socket=DEFAULT_CRI_SOCKET,
        taints=None,
        image_pull_policy=DEFAULT_IMAGE_PULL_POLICY,
        image_pull_serial=True,
    )


def default_init_configuration(
    *,
    advertise_address: str = PLACEHOLDER_ADVERTISE_ADDRESS,
    node_name: str = PLACEHOLDER_NODE_NAME,
    token: str = PLACEHOLDER_TOKEN,
) -> InitConfiguration:
    """The InitConfiguration of `kubeadm config print init-defaults`.

    With no arguments it holds kubeadm's own placeholders (1.2.3.4, "node",
    abcdef.0123456789abcdef); pass real values for a real cluster.
    """
    return InitConfiguration(
        bootstrap_tokens=[default_bootstrap_token(token)],
        node_registration=default_node_registration(node_name),
        local_api_endpoint=APIEndpoint(advertise_address=advertise_address, bind_port=DEFAULT_BIND_PORT),
        timeouts=default_timeouts(),
    )


def default_cluster_configuration(kubernetes_version: str = DEFAULT_KUBERNETES_VERSION) -> ClusterConfiguration:
    """The ClusterConfiguration of `kubeadm config print init-defaults`.

    kubeadm prints its own version there without the "v" (e.g. 1.34.0); pass
    that to reproduce the output exactly.
    """
    return ClusterConfiguration(
        etcd=Etcd(local=LocalEtcd(data_dir=DEFAULT_ETCD_DATA_DIR)),
        networking=Networking(service_subnet=DEFAULT_SERVICE_SUBNET, dns_domain=DEFAULT_DNS_DOMAIN),
        kubernetes_version=kubernetes_version,
        certificates_dir=DEFAULT_CERTIFICATES_DIR,
        image_repository=DEFAULT_IMAGE_REPOSITORY,
        cluster_name=DEFAULT_CLUSTER_NAME,
        encryption_algorithm=DEFAULT_ENCRYPTION_ALGORITHM,
        certificate_validity_period=DEFAULT_CERTIFICATE_VALIDITY,
        ca_certificate_validity_period=DEFAULT_CA_CERTIFICATE_VALIDITY,
    )


def default_join_configuration(
    *,
    api_server_endpoint: str = PLACEHOLDER_DISCOVERY_ENDPOINT,
    token: str = PLACEHOLDER_TOKEN,
    node_name: str = PLACEHOLDER_NODE_NAME,
    ca_cert_hashes: list[str] | None = None,
) -> JoinConfiguration:
    """The JoinConfiguration of `kubeadm config print join-defaults`.

    kubeadm fills nodeRegistration.name from the host name; we use a
    placeholder. Without pins, unsafeSkipCAVerification is true as in kubeadm's
    placeholder; with pins it is false.
    """
    return JoinConfiguration(
        node_registration=default_node_registration(node_name),
        ca_cert_path=DEFAULT_CA_CERT_PATH,
        discovery=Discovery(
            bootstrap_token=BootstrapTokenDiscovery(
                token=token,
                api_server_endpoint=api_server_endpoint,
                ca_cert_hashes=list(ca_cert_hashes) if ca_cert_hashes else None,
                unsafe_skip_ca_verification=not ca_cert_hashes,
            ),
            tls_bootstrap_token=token,
        ),
        timeouts=default_timeouts(),
    )


# --- render / parse -------------------------------------------------------------


def format_rfc3339(value: datetime.datetime) -> str:
    """UTC, seconds precision, "Z" suffix (Go's time.RFC3339 on a UTC time)."""
    if value.tzinfo is None:
        raise KubeadmError("a time must carry a time zone to be written as RFC 3339")
    return value.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _document(obj: Any) -> dict:
    doc = to_dict(obj)
    doc["apiVersion"] = CONFIG_API_VERSION
    doc["kind"] = obj.KIND
    return doc


def render(*objs: Any) -> str:
    """Render config objects as one multi-document YAML stream."""
    return yamlio.dump_documents([_document(o) for o in objs])


def render_init_config(init: InitConfiguration, cluster: ClusterConfiguration) -> str:
    """InitConfiguration and ClusterConfiguration as two YAML documents."""
    return render(init, cluster)


def render_join_config(join: JoinConfiguration) -> str:
    return render(join)


def render_cluster_config(cluster: ClusterConfiguration) -> str:
    """The ClusterConfiguration as kubeadm stores it in kube-system/kubeadm-config."""
    return render(cluster)


@dataclass
class ParsedConfig:
    init: InitConfiguration | None = None
    cluster: ClusterConfiguration | None = None
    join: JoinConfiguration | None = None
    # Dotted paths such as "nodeRegistration.foo" or "bootstrapTokens[0].bar".
    unknown_fields: list[str] = field(default_factory=list)
    # Documents of other kinds (KubeletConfiguration, ...) kept as plain dicts.
    other_documents: list[dict] = field(default_factory=list)


_KINDS = {cls.KIND: cls for cls in (InitConfiguration, ClusterConfiguration, JoinConfiguration)}
_ATTR = {"InitConfiguration": "init", "ClusterConfiguration": "cluster", "JoinConfiguration": "join"}


def parse_config(text: str) -> ParsedConfig:
    """Parse a user's kubeadm YAML (one or more documents).

    Unknown fields are collected in ``unknown_fields`` (prefixed with the kind
    when several documents are given), not dropped silently. Wrong types raise
    ConfigError naming the field; malformed YAML raises YAMLFormatError.
    """
    result = ParsedConfig()
    documents = yamlio.load_documents(text)
    if not documents:
        raise YAMLFormatError("config", "at least one kubeadm document", "an empty text")
    for index, doc in enumerate(documents):
        where = f"document {index + 1}"
        if not isinstance(doc, dict):
            raise YAMLFormatError(where, "a mapping with apiVersion and kind", type(doc).__name__)
        kind = doc.get("kind")
        api_version = doc.get("apiVersion")
        if not isinstance(kind, str) or not kind:
            raise YAMLFormatError(f"{where}.kind", "the object's kind, e.g. ClusterConfiguration", kind)
        if kind not in _KINDS:
            result.other_documents.append(doc)
            continue
        if api_version != CONFIG_API_VERSION:
            raise YAMLFormatError(
                f"{kind}.apiVersion",
                CONFIG_API_VERSION,
                api_version,
                hint="convert v1beta3 files with migrate_config (as `kubeadm config migrate` does)",
            )
        attr = _ATTR[kind]
        if getattr(result, attr) is not None:
            raise YAMLFormatError(where, f"at most one {kind}", f"a second {kind}")
        ctx = _LoadContext()
        body = {k: v for k, v in doc.items() if k not in ("apiVersion", "kind")}
        setattr(result, attr, _from_dict(_KINDS[kind], body, "", ctx))
        result.unknown_fields.extend(f"{kind}.{p}" if len(documents) > 1 else p for p in ctx.unknown_fields)
    return result


def migrate_config(text: str) -> ParsedConfig:
    """A v1beta3 (or v1beta4) file as defaulted v1beta4 objects, like `kubeadm config migrate`
    (see kubeadm.migrate for the rules and the deliberate differences)."""
    from kubeadm.migrate import migrate_config as migrate

    return migrate(text)


def from_dict(cls: type, data: dict) -> tuple[Any, list[str]]:
    """Build one config dataclass from a dict; returns (object, unknown_fields)."""
    ctx = _LoadContext()
    return _from_dict(cls, data, "", ctx), ctx.unknown_fields


from kubeadm.validation import (  # noqa: E402  (validation needs the types above)
    validate_cluster_configuration,
    validate_init_configuration,
    validate_join_configuration,
)

__all__ = [
    "APIEndpoint",
    "APIServer",
    "Arg",
    "BootstrapToken",
    "BootstrapTokenDiscovery",
    "ClusterConfiguration",
    "ControlPlaneComponent",
    "DNS",
    "Discovery",
    "EnvVar",
    "Etcd",
    "ExternalEtcd",
    "FileDiscovery",
    "HostPathMount",
    "InitConfiguration",
    "JoinConfiguration",
    "JoinControlPlane",
    "LocalEtcd",
    "Networking",
    "NodeRegistrationOptions",
    "ParsedConfig",
    "Patches",
    "Proxy",
    "Taint",
    "Timeouts",
    "default_cluster_configuration",
    "default_init_configuration",
    "default_join_configuration",
    "migrate_config",
    "parse_config",
    "render",
    "render_cluster_config",
    "render_init_config",
    "render_join_config",
    "to_dict",
    "validate_cluster_configuration",
    "validate_init_configuration",
    "validate_join_configuration",
]
