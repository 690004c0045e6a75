"""The configuration file kubeadm reads on one machine: node-level settings plus the cluster's.

``init_config_for_node`` renders the InitConfiguration of the first control plane (its address,
name, CRI socket, preflight ignore list and the bootstrap token(s) Kubeboard issued) followed by
the cluster's ClusterConfiguration; ``join_config_for_node`` renders the JoinConfiguration of a
worker or an extra control plane (token discovery pinned to the cluster CA, and for a control
plane its advertise address and, the upload-certs way, the certificate key).

Both refuse kubeadm's placeholders (token abcdef.0123456789abcdef, address 1.2.3.4, node "node")
and a join without CA pins: Kubeboard never joins with unsafeSkipCAVerification. Verified with
the real kubeadm v1.37.2 on the test bed (tests/e2e/test_kubeadm_phases.py). The rendered text
holds the token (and certificate key): upload it with mode 0600 and never log it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from kubeadm import config as cfg
from kubeadm import discovery, netutil, preflight, tokens, workflow
from kubeadm.errors import ConfigError

# Where Kubeboard puts the files on the machine. kubeadm's preflight checks only manifests/,
# the kubeconfig files and pki/ contents under /etc/kubernetes, so a subdirectory is fine
# there; `kubeadm reset` does NOT remove it (cleanup-node empties manifests/ and pki/ and
# deletes the *.conf files only), so a reset must remove it too.
CONFIG_DIR = "/etc/kubernetes/kubeboard"
INIT_CONFIG_PATH = f"{CONFIG_DIR}/kubeadm-init.yaml"
JOIN_CONFIG_PATH = f"{CONFIG_DIR}/kubeadm-join.yaml"
CONFIG_MODE = 0o600


def _check_node(node_name: str, address: str, *, field: str) -> None:
    if not node_name or node_name == cfg.PLACEHOLDER_NODE_NAME:
        raise ConfigError(f"{field}.nodeRegistration.name", "the machine's node name", node_name)
    if not netutil.is_dns1123_subdomain(node_name):
        raise ConfigError(f"{field}.nodeRegistration.name", "a lowercase DNS-1123 name (a-z, 0-9, '-', '.')", node_name)
    if address is not None:
        if not address or address == cfg.PLACEHOLDER_ADVERTISE_ADDRESS:
            raise ConfigError(f"{field}.advertiseAddress", "the machine's own IP address", address)
        if netutil.parse_ip(address) is None:
            raise ConfigError(f"{field}.advertiseAddress", "an IP address (kubeadm refuses host names here)", address)


def _token(value: object, field: str) -> str:
    text = str(value) if isinstance(value, tokens.BootstrapTokenString) else value
    if not isinstance(text, str):
        raise ConfigError(field, "a bootstrap token id.secret", value, secret=True)
    parsed = tokens.parse_token(text, field=field)
    if str(parsed) == cfg.PLACEHOLDER_TOKEN:
        raise ConfigError(field, "a token Kubeboard created (never kubeadm's placeholder)", "abcdef.<placeholder>")
    return str(parsed)


def _timeouts(overrides: cfg.Timeouts | None) -> cfg.Timeouts:
    """kubeadm's default timeouts with the fields set in ``overrides`` replaced."""
    result = cfg.default_timeouts()
    for f in dataclasses.fields(cfg.Timeouts):
        value = getattr(overrides, f.name) if overrides is not None else None
        if value is not None:
            setattr(result, f.name, value)
    return result


def _registration(
    node_name: str, cri_socket: str, ignore: Iterable[str], taints: list[cfg.Taint] | None
) -> cfg.NodeRegistrationOptions:
    registration = cfg.default_node_registration(node_name)
    registration.cri_socket = cri_socket or cfg.DEFAULT_CRI_SOCKET
    ignored = preflight.normalize_ignore_list(ignore, field="nodeRegistration.ignorePreflightErrors")
    registration.ignore_preflight_errors = ignored or None
    registration.taints = taints
    return registration


def init_config_for_node(
    cluster: cfg.ClusterConfiguration,
    *,
    node_name: str,
    advertise_address: str,
    bootstrap_tokens: Sequence[cfg.BootstrapToken | str | tokens.BootstrapTokenString],
    bind_port: int = cfg.DEFAULT_BIND_PORT,
    cri_socket: str = cfg.DEFAULT_CRI_SOCKET,
    ignore_preflight_errors: Iterable[str] = (),
    certificate_key: str = "",
    taints: list[cfg.Taint] | None = None,
    timeouts: cfg.Timeouts | None = None,
) -> str:
    """The config file of the first control plane: InitConfiguration + ``cluster``.

    ``bootstrap_tokens``: Kubeboard's token(s), as strings (24h TTL, kubeadm's default usages and
    group) or BootstrapToken objects. An empty list renders no ``bootstrapTokens`` key: fine for
    every phase but bootstrap-token, where kubeadm would invent a token Kubeboard does not know —
    render with the token for that phase. ``certificate_key``: Kubeboard's upload-certs key, used
    by ``kubeadm init phase upload-certs --upload-certs`` (see workflow.init_phase_command).
    ``taints`` None = kubeadm's control-plane taint; [] = none.
    """
    _check_node(node_name, advertise_address, field="InitConfiguration")
    if not cluster.kubernetes_version:
        raise ConfigError(
            "ClusterConfiguration.kubernetesVersion",
            "an explicit version (without one kubeadm asks "
            "dl.k8s.io, which a machine without internet access cannot reach)",
            "",
        )
    init = cfg.default_init_configuration(advertise_address=advertise_address, node_name=node_name)
    init.local_api_endpoint.bind_port = bind_port
    init.node_registration = _registration(node_name, cri_socket, ignore_preflight_errors, taints)
    init.timeouts = _timeouts(timeouts)
    rendered_tokens = []
    for index, item in enumerate(bootstrap_tokens):
        field = f"InitConfiguration.bootstrapTokens[{index}].token"
        if isinstance(item, cfg.BootstrapToken):
            _token(item.token, field)
            rendered_tokens.append(item)
        else:
            rendered_tokens.append(cfg.default_bootstrap_token(_token(item, field)))
    init.bootstrap_tokens = rendered_tokens or None
    if certificate_key:
        from kubeadm.certkeys import decode_certificate_key

        decode_certificate_key(certificate_key)
        init.certificate_key = certificate_key
    return cfg.render_init_config(init, cluster)


def join_config_for_node(
    *,
    api_server_endpoint: str,
    token: str | tokens.BootstrapTokenString,
    ca_cert_hashes: Sequence[str],
    node_name: str,
    cri_socket: str = cfg.DEFAULT_CRI_SOCKET,
    ignore_preflight_errors: Iterable[str] = (),
    control_plane_address: str | None = None,
    bind_port: int = cfg.DEFAULT_BIND_PORT,
    certificate_key: str = "",
    taints: list[cfg.Taint] | None = None,
    timeouts: cfg.Timeouts | None = None,
) -> str:
    """The JoinConfiguration of a worker (``control_plane_address`` None) or a control plane.

    Discovery is ``bootstrapToken`` {apiServerEndpoint, token, caCertHashes} and the same token
    for TLS bootstrap. A control plane gets ``controlPlane.localAPIEndpoint`` (kubeadm cannot guess
    the address on a machine without a default route) and, the upload-certs way,
    ``certificateKey`` (download-certs runs only then; without it the shared certificates must be
    pre-seeded). ``taints`` None = kubeadm's default (none for workers, control-plane taint for
    control planes). ``timeouts``: fields set there replace kubeadm's defaults — e.g. ``discovery``
    (5 min by default: an unreachable endpoint is retried that long before preflight fails).
    """
    _check_node(node_name, control_plane_address, field="JoinConfiguration")
    try:
        host, port = netutil.parse_host_port(api_server_endpoint)
    except ValueError as exc:
        raise ConfigError(
            "discovery.bootstrapToken.apiServerEndpoint",
            "host:port of the control-plane endpoint",
            api_server_endpoint,
            hint=str(exc),
        ) from None
    if not port:
        raise ConfigError(
            "discovery.bootstrapToken.apiServerEndpoint", "host:port (with the port)", api_server_endpoint
        )
    pins = [discovery.parse_pin(p) for p in ca_cert_hashes]
    if not pins:
        raise ConfigError(
            "discovery.bootstrapToken.caCertHashes",
            "at least one sha256 CA pin (Kubeboard never joins with unsafeSkipCAVerification)",
            [],
        )
    if certificate_key and control_plane_address is None:
        raise ConfigError("controlPlane.certificateKey", "no certificate key for a worker", "a key", secret=True)
    token_text = _token(token, "discovery.bootstrapToken.token")
    join = cfg.default_join_configuration(
        api_server_endpoint=api_server_endpoint, token=token_text, node_name=node_name, ca_cert_hashes=pins
    )
    join.node_registration = _registration(node_name, cri_socket, ignore_preflight_errors, taints)
    join.timeouts = _timeouts(timeouts)
    if control_plane_address is not None:
        join.control_plane = cfg.JoinControlPlane(
            local_api_endpoint=cfg.APIEndpoint(advertise_address=control_plane_address, bind_port=bind_port)
        )
        if certificate_key:
            from kubeadm.certkeys import decode_certificate_key

            decode_certificate_key(certificate_key)
            join.control_plane.certificate_key = certificate_key
    return cfg.render_join_config(join)


def init_phase_argv(name: str, *, ignore_preflight_errors: Iterable[str] = ()) -> list[str]:
    """The command of one ``kubeadm init`` phase with the config at ``INIT_CONFIG_PATH``
    (``workflow`` knows which phases run alone and which through the whole command with the
    others skipped).

    ``upload-certs`` without ``--upload-certs`` only says kubeadm skips it: with that flag kubeadm
    would make its own owner token for the kubeadm-certs Secret, a token Kubeboard does not know;
    Kubeboard writes that Secret itself when the cluster joins control planes that way."""
    if name == "upload-certs":
        return ["kubeadm", "init", "phase", "upload-certs", "--config", INIT_CONFIG_PATH]
    return workflow.init_phase_command(name, INIT_CONFIG_PATH, ignore_preflight_errors=tuple(ignore_preflight_errors))


def join_phase_argv(name: str, *, ignore_preflight_errors: Iterable[str] = ()) -> list[str]:
    """The command of one ``kubeadm join`` phase with the config at ``JOIN_CONFIG_PATH``."""
    return workflow.join_phase_command(name, JOIN_CONFIG_PATH, ignore_preflight_errors=tuple(ignore_preflight_errors))
