"""The phases of kubeadm init, join, reset and upgrade, as data, and the command that runs each.

Order and names are what the real kubeadm v1.37.2 prints in ``kubeadm init|join|reset --help``
and ``kubeadm upgrade apply|node --help`` (checked against the binary by
tests/integration/kubeadm/test_real_phases.py). Descriptions are our own words. ``command`` is
the argv of ``kubeadm <workflow> phase <name> [all]`` (parents with sub-phases run them all);
``needs_api_server`` says whether the phase must reach a running kube-apiserver (every join
phase does: kubeadm first discovers the cluster through it).

Use ``init_phase_command`` / ``join_phase_command`` (not ``command``) to run one phase on a
machine: they add ``--config`` and the flags each phase needs, and for the phases that
``kubeadm <workflow> phase`` cannot run alone on such a machine they use the whole workflow with
every other phase skipped (see those functions). Recipes verified on the test bed:
kubeadm/README.md, "Phase by phase".
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Phase:
    name: str
    description: str
    command: tuple[str, ...]
    sub_phases: tuple[Phase, ...] = ()
    needs_api_server: bool = False
    # kubeadm hides some phases from --help (still runnable and skippable).
    hidden: bool = False

    def find(self, path: str) -> Phase | None:
        """Find "certs/apiserver"-style paths among this phase's sub-phases."""
        head, _, rest = path.partition("/")
        for sub in self.sub_phases:
            if sub.name == head:
                return sub if not rest else sub.find(rest)
        return None

    @property
    def skip_names(self) -> tuple[str, ...]:
        """Names usable with --skip-phases: "certs" and "certs/<sub>"."""
        return (self.name,) + tuple(f"{self.name}/{s.name}" for s in self.sub_phases)


def _init(*args: str) -> tuple[str, ...]:
    return ("kubeadm", "init", "phase") + args


def _sub(parent: str, name: str, description: str, *, api: bool = False, cmd=_init) -> Phase:
    return Phase(name, description, cmd(parent, name), needs_api_server=api)


INIT_PHASES: tuple[Phase, ...] = (
    Phase(
        "preflight", "Check the machine can host a control plane and pull the control-plane images.", _init("preflight")
    ),
    Phase(
        "certs",
        "Create the cluster CAs, the serving and client certificates, and the service-account key.",
        _init("certs", "all"),
        sub_phases=(
            _sub("certs", "ca", "Create the cluster CA that signs API server and client certificates."),
            _sub("certs", "apiserver", "Issue the API server serving certificate with all its names and IPs."),
            _sub("certs", "apiserver-kubelet-client", "Issue the certificate the API server uses to call kubelets."),
            _sub("certs", "front-proxy-ca", "Create the CA for the aggregation-layer front proxy."),
            _sub("certs", "front-proxy-client", "Issue the front-proxy client certificate."),
            _sub("certs", "etcd-ca", "Create the CA that signs etcd certificates."),
            _sub("certs", "etcd-server", "Issue the etcd serving certificate."),
            _sub("certs", "etcd-peer", "Issue the certificate etcd members use with each other."),
            _sub("certs", "etcd-healthcheck-client", "Issue the client certificate for etcd health probes."),
            _sub("certs", "apiserver-etcd-client", "Issue the client certificate the API server uses for etcd."),
            _sub("certs", "sa", "Create the key pair that signs service-account tokens."),
        ),
    ),
    Phase(
        "kubeconfig",
        "Write the kubeconfig files for admins, the kubelet and the control-plane components.",
        _init("kubeconfig", "all"),
        sub_phases=(
            _sub("kubeconfig", "admin", "Write admin.conf for the kubeadm:cluster-admins group."),
            _sub("kubeconfig", "super-admin", "Write super-admin.conf, the break-glass system:masters credential."),
            _sub("kubeconfig", "kubelet", "Write kubelet.conf for this node's kubelet."),
            _sub("kubeconfig", "controller-manager", "Write controller-manager.conf."),
            _sub("kubeconfig", "scheduler", "Write scheduler.conf."),
        ),
    ),
    Phase(
        "etcd",
        "Write the static Pod manifest of the local etcd member.",
        _init("etcd", "local"),
        sub_phases=(_sub("etcd", "local", "Write etcd.yaml for a single local etcd member."),),
    ),
    Phase(
        "control-plane",
        "Write the static Pod manifests of the API server, controller manager and scheduler.",
        _init("control-plane", "all"),
        sub_phases=(
            _sub("control-plane", "apiserver", "Write kube-apiserver.yaml."),
            _sub("control-plane", "controller-manager", "Write kube-controller-manager.yaml."),
            _sub("control-plane", "scheduler", "Write kube-scheduler.yaml."),
        ),
    ),
    Phase(
        "kubelet-start",
        "Write the kubelet's flags and configuration, then (re)start the kubelet.",
        _init("kubelet-start"),
    ),
    Phase(
        "wait-control-plane",
        "Wait until the kubelet and every control-plane component report healthy.",
        _init("wait-control-plane"),
        needs_api_server=True,
    ),
    Phase(
        "upload-config",
        "Store the cluster and kubelet configuration in ConfigMaps for later joins and upgrades.",
        _init("upload-config", "all"),
        needs_api_server=True,
        sub_phases=(
            _sub("upload-config", "kubeadm", "Store the ClusterConfiguration in kube-system/kubeadm-config.", api=True),
            _sub("upload-config", "kubelet", "Store the KubeletConfiguration in kube-system/kubelet-config.", api=True),
        ),
    ),
    Phase(
        "upload-certs",
        "Encrypt the shared CA and service-account keys into the kubeadm-certs Secret (only with --upload-certs).",
        _init("upload-certs"),
        needs_api_server=True,
    ),
    Phase(
        "mark-control-plane",
        "Label and taint this node as a control-plane node.",
        _init("mark-control-plane"),
        needs_api_server=True,
    ),
    Phase(
        "bootstrap-token",
        "Create bootstrap tokens, the RBAC rules for joining nodes, and the cluster-info ConfigMap.",
        _init("bootstrap-token"),
        needs_api_server=True,
    ),
    Phase(
        "kubelet-finalize",
        "Point kubelet.conf at the kubelet's rotating client certificate.",
        _init("kubelet-finalize", "all"),
        sub_phases=(
            _sub(
                "kubelet-finalize",
                "enable-client-cert-rotation",
                "Switch kubelet.conf to /var/lib/kubelet/pki/kubelet-client-current.pem.",
            ),
        ),
    ),
    Phase(
        "addon",
        "Install the CoreDNS and kube-proxy add-ons.",
        _init("addon", "all"),
        needs_api_server=True,
        sub_phases=(
            _sub("addon", "coredns", "Install CoreDNS and the kube-dns Service.", api=True),
            _sub("addon", "kube-proxy", "Install the kube-proxy DaemonSet and its configuration.", api=True),
        ),
    ),
    Phase(
        "show-join-command",
        "Print the commands that join more control-plane and worker nodes.",
        _init("show-join-command"),
    ),
)


def _join(*args: str) -> tuple[str, ...]:
    return ("kubeadm", "join", "phase") + args


def _jsub(parent: str, name: str, description: str) -> Phase:
    return Phase(name, description, _join(parent, name), needs_api_server=True)


_JOIN_PREFLIGHT = Phase(
    "preflight",
    "Check the machine, discover and verify the cluster, read its configuration.",
    _join("preflight"),
    needs_api_server=True,
)
_JOIN_KUBELET_START = Phase(
    "kubelet-start",
    "Write the bootstrap kubeconfig and the kubelet configuration, then start the kubelet.",
    _join("kubelet-start"),
    needs_api_server=True,
)
_JOIN_KUBELET_WAIT_BOOTSTRAP = Phase(
    "kubelet-wait-bootstrap",
    "Wait for the kubelet to become healthy and finish TLS bootstrap, then remove the bootstrap kubeconfig.",
    _join("kubelet-wait-bootstrap"),
    needs_api_server=True,
)

# kubeadm v1.37.2 (ControlPlaneKubeletLocalMode is GA): kubelet-start no longer waits for the
# TLS bootstrap, kubelet-wait-bootstrap does, on workers too; etcd-join and
# kubelet-wait-bootstrap are visible phases; check-etcd is no longer a phase (kubeadm prints
# "[check-etcd] Checking that the etcd cluster is healthy" inside wait-control-plane) and
# control-plane-join has only mark-control-plane.
JOIN_WORKER_PHASES: tuple[Phase, ...] = (_JOIN_PREFLIGHT, _JOIN_KUBELET_START, _JOIN_KUBELET_WAIT_BOOTSTRAP)

JOIN_CONTROL_PLANE_PHASES: tuple[Phase, ...] = (
    _JOIN_PREFLIGHT,
    Phase(
        "control-plane-prepare",
        "Fetch the shared certificates and write this node's certificates, kubeconfigs and control-plane manifests.",
        _join("control-plane-prepare", "all"),
        needs_api_server=True,
        sub_phases=(
            _jsub(
                "control-plane-prepare",
                "download-certs",
                "Download and decrypt the kubeadm-certs Secret (only with a certificate key).",
            ),
            _jsub("control-plane-prepare", "certs", "Issue this node's serving and client certificates."),
            _jsub(
                "control-plane-prepare", "kubeconfig", "Write admin.conf, controller-manager.conf and scheduler.conf."
            ),
            _jsub("control-plane-prepare", "control-plane", "Write the three control-plane static Pod manifests."),
        ),
    ),
    _JOIN_KUBELET_START,
    Phase(
        "etcd-join",
        "Add this node as an etcd learner, write its etcd manifest and promote it.",
        _join("etcd-join"),
        needs_api_server=True,
    ),
    _JOIN_KUBELET_WAIT_BOOTSTRAP,
    Phase(
        "control-plane-join",
        "Mark this node as a control-plane node.",
        _join("control-plane-join", "all"),
        needs_api_server=True,
        sub_phases=(_jsub("control-plane-join", "mark-control-plane", "Label and taint the node as control plane."),),
    ),
    Phase(
        "wait-control-plane",
        "Check etcd, then wait until this node's control-plane components report healthy.",
        _join("wait-control-plane"),
        needs_api_server=True,
    ),
)


def _reset(*args: str) -> tuple[str, ...]:
    return ("kubeadm", "reset", "phase") + args


RESET_PHASES: tuple[Phase, ...] = (
    Phase("preflight", "Confirm the reset and check privileges.", _reset("preflight")),
    Phase(
        "remove-etcd-member",
        "Remove this node's member from the etcd cluster and clear its data directory.",
        _reset("remove-etcd-member"),
    ),
    Phase(
        "cleanup-node",
        "Stop the kubelet, remove containers and delete kubeadm's files on this node.",
        _reset("cleanup-node"),
    ),
)


def _apply(*args: str) -> tuple[str, ...]:
    return ("kubeadm", "upgrade", "apply", "phase") + args


def _asub(parent: str, name: str, description: str) -> Phase:
    return Phase(name, description, _apply(parent, name), needs_api_server=True)


# `kubeadm upgrade apply` on the first control-plane node (phased since 1.32).
UPGRADE_PHASES: tuple[Phase, ...] = (
    Phase(
        "preflight",
        "Check cluster health and the version skew policy, then pull the new images.",
        _apply("preflight"),
        needs_api_server=True,
    ),
    Phase(
        "control-plane",
        "Upgrade etcd and the control-plane static Pods one by one, renewing certificates.",
        _apply("control-plane"),
        needs_api_server=True,
    ),
    Phase(
        "upload-config",
        "Store the upgraded cluster and kubelet configuration.",
        _apply("upload-config", "all"),
        needs_api_server=True,
        sub_phases=(
            _asub("upload-config", "kubeadm", "Update kube-system/kubeadm-config."),
            _asub("upload-config", "kubelet", "Update kube-system/kubelet-config."),
        ),
    ),
    Phase(
        "kubelet-config",
        "Rewrite this node's kubelet configuration from the cluster's ConfigMap.",
        _apply("kubelet-config"),
        needs_api_server=True,
    ),
    Phase(
        "bootstrap-token",
        "Re-apply the RBAC rules that bootstrap tokens rely on.",
        _apply("bootstrap-token"),
        needs_api_server=True,
    ),
    Phase(
        "addon",
        "Upgrade CoreDNS and kube-proxy once every control-plane node is upgraded.",
        _apply("addon", "all"),
        needs_api_server=True,
        sub_phases=(
            _asub("addon", "coredns", "Upgrade CoreDNS."),
            _asub("addon", "kube-proxy", "Upgrade kube-proxy."),
        ),
    ),
    Phase(
        "post-upgrade",
        "Run version-specific clean-ups after the upgrade.",
        _apply("post-upgrade"),
        needs_api_server=True,
    ),
)


def _node(*args: str) -> tuple[str, ...]:
    return ("kubeadm", "upgrade", "node", "phase") + args


# `kubeadm upgrade node` on every other node.
UPGRADE_NODE_PHASES: tuple[Phase, ...] = (
    Phase("preflight", "Check the node can be upgraded and pull images.", _node("preflight"), needs_api_server=True),
    Phase(
        "control-plane",
        "Upgrade this node's control-plane static Pods (control-plane nodes only).",
        _node("control-plane"),
        needs_api_server=True,
    ),
    Phase(
        "kubelet-config",
        "Rewrite this node's kubelet configuration from the cluster's ConfigMap.",
        _node("kubelet-config"),
        needs_api_server=True,
    ),
    Phase(
        "addon",
        "Upgrade CoreDNS and kube-proxy once every control-plane node is upgraded.",
        _node("addon", "all"),
        needs_api_server=True,
        sub_phases=(
            Phase("coredns", "Upgrade CoreDNS.", _node("addon", "coredns"), needs_api_server=True),
            Phase("kube-proxy", "Upgrade kube-proxy.", _node("addon", "kube-proxy"), needs_api_server=True),
        ),
    ),
    Phase(
        "post-upgrade",
        "Run version-specific clean-ups after the upgrade.",
        _node("post-upgrade"),
        needs_api_server=True,
    ),
)

# On a worker ``kubeadm upgrade node phase control-plane|addon`` only print "Skipping phase. Not
# a control plane node." and exit 0 (v1.37.2), so a worker runs just these.
UPGRADE_NODE_CONTROL_PLANE_ONLY = frozenset({"control-plane", "addon"})
UPGRADE_NODE_WORKER_PHASES: tuple[Phase, ...] = tuple(
    p for p in UPGRADE_NODE_PHASES if p.name not in UPGRADE_NODE_CONTROL_PLANE_ONLY
)

WORKFLOWS: dict[str, tuple[Phase, ...]] = {
    "init": INIT_PHASES,
    "join-worker": JOIN_WORKER_PHASES,
    "join-control-plane": JOIN_CONTROL_PLANE_PHASES,
    "reset": RESET_PHASES,
    "upgrade": UPGRADE_PHASES,
    "upgrade-node": UPGRADE_NODE_PHASES,
}


def phase_names(phases: tuple[Phase, ...]) -> list[str]:
    """Flat "parent" / "parent/sub" names in execution order."""
    names = []
    for phase in phases:
        names.append(phase.name)
        names.extend(f"{phase.name}/{s.name}" for s in phase.sub_phases)
    return names


def skippable_phases(workflow: str) -> tuple[str, ...]:
    """The phases of ``workflow`` a person may skip, by the names kubeadm's ``--skip-phases`` takes
    (``kubeadm init|join --help`` lists them). Kubeboard runs each top-level phase as one step
    (``kubeadm <workflow> phase <name> [all]``), so the top-level names are the ones it can leave out;
    a sub-phase ("control-plane-prepare/download-certs") runs inside its parent's step."""
    return tuple(phase.name for phase in WORKFLOWS[workflow])


def find_phase(phases: tuple[Phase, ...], path: str) -> Phase | None:
    head, _, rest = path.partition("/")
    for phase in phases:
        if phase.name == head:
            return phase if not rest else phase.find(rest)
    return None


# --- the command that runs one phase on a machine ---------------------------------------------

# `kubeadm init phase <x>` has no --config flag for these (v1.37.2), so kubeadm would default
# the node's address from the default route: on a machine without one it fails ("cannot use
# "0.0.0.0" as the bind address for the API Server"), and on a machine with one it could check
# the wrong address. They run as the whole `kubeadm init --config` with every other phase skipped.
INIT_PHASES_WITHOUT_CONFIG_FLAG = frozenset({"wait-control-plane", "show-join-command"})

# `kubeadm join phase <x>` without discovery flags reads the cluster from
# /etc/kubernetes/admin.conf ("File /etc/kubernetes/admin.conf does not exists. Please use
# 'kubeadm join phase control-plane-prepare' subcommands to generate it." on a worker), and
# `join phase wait-control-plane` has no --config at all: it then treats the node as a worker and
# returns at once, checking nothing. They run as the whole `kubeadm join --config` with every
# other phase skipped, which discovers the cluster from the JoinConfiguration like the rest.
JOIN_PHASES_WITHOUT_DISCOVERY = frozenset(
    {"etcd-join", "kubelet-wait-bootstrap", "control-plane-join", "wait-control-plane"}
)


def _resolve(phases: tuple[Phase, ...], path: str, workflow: str) -> Phase:
    phase = find_phase(phases, path) if isinstance(path, str) else None
    if phase is None:
        from kubeadm.errors import ConfigError

        raise ConfigError("phase", f"a kubeadm {workflow} phase: " + ", ".join(phase_names(phases)), path)
    return phase


def _skip_all_but(phases: tuple[Phase, ...], keep: str) -> str:
    return "--skip-phases=" + ",".join(p.name for p in phases if p.name != keep)


def init_phase_command(
    phase: str,
    config_path: str,
    *,
    upload_certs: bool = False,
    certificate_key_in_config: bool = False,
    ignore_preflight_errors: tuple[str, ...] = (),
    kubeadm: str = "kubeadm",
) -> list[str]:
    """The argv that runs one ``kubeadm init`` phase ("certs", "certs/ca", ...) with ``config_path``
    (InitConfiguration + ClusterConfiguration), as kubeadm v1.37.2 accepts it.

    * preflight: ``--ignore-preflight-errors=...`` when given (kubeadm adds it to the config's
      nodeRegistration.ignorePreflightErrors);
    * upload-certs: needs ``upload_certs=True`` (without ``--upload-certs`` kubeadm only prints
      "Skipping phase"); kubeadm refuses ``--certificate-key`` next to ``--config``, so either
      put Kubeboard's key in InitConfiguration.certificateKey and pass
      ``certificate_key_in_config=True`` (adds ``--skip-certificate-key-print``: the secret stays
      out of the output), or let kubeadm generate one and read it with
      ``certificate_key_from_output``;
    * bootstrap-token: ``--skip-token-print`` (kubeadm would print the token, a secret);
    * wait-control-plane, show-join-command: ``kubeadm init --config F --skip-phases=<all others>``
      (see INIT_PHASES_WITHOUT_CONFIG_FLAG).
    """
    found = _resolve(INIT_PHASES, phase, "init")
    top = phase.partition("/")[0]
    if top in INIT_PHASES_WITHOUT_CONFIG_FLAG:
        return [kubeadm, "init", "--config", config_path, _skip_all_but(INIT_PHASES, top)]
    argv = [kubeadm, *found.command[1:], "--config", config_path]
    if top == "preflight":
        from kubeadm.preflight import ignore_flag

        argv += ignore_flag(ignore_preflight_errors)
    elif top == "upload-certs":
        if not upload_certs:
            from kubeadm.errors import ConfigError

            raise ConfigError("upload_certs", "True: without --upload-certs kubeadm skips this phase", upload_certs)
        argv.append("--upload-certs")
        if certificate_key_in_config:
            argv.append("--skip-certificate-key-print")
    elif top == "bootstrap-token":
        argv.append("--skip-token-print")
    return argv


def certificate_key_from_output(lines: list[str]) -> str:
    """The key ``kubeadm init phase upload-certs --upload-certs`` printed after "[upload-certs]
    Using certificate key:" (its last line). Raises CertificateKeyError if there is none."""
    from kubeadm.certkeys import decode_certificate_key
    from kubeadm.errors import CertificateKeyError

    for index, line in enumerate(lines):
        if line.strip() == "[upload-certs] Using certificate key:" and index + 1 < len(lines):
            key = lines[index + 1].strip()
            decode_certificate_key(key)
            return key
    raise CertificateKeyError(
        "upload-certs output: expected a line after '[upload-certs] Using certificate key:', "
        "found none (was --skip-certificate-key-print given?)"
    )


def join_phase_command(
    phase: str, config_path: str, *, ignore_preflight_errors: tuple[str, ...] = (), kubeadm: str = "kubeadm"
) -> list[str]:
    """The argv that runs one ``kubeadm join`` phase with ``config_path`` (a JoinConfiguration:
    discovery, nodeRegistration, and controlPlane for a control-plane node), as v1.37.2 accepts it.

    preflight, control-plane-prepare[/sub] and kubelet-start run as ``kubeadm join phase <x>
    --config F``; etcd-join, kubelet-wait-bootstrap, control-plane-join and wait-control-plane as
    ``kubeadm join --config F --skip-phases=<all others>`` (see JOIN_PHASES_WITHOUT_DISCOVERY).
    A control-plane-prepare without ``controlPlane.certificateKey`` skips download-certs silently:
    the shared certificates must then already be on the machine (control_plane_shared_files).
    """
    found = _resolve(JOIN_CONTROL_PLANE_PHASES, phase, "join")
    top = phase.partition("/")[0]
    if top in JOIN_PHASES_WITHOUT_DISCOVERY:
        return [kubeadm, "join", "--config", config_path, _skip_all_but(JOIN_CONTROL_PLANE_PHASES, top)]
    argv = [kubeadm, *found.command[1:], "--config", config_path]
    if top == "preflight":
        from kubeadm.preflight import ignore_flag

        argv += ignore_flag(ignore_preflight_errors)
    return argv


def reset_phase_command(
    phase: str, *, ignore_preflight_errors: tuple[str, ...] = (), cri_socket: str = "", kubeadm: str = "kubeadm"
) -> list[str]:
    """The argv of one ``kubeadm reset`` phase (v1.37.2). preflight gets ``--force`` (it asks for
    confirmation on stdin otherwise); remove-etcd-member removes this node's own member (it reads
    the cluster through /etc/kubernetes/admin.conf and the etcd manifest; a worker has none and
    the phase only says so); cleanup-node takes the CRI socket to remove containers."""
    found = _resolve(RESET_PHASES, phase, "reset")
    argv = [kubeadm, *found.command[1:]]
    if phase == "preflight":
        from kubeadm.preflight import ignore_flag

        argv += ["--force", *ignore_flag(ignore_preflight_errors)]
    elif phase == "cleanup-node" and cri_socket:
        argv += ["--cri-socket", cri_socket]
    return argv


# `kubeadm certs renew <name>` (v1.37.2 help): the names, "all" renews every one of them.
CERTS_RENEW_NAMES = (
    "admin.conf",
    "apiserver",
    "apiserver-etcd-client",
    "apiserver-kubelet-client",
    "controller-manager.conf",
    "etcd-healthcheck-client",
    "etcd-peer",
    "etcd-server",
    "front-proxy-client",
    "scheduler.conf",
    "super-admin.conf",
)


def certs_renew_command(name: str = "all", *, kubeadm: str = "kubeadm") -> list[str]:
    """``kubeadm certs renew <name>``; kubeadm reads the cluster's configuration from the
    kubeadm-config ConfigMap. Afterwards the static Pods using the certificates must be restarted
    ("You must restart the kube-apiserver, kube-controller-manager, kube-scheduler and etcd")."""
    if name != "all" and name not in CERTS_RENEW_NAMES:
        from kubeadm.errors import ConfigError

        raise ConfigError("certificate", "all or one of " + ", ".join(CERTS_RENEW_NAMES), name)
    return [kubeadm, "certs", "renew", name]


def certs_check_expiration_command(*, kubeadm: str = "kubeadm") -> list[str]:
    """``kubeadm certs check-expiration`` (parse its output with certs.parse_check_expiration)."""
    return [kubeadm, "certs", "check-expiration"]


def upgrade_plan_command(
    version: str = "", *, ignore_preflight_errors: tuple[str, ...] = (), kubeadm: str = "kubeadm"
) -> list[str]:
    """``kubeadm upgrade plan [version]`` on a control-plane node. Its preflight runs a cluster
    health check Job (CreateJob, up to 1 minute) and, without a version, asks dl.k8s.io for the
    newest release (falling back to kubeadm's own version offline)."""
    from kubeadm.preflight import ignore_flag
    from kubeadm.versions import parse_version, with_v

    argv = [kubeadm, "upgrade", "plan"]
    if version:
        parse_version(version, field="target version", check_supported=False)
        argv.append(with_v(version))
    return argv + ignore_flag(ignore_preflight_errors)


def upgrade_apply_phase_command(
    phase: str, version: str, *, ignore_preflight_errors: tuple[str, ...] = (), kubeadm: str = "kubeadm"
) -> list[str]:
    """One ``kubeadm upgrade apply`` phase on the first control-plane node, with the NEW kubeadm.
    Every phase needs the target version as its argument (v1.37.2: "missing one or more required
    arguments. Required arguments: [version]"); preflight also ``--yes`` (it asks otherwise)."""
    from kubeadm.preflight import ignore_flag
    from kubeadm.versions import parse_version, with_v

    found = _resolve(UPGRADE_PHASES, phase, "upgrade apply")
    parse_version(version, field="target version", check_supported=False)
    argv = [kubeadm, *found.command[1:], with_v(version)]
    if phase == "preflight":
        argv += ["--yes", *ignore_flag(ignore_preflight_errors)]
    return argv


def upgrade_node_phase_command(
    phase: str, *, ignore_preflight_errors: tuple[str, ...] = (), kubeadm: str = "kubeadm"
) -> list[str]:
    """One ``kubeadm upgrade node`` phase on every other node (control planes one at a time, then
    workers), with the new kubeadm. On a worker control-plane and addon print "Skipping phase. Not
    a control plane node." and exit 0."""
    from kubeadm.preflight import ignore_flag

    found = _resolve(UPGRADE_NODE_PHASES, phase, "upgrade node")
    argv = [kubeadm, *found.command[1:]]
    if phase == "preflight":
        argv += ignore_flag(ignore_preflight_errors)
    return argv
