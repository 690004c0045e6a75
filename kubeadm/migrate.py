"""``kubeadm config migrate``: kubeadm.k8s.io/v1beta3 files to v1beta4, as kubeadm does it.

kubeadm v1.37.2 no longer reads v1beta3 ("your configuration file uses an old API spec ... Please
use kubeadm v1.36 instead"), so the reference is v1.36.3's ``kubeadm config migrate`` (its output
is kept in tests/unit/kubeadm/data/real-v1.36.3/migrate and compared byte for byte). The changes
(cmd/kubeadm/app/apis/kubeadm/v1beta4/conversion.go):

* every ``extraArgs`` / ``kubeletExtraArgs`` map becomes a list of {name, value}, sorted by name;
* ``apiServer.timeoutForControlPlane`` moves to InitConfiguration
  ``timeouts.controlPlaneComponentHealthCheck``;
* JoinConfiguration ``discovery.timeout`` moves to ``timeouts.discovery``;
* then v1beta4's defaults are filled in (timeouts, imagePullPolicy/imagePullSerial, criSocket,
  encryptionAlgorithm, the validity periods, caCertPath, tlsBootstrapToken, bootstrap-token
  TTL/usages/groups, the control-plane taint when ``taints`` is unset on a control plane ...).

Where this differs from ``kubeadm config migrate`` on purpose: values kubeadm takes from the
machine it runs on are left empty for Kubeboard to fill per node — the node name (kubeadm: the
host name), the advertise address (kubeadm: the default route's address), a bootstrap token when
none is given (kubeadm: a random one) and ``kubernetesVersion`` when unset (kubeadm: looked up on
dl.k8s.io). And a file holding Init, Cluster and Join documents converts all three (kubeadm keeps
Init/Cluster and drops the Join with a warning).
"""

from __future__ import annotations

import copy
from typing import Any

from kubeadm import CONFIG_API_VERSION, config, yamlio
from kubeadm.errors import ConfigError, YAMLFormatError

V1BETA3 = "kubeadm.k8s.io/v1beta3"
_KINDS = ("InitConfiguration", "ClusterConfiguration", "JoinConfiguration")


def _args(value: Any, path: str) -> list[dict] | None:
    """A v1beta3 map of flags as a v1beta4 list of {name, value}, sorted by name."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError(path, "a mapping of flag names to values (v1beta3)", value)
    result = []
    for name in sorted(value, key=str):
        item = value[name]
        if not isinstance(item, (str, int, float, bool)) or item is None:
            raise ConfigError(f"{path}.{name}", "a string value", item)
        text = item if isinstance(item, str) else str(item).lower() if isinstance(item, bool) else str(item)
        result.append({"name": str(name), "value": text})
    return result


def _convert_args(section: Any, key: str, path: str) -> None:
    if isinstance(section, dict) and key in section:
        section[key] = _args(section[key], f"{path}.{key}")


def convert_document(doc: dict) -> tuple[dict, dict]:
    """One v1beta3 Init/Cluster/JoinConfiguration dict as v1beta4, plus the values that move to
    another document ({"controlPlaneComponentHealthCheck": ...} from a ClusterConfiguration)."""
    kind = doc.get("kind")
    body = copy.deepcopy(doc)
    body["apiVersion"] = CONFIG_API_VERSION
    moved: dict[str, Any] = {}
    registration = body.get("nodeRegistration")
    _convert_args(registration, "kubeletExtraArgs", f"{kind}.nodeRegistration")
    if kind == "ClusterConfiguration":
        for component in ("apiServer", "controllerManager", "scheduler"):
            _convert_args(body.get(component), "extraArgs", f"{kind}.{component}")
        etcd = body.get("etcd")
        if isinstance(etcd, dict):
            _convert_args(etcd.get("local"), "extraArgs", f"{kind}.etcd.local")
        api_server = body.get("apiServer")
        if isinstance(api_server, dict) and "timeoutForControlPlane" in api_server:
            moved["controlPlaneComponentHealthCheck"] = api_server.pop("timeoutForControlPlane")
    elif kind == "JoinConfiguration":
        discovery = body.get("discovery")
        if isinstance(discovery, dict) and "timeout" in discovery:
            body.setdefault("timeouts", {})
            body["timeouts"]["discovery"] = discovery.pop("timeout")
    return body, moved


_CONTROL_PLANE_TAINT = config.Taint(key="node-role.kubernetes.io/control-plane", effect="NoSchedule")


def _default_registration(registration: config.NodeRegistrationOptions, *, control_plane: bool) -> None:
    registration.cri_socket = registration.cri_socket or config.DEFAULT_CRI_SOCKET
    registration.image_pull_policy = registration.image_pull_policy or config.DEFAULT_IMAGE_PULL_POLICY
    if registration.image_pull_serial is None:
        registration.image_pull_serial = True
    if registration.taints is None and control_plane:
        registration.taints = [copy.copy(_CONTROL_PLANE_TAINT)]


def _default_timeouts(timeouts: config.Timeouts | None) -> config.Timeouts:
    defaults = config.default_timeouts()
    if timeouts is None:
        return defaults
    for name in (
        "control_plane_component_health_check",
        "kubelet_health_check",
        "kubernetes_api_call",
        "etcd_api_call",
        "tls_bootstrap",
        "discovery",
        "upgrade_manifests",
    ):
        if getattr(timeouts, name) is None:
            setattr(timeouts, name, getattr(defaults, name))
    return timeouts


def _default_init(init: config.InitConfiguration) -> None:
    _default_registration(init.node_registration, control_plane=True)
    if not init.local_api_endpoint.bind_port:
        init.local_api_endpoint.bind_port = config.DEFAULT_BIND_PORT
    for token in init.bootstrap_tokens or []:
        if token.ttl is None and token.expires is None:
            token.ttl = config.DEFAULT_TOKEN_TTL
        token.usages = token.usages or list(config.DEFAULT_TOKEN_USAGES)
        token.groups = token.groups or list(config.DEFAULT_TOKEN_GROUPS)
    init.timeouts = _default_timeouts(init.timeouts)


def _default_cluster(cluster: config.ClusterConfiguration) -> None:
    if cluster.etcd.external is None:
        if cluster.etcd.local is None:
            cluster.etcd.local = config.LocalEtcd()
        cluster.etcd.local.data_dir = cluster.etcd.local.data_dir or config.DEFAULT_ETCD_DATA_DIR
    networking = cluster.networking
    networking.service_subnet = networking.service_subnet or config.DEFAULT_SERVICE_SUBNET
    networking.dns_domain = networking.dns_domain or config.DEFAULT_DNS_DOMAIN
    cluster.certificates_dir = cluster.certificates_dir or config.DEFAULT_CERTIFICATES_DIR
    cluster.image_repository = cluster.image_repository or config.DEFAULT_IMAGE_REPOSITORY
    cluster.cluster_name = cluster.cluster_name or config.DEFAULT_CLUSTER_NAME
    cluster.encryption_algorithm = cluster.encryption_algorithm or config.DEFAULT_ENCRYPTION_ALGORITHM
    if cluster.certificate_validity_period is None:
        cluster.certificate_validity_period = config.DEFAULT_CERTIFICATE_VALIDITY
    if cluster.ca_certificate_validity_period is None:
        cluster.ca_certificate_validity_period = config.DEFAULT_CA_CERTIFICATE_VALIDITY


def _default_join(join: config.JoinConfiguration) -> None:
    _default_registration(join.node_registration, control_plane=join.control_plane is not None)
    join.ca_cert_path = join.ca_cert_path or config.DEFAULT_CA_CERT_PATH
    token = join.discovery.bootstrap_token
    if token is not None and not join.discovery.tls_bootstrap_token:
        join.discovery.tls_bootstrap_token = token.token
    if join.control_plane is not None and not join.control_plane.local_api_endpoint.bind_port:
        join.control_plane.local_api_endpoint.bind_port = config.DEFAULT_BIND_PORT
    join.timeouts = _default_timeouts(join.timeouts)


def migrate_config(text: str) -> config.ParsedConfig:
    """Read a v1beta3 (or v1beta4) kubeadm file and return it as defaulted v1beta4 objects.

    A ClusterConfiguration without an InitConfiguration gets one, as kubeadm does. Unknown fields
    are listed in ``unknown_fields``; other kinds (KubeletConfiguration ...) are kept in
    ``other_documents``. Raises YAMLFormatError / ConfigError naming the field.
    """
    documents = yamlio.load_documents(text)
    if not documents:
        raise YAMLFormatError("config", "at least one kubeadm document", "an empty text")
    converted: list[dict] = []
    moved: dict[str, Any] = {}
    result = config.ParsedConfig()
    for index, doc in enumerate(documents):
        if not isinstance(doc, dict):
            raise YAMLFormatError(f"document {index + 1}", "a mapping with apiVersion and kind", type(doc).__name__)
        kind, version = doc.get("kind"), doc.get("apiVersion")
        if kind not in _KINDS:
            result.other_documents.append(doc)
            continue
        if version == V1BETA3:
            body, extra = convert_document(doc)
            moved.update(extra)
            converted.append(body)
        elif version == CONFIG_API_VERSION:
            converted.append(copy.deepcopy(doc))
        else:
            raise YAMLFormatError(f"{kind}.apiVersion", f"{V1BETA3} or {CONFIG_API_VERSION}", version)
    if converted:
        parsed = config.parse_config(yamlio.dump_documents(converted))
        result.init, result.cluster, result.join = parsed.init, parsed.cluster, parsed.join
        result.unknown_fields = parsed.unknown_fields
    if result.cluster is not None and result.init is None:
        result.init = config.InitConfiguration()
    if result.init is not None:
        if "controlPlaneComponentHealthCheck" in moved:
            result.init.timeouts = result.init.timeouts or config.Timeouts()
            if result.init.timeouts.control_plane_component_health_check is None:
                seconds = moved["controlPlaneComponentHealthCheck"]
                from kubeadm.durations import parse_duration

                result.init.timeouts.control_plane_component_health_check = parse_duration(
                    seconds, field="ClusterConfiguration.apiServer.timeoutForControlPlane"
                )
        _default_init(result.init)
    if result.cluster is not None:
        _default_cluster(result.cluster)
    if result.join is not None:
        _default_join(result.join)
    return result


def render_migrated(parsed: config.ParsedConfig) -> str:
    """The migrated objects as one YAML stream: InitConfiguration, ClusterConfiguration,
    JoinConfiguration (those present), in kubeadm's format."""
    objects = [o for o in (parsed.init, parsed.cluster, parsed.join) if o is not None]
    return config.render(*objects)
