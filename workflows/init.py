"""The "init" operation: kubeadm init on the first control-plane machine, phase by phase.

Each kubeadm phase runs as its own ``kubeadm init phase …`` command over SSH with the
configuration Kubeboard uploaded (the node's InitConfiguration + the cluster's
ClusterConfiguration) and the CA material Kubeboard holds, so kubeadm reuses our CAs. Between
kubeadm's phases Kubeboard checks what it can natively:

* ``check-machine`` (first): the read-only machine check; refuses a populated /etc/kubernetes,
  a missing kubeadm or one that cannot deploy the cluster's version, an unaccepted host key;
* ``verify-api-server`` (after wait-control-plane): /readyz through a client certificate
  Kubeboard issues from its own CA, the server certificate verified against the cluster CA.
  On a real machine the kubelet only starts the static Pods after kubelet-start, so this is
  the first point where the API server can answer;
* ``verify-cluster-info`` (after bootstrap-token): kube-public/cluster-info carries our CA
  (its pin equals the cluster's) and a ``jws-kubeconfig-<id>`` signature that verifies with
  the join token Kubeboard created;
* ``read-back`` (last): the node Ready in the API server, certificates and manifests.

The join token kubeadm's bootstrap-token phase writes is a Kubeboard ``BootstrapToken``: it
is created through the tokens service and put into the InitConfiguration just before that
phase (an InitConfiguration without tokens would make kubeadm invent one).
"""

from __future__ import annotations

import math
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

import kube
from audit.services import refusals_of
from clusters import apiaccess, identity, inventory, kubeadm_config
from clusters.models import INIT_KIND, Cluster
from core.waiting import WaitCancelled, WaitTimedOut, wait_until
from kubeadm import config as kubeadm_config_api
from kubeadm import discovery, nodeconfig, workflow
from kubeadm import tokens as kubeadm_tokens
from kubeadm.errors import JWSError, KubeadmError, PinError
from nodes import readiness
from nodes.connect import phase_connection
from operations.models import Operation, PhaseRun
from operations.registry import OperationKind, PhaseSpec, PlannedPhase
from operations.runner import OperationCancelled, PhaseContext, PhaseError
from remote import commands
from workflows import attempts, endpoint, network, prepare_steps

KIND = INIT_KIND
CLUSTER_INFO_TIMEOUT = 120
INIT_TOKEN_DESCRIPTION = "kubeadm init join token (Kubeboard operation #{operation})"


class InitRefused(Exception):
    """Initialization cannot start; the message says why and what to do (nothing ran)."""

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


# --- configuration ----------------------------------------------------------------------------


def init_configuration_text(cluster: Cluster, node, *, token=None, ignore_preflight_errors=()) -> str:
    """The node's InitConfiguration and the cluster's ClusterConfiguration (kubeadm.nodeconfig).

    ``token`` (a BootstrapToken row) becomes the only bootstrap token; without one the list is
    left out, which only the bootstrap-token phase reads (and that phase always has the token).
    kubeadm v1.37 refuses ``expires`` in a config file (TTL and Expires are "mutually exclusive"
    once it defaults the TTL), so the token carries the time left as its TTL; the Secret is put
    back to the row's exact expiry right after kubeadm wrote it (``bootstrap_token``).
    """
    tokens = []
    if token is not None:
        left = max(1, math.ceil((token.expires_at - timezone.now()).total_seconds()))
        tokens.append(
            kubeadm_config_api.BootstrapToken(
                token=f"{token.token_id}.{token.plain_secret()}",
                description=token.description,
                ttl=timedelta(seconds=left),
                usages=list(token.usages or []),
                groups=list(token.groups or []),
            )
        )
    return nodeconfig.init_config_for_node(
        kubeadm_config.configuration_for(cluster),
        node_name=node.name,
        advertise_address=node.address,
        bootstrap_tokens=tokens,
        ignore_preflight_errors=ignore_preflight_errors,
    )


def _mark_initializing(ctx: PhaseContext) -> None:
    Cluster.objects.filter(pk=ctx.cluster.pk).exclude(status=Cluster.Status.INITIALIZING).update(
        status=Cluster.Status.INITIALIZING
    )


# --- Kubeboard's own phases ---------------------------------------------------------------------


def check_machine(ctx: PhaseContext) -> None:
    _mark_initializing(ctx)
    # The CA material upload-files writes may be there already, byte for byte, from an earlier
    # init of this machine that failed before kubeadm wrote anything: written again, not mixed in.
    readiness.check_before_kubeadm(ctx, control_plane=True, own_files=identity.authority_files(ctx.cluster))


def upload_files(ctx: PhaseContext) -> None:
    _mark_initializing(ctx)
    text = init_configuration_text(ctx.cluster, ctx.node, ignore_preflight_errors=_ignored(ctx))
    files = [commands.RemoteFile(nodeconfig.INIT_CONFIG_PATH, text.encode(), nodeconfig.CONFIG_MODE)]
    files += identity.authority_files(ctx.cluster)
    with phase_connection(ctx) as conn:
        commands.upload(ctx, conn, files)
    ctx.log("kubeadm will find the cluster's CAs in /etc/kubernetes/pki and reuse them instead of making its own.")


def verify_api_server(ctx: PhaseContext) -> None:
    _mark_initializing(ctx)
    cluster = ctx.cluster
    server = apiaccess.server_url(cluster)
    answer = kube.phase_wait_api_ready(ctx)  # kube.waits.API_READY_TIMEOUT
    with kube.phase_errors():
        version = kube.server_version(cluster)
    ca = cluster.authorities.get(name="ca")
    ctx.log(
        f"{server}/readyz answered {answer!r} to a client certificate Kubeboard issued from its own CA; "
        f"the server's certificate verified against the cluster CA (SHA-256 {ca.fingerprint_sha256}).",
        readyz=answer,
        server=server,
    )
    ctx.log(f"API server version {version}.")
    if version.split("+")[0] != _wanted_version(cluster):
        raise PhaseError(
            f"the API server runs {version}, the cluster is configured for {cluster.kubernetes_version}",
            hint="check which kube-apiserver image/binary the machine runs",
        )


def _wanted_version(cluster: Cluster) -> str:
    version = cluster.kubernetes_version.strip()
    return version if version.startswith("v") else f"v{version}"


def _init_token(ctx: PhaseContext):
    """The join token of this init: reused on a retry while it has an hour left, else created."""
    from tokens.models import BootstrapToken
    from tokens.services import create_token

    description = INIT_TOKEN_DESCRIPTION.format(operation=ctx.operation.pk)
    existing = (
        BootstrapToken.objects.filter(
            cluster=ctx.cluster,
            description=description,
            status=BootstrapToken.Status.ACTIVE,
            expires_at__gt=timezone.now() + timedelta(hours=1),
        )
        .order_by("-created_at")
        .first()
    )
    if existing is not None:
        ctx.log(f"Using join token {existing.token_id} created by an earlier attempt.")
        return existing
    try:
        token, _ = create_token(
            ctx.cluster,
            user=ctx.operation.requested_by,
            description=description,
            purpose=BootstrapToken.Purpose.JOIN,
        )
    except kube.KubeAPIError as exc:
        raise PhaseError(str(exc), hint=exc.hint or "retry the operation") from None
    except Exception as exc:  # tokens.policies.TokenError and friends: a clear message already
        raise PhaseError(f"could not create the join token: {exc}", hint="check the cluster's token policy") from None
    ctx.log(
        f"Created join token {token.token_id} (Secret {token.secret_name} through the API), valid until "
        f"{token.expires_at:%Y-%m-%d %H:%M} UTC."
    )
    return token


def bootstrap_token(ctx: PhaseContext) -> None:
    """Kubeboard's token goes into the InitConfiguration, then kubeadm's bootstrap-token phase
    (RBAC for joining nodes, cluster-info) re-applies exactly that token."""
    _mark_initializing(ctx)
    token = _init_token(ctx)
    secrets = commands.Secrets()
    secrets.add(token.plain_secret(), f"{token.token_id}.{token.plain_secret()}")
    text = init_configuration_text(ctx.cluster, ctx.node, token=token, ignore_preflight_errors=_ignored(ctx))
    with phase_connection(ctx) as conn:
        commands.upload(
            ctx, conn, [commands.RemoteFile(nodeconfig.INIT_CONFIG_PATH, text.encode(), nodeconfig.CONFIG_MODE)]
        )
        argv = nodeconfig.init_phase_argv("bootstrap-token")
        commands.run(ctx, conn, argv, secrets=secrets, label="kubeadm init phase bootstrap-token")
    _restore_token_secret(ctx, token)


def _restore_token_secret(ctx: PhaseContext, token) -> None:
    """kubeadm rewrote the token's Secret with an expiry from the TTL (a second or so off);
    write it back exactly as Kubeboard recorded it, so cluster and row agree."""
    body = kubeadm_tokens.bootstrap_token_secret(
        f"{token.token_id}.{token.plain_secret()}",
        description=token.description,
        expiration=token.expires_at,
        ttl=None,
        usages=tuple(token.usages or ()),
        groups=tuple(token.groups or ()),
    )
    with kube.phase_errors("retry the operation"):
        kube.put_secret(ctx.cluster, body)
    ctx.log(
        f"Secret {token.secret_name} matches Kubeboard's record again (expires {token.expires_at:%Y-%m-%d %H:%M:%S} UTC)."
    )


def verify_cluster_info(ctx: PhaseContext) -> None:
    from tokens.models import BootstrapToken

    _mark_initializing(ctx)
    cluster = ctx.cluster
    token = (
        BootstrapToken.objects.filter(
            cluster=cluster, description=INIT_TOKEN_DESCRIPTION.format(operation=ctx.operation.pk)
        )
        .order_by("-created_at")
        .first()
    )
    if token is None:
        raise PhaseError("this operation has no join token to verify", hint="resume from the bootstrap-token phase")
    key = f"{kubeadm_tokens.JWS_KEY_PREFIX}{token.token_id}"

    def signed() -> dict | None:
        with kube.phase_errors():
            data = kube.cluster_info(cluster)
        return data if data and "kubeconfig" in data and key in data else None

    try:
        data = wait_until(
            signed,
            timeout=CLUSTER_INFO_TIMEOUT,
            cancel=ctx.cancel_event,
            waiting=lambda: ctx.log(f"Waiting for the bootstrap signer to add {key} to kube-public/cluster-info…"),
        )
    except WaitTimedOut:
        raise PhaseError(
            f"kube-public/cluster-info has no {key} after {CLUSTER_INFO_TIMEOUT}s",
            hint="the controller manager's bootstrap signer may not run; check kube-controller-manager",
        ) from None
    except WaitCancelled:
        raise OperationCancelled("cancelled while waiting for cluster-info") from None
    try:
        # As a joining node checks it (kubeadm.discovery): the signature, then the CA pin.
        discovery.verify_cluster_info(data, f"{token.token_id}.{token.plain_secret()}", [cluster.ca_pin_hash])
    except PinError as exc:
        raise PhaseError(
            str(exc), hint="the API server does not use the CA Kubeboard holds; reset the machine and initialize again"
        ) from None
    except (JWSError, KubeadmError) as exc:
        raise PhaseError(
            str(exc), hint=f"another token with id {token.token_id} may exist in the cluster; delete it and resume"
        ) from None
    ctx.log(f"cluster-info's CA matches the cluster's pin {cluster.ca_pin_hash}.")
    ctx.log(f"{key} verifies with token {token.token_id}: joining nodes can trust this cluster.")


def read_back(ctx: PhaseContext) -> None:
    _mark_initializing(ctx)
    node = ctx.node
    row = kube.phase_wait_node_ready(ctx)
    ctx.log(f"Node {node.name} is Ready ({', '.join(row['roles']) or 'no role'}, kubelet {row['kubelet_version']}).")
    ctx.log(inventory.api_nodes_summary(inventory.read_api(ctx.cluster)))
    with phase_connection(ctx) as conn:
        machine = inventory.read_machine(conn, node)
    differing = [c["name"] for c in machine.certificates if c.get("custody", "").startswith(("DIFFERENT", "NOT"))]
    ctx.log(inventory.machine_summary(machine))
    if differing:
        raise PhaseError(
            f"certificates on {node.name} do not come from Kubeboard's CAs: {', '.join(differing)}",
            hint="the machine was not empty or another tool changed /etc/kubernetes/pki",
        )


# --- kubeadm's phases ---------------------------------------------------------------------------


def attempt_settings(operation: Operation, phase: PhaseRun) -> dict:
    """What an attempt runs with, read now (a resume after changing them uses the new ones): the
    cluster's and the machine's ignore lists merged, the certificate method, the kubeadm phases
    skipped."""
    cluster, settings = attempts.machine_settings(operation, phase, KUBEADM_PHASES)
    settings[attempts.METHOD] = cluster.control_plane_join_method
    return settings


def _ignored(ctx: PhaseContext) -> list[str]:
    if attempts.IGNORE in ctx.settings:
        return list(ctx.settings[attempts.IGNORE])
    return list(ctx.params.get("ignore_preflight_errors") or [])


def kubeadm_phase(name: str):
    def run(ctx: PhaseContext) -> None:
        _mark_initializing(ctx)
        attempts.refresh_files(ctx, upload_phase="upload-files", keys=(attempts.IGNORE,), upload=upload_files)
        argv = nodeconfig.init_phase_argv(name, ignore_preflight_errors=_ignored(ctx) if name == "preflight" else ())
        with phase_connection(ctx) as conn:
            commands.run(ctx, conn, argv, label=f"kubeadm init phase {name}")

    run.__name__ = f"kubeadm_init_{name.replace('-', '_')}"
    return run


def upload_certs(ctx: PhaseContext) -> None:
    """The upload-certs way: Kubeboard writes kubeadm-certs with a fresh key (two hours), owned
    by a token it knows; kubeadm's own --upload-certs would invent that token. Otherwise kubeadm
    runs the phase without the flag and says it skips (the certificates are pre-seeded later)."""
    _mark_initializing(ctx)
    method = ctx.settings.get(attempts.METHOD) or ctx.cluster.control_plane_join_method
    if method != Cluster.ControlPlaneJoinMethod.UPLOAD_CERTS:
        kubeadm_phase("upload-certs")(ctx)
        ctx.log("Control planes of this cluster get the shared certificates pre-seeded from Kubeboard's custody.")
        return
    from tokens import certkeys

    with kube.phase_errors("retry the operation"):
        certkeys.issue_certificate_key(
            ctx.cluster, user=ctx.operation.requested_by, operation=ctx.operation, log=ctx.log
        )


def _kubeadm(name: str) -> PhaseSpec:
    phase = workflow.find_phase(workflow.INIT_PHASES, name)
    description = phase.description if phase is not None else name
    # kubeadm's init phases are re-runnable: files are reused or rewritten, API objects
    # created or updated. The job lock keeps two attempts from overlapping on the machine.
    return PhaseSpec(name, description, kubeadm_phase(name), idempotent=True)


PHASES = (
    PhaseSpec(
        "check-machine",
        "Check the machine: host key, empty /etc/kubernetes, a kubeadm that can deploy this version",
        check_machine,
        idempotent=True,
    ),
    PhaseSpec(
        "upload-files",
        "Upload the kubeadm configuration and the cluster's CA material over SFTP",
        upload_files,
        idempotent=True,
    ),
    _kubeadm("preflight"),
    PhaseSpec(
        endpoint.INIT_PHASE,
        "Install the control-plane endpoint: haproxy (and keepalived for a virtual IP) as system services "
        "(virtual IP and local-proxy clusters)",
        endpoint.init_endpoint,
        idempotent=True,
    ),
    _kubeadm("certs"),
    _kubeadm("kubeconfig"),
    _kubeadm("etcd"),
    _kubeadm("control-plane"),
    _kubeadm("kubelet-start"),
    _kubeadm("wait-control-plane"),
    PhaseSpec(
        "verify-api-server",
        "Ask the API server for /readyz with a client certificate from Kubeboard's CA",
        verify_api_server,
        idempotent=True,
    ),
    _kubeadm("upload-config"),
    PhaseSpec(
        "upload-certs",
        "Store the shared CA keys in the kubeadm-certs Secret with a fresh certificate key (upload-certs clusters)",
        upload_certs,
        idempotent=True,
    ),
    _kubeadm("mark-control-plane"),
    PhaseSpec(
        "bootstrap-token",
        "Create the join token (Kubeboard), then RBAC for joining nodes and the cluster-info ConfigMap (kubeadm)",
        bootstrap_token,
        idempotent=True,
    ),
    PhaseSpec(
        "verify-cluster-info",
        "Check that cluster-info carries our CA and a signature that verifies with our token",
        verify_cluster_info,
        idempotent=True,
    ),
    _kubeadm("kubelet-finalize"),
    _kubeadm("addon"),
    PhaseSpec(
        "pod-network",
        "Apply the chosen pod network add-on (server-side apply) and wait for it on every node",
        network.init_phase,
        idempotent=True,
    ),
    PhaseSpec(
        endpoint.INIT_KUBE_PROXY_PHASE,
        "Point kube-proxy's kubeconfig at the local proxy on every node (local-proxy clusters)",
        endpoint.init_kube_proxy,
        idempotent=True,
    ),
    PhaseSpec(
        "read-back",
        "Wait for the node to be Ready, then read back nodes, certificates and manifests",
        read_back,
        idempotent=True,
    ),
)


def plan(operation: Operation) -> list[PlannedPhase]:
    node_id = operation.params["node_id"]
    unplanned = endpoint.init_phases_unplanned(operation.cluster)
    return [PlannedPhase(spec.name, node_id=node_id) for spec in PHASES if spec.name not in unplanned]


def on_finished(operation: Operation) -> None:
    from nodes.models import Node

    succeeded = operation.status == Operation.Status.SUCCEEDED
    Cluster.objects.filter(pk=operation.cluster_id).update(
        status=Cluster.Status.RUNNING if succeeded else Cluster.Status.INIT_STOPPED
    )
    Node.objects.filter(pk=operation.params.get("node_id")).update(
        status=Node.Status.JOINED if succeeded else Node.Status.FAILED
    )


# kubeadm's own init phases among the operation's (the ones a person may skip).
KUBEADM_PHASES = tuple(name for name in workflow.skippable_phases("init") if any(s.name == name for s in PHASES))

INIT = OperationKind(
    name=KIND,
    label="Initialize control plane",
    phases=PHASES,
    plan=plan,
    on_finished=on_finished,
    skippable=frozenset(KUBEADM_PHASES),
    settings=attempt_settings,
)


# --- starting it ----------------------------------------------------------------------------------


@refusals_of("operation.queued", InitRefused, details={"kind": KIND})
def start_init(cluster: Cluster, node, *, user=None, skip=(), skip_reason: str = "") -> Operation:
    """Check what can be checked before anything runs, then queue the init operation.

    Refused (``InitRefused``, nothing recorded): an adopted cluster or one without identity, a
    cluster already initialized or initializing, a machine of another cluster, a machine whose
    host key is not pinned, or whose last check found a populated /etc/kubernetes or a kubeadm
    that cannot deploy the cluster's version.
    """
    from nodes.models import Node
    from operations.services import start_operation

    with transaction.atomic():
        # The cluster row lock makes the checks and the start one step: two clicks start one init.
        cluster = Cluster.objects.select_for_update().get(pk=cluster.pk)
        node = Node.objects.select_related("cluster").get(pk=node.pk)
        _refuse_init(cluster, node)
        ignored = readiness.preflight_ignore_list(cluster, node)
        Node.objects.filter(pk=node.pk).update(role=Node.Role.CONTROL_PLANE, status=Node.Status.JOINING)
        Cluster.objects.filter(pk=cluster.pk).update(status=Cluster.Status.INITIALIZING)
        # The ignore list is recorded with the run (its params), as it was when it started.
        return start_operation(
            cluster,
            KIND,
            user=user,
            params={"node_id": node.pk, "node": node.name, "ignore_preflight_errors": ignored},
            skip=skip,
            skip_reason=skip_reason,
        )


def _refuse_init(cluster: Cluster, node) -> None:
    if cluster.is_adopted:
        raise InitRefused(f"cluster {cluster.name} was adopted: it already runs", hint="join nodes to it instead")
    if not cluster.ca_pin_hash or not cluster.authorities.filter(name="ca").exists():
        raise InitRefused(
            f"cluster {cluster.name} has no identity yet (certificate authorities)",
            hint="wait for the prepare-identity operation to succeed",
        )
    if cluster.status == Cluster.Status.RUNNING:
        raise InitRefused(f"cluster {cluster.name} is already initialized", hint="join more nodes instead")
    if node.cluster_id != cluster.pk:
        raise InitRefused(f"machine {node.name} belongs to another cluster")
    active = cluster.operations.filter(kind=KIND, status__in=Operation.ACTIVE_STATUSES).first()
    if active is not None:
        raise InitRefused(f"operation #{active.pk} is already initializing {cluster.name}", hint="follow it instead")
    stopped = cluster.operations.filter(kind=KIND, status__in=Operation.RESUMABLE_STATUSES).first()
    if stopped is not None and stopped.params.get("node_id") == node.pk:
        raise InitRefused(
            f"operation #{stopped.pk} already initialized {node.name} part of the way and stopped",
            hint="resume it from the operation page, or reset the machine before starting over",
        )
    problems = readiness.facts_refusals(node, kubernetes_version=cluster.kubernetes_version)
    if prepare_steps.prepared_as_worker(node):
        problems.append(
            readiness.Refusal(prepare_steps.prepared_as_worker(node), prepare_steps.prepared_as_worker_hint(node))
        )
    if problems:
        raise InitRefused("; ".join(p.message for p in problems), hint=problems[0].hint)
