"""The join operations: workers in parallel (a configurable bound), control planes one at a time.

Each machine is one group of phases; kubeadm's phases run as ``kubeadm join phase …`` commands
over SSH with a JoinConfiguration Kubeboard uploads (0600: it holds the token). Every join
uses its own ``BootstrapToken`` row, made for that machine through the tokens service (the
Secret through the API) — never a token Kubeboard does not know.

Control planes get the shared CA material one of two ways (the ``certificate-method`` setting:
the one chosen at the start, and once the operation is resumed the cluster's setting as it is then):

* ``pre-seed`` (Cluster API's way): the CA certificates and keys and the service-account key
  pair are written to /etc/kubernetes/pki over SFTP from Kubeboard's custody; kubeadm's
  download-certs finds no certificate key and skips; nothing secret waits in the cluster;
* ``upload-certs`` (kubeadm's way): right before each machine, Kubeboard makes sure a
  certificate key with enough life left exists (a fresh ``kubeadm-certs`` Secret and key via
  ``tokens.certkeys`` otherwise: its two-hour life is tracked there), and puts the key into
  that machine's JoinConfiguration; kubeadm's download-certs decrypts the Secret.

Control planes join one at a time: etcd membership changes must not overlap.

Settings are read when each attempt of a phase starts (``attempt_settings``), not frozen when the
join is queued: a person who adds a check to a machine's ignore list after a failed preflight and
resumes gets a preflight with that list. Each attempt records them, and a kubeadm phase whose
files on the machine were written with other settings writes them again first.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

import kube
from audit.services import refusals_of
from clusters import identity, inventory
from clusters.models import Cluster
from kubeadm import nodeconfig, workflow
from nodes import readiness
from nodes.connect import phase_connection
from nodes.models import Node
from operations.models import Operation, PhaseRun
from operations.registry import OperationKind, PhaseSpec, PlannedPhase
from operations.runner import PhaseContext, PhaseError
from remote import commands
from workflows import attempts, endpoint, prepare_steps

WORKERS = "join-workers"
CONTROL_PLANE = "join-control-plane"
PRE_SEED = Cluster.ControlPlaneJoinMethod.PRE_SEED
UPLOAD_CERTS = Cluster.ControlPlaneJoinMethod.UPLOAD_CERTS
# A certificate key with less life left is replaced before a control plane uses it.
CERTIFICATE_KEY_MARGIN = timedelta(minutes=30)
# A join token is reused by a retry only while it has this much life left.
TOKEN_MARGIN = timedelta(minutes=30)
TOKEN_DESCRIPTION = "join of {node} (Kubeboard operation #{operation})"
# kubeadm join's phases, in its order; a worker runs only its own (the control-plane ones only
# say they skip there).
WORKER_KUBEADM_PHASES = workflow.skippable_phases("join-worker")
CONTROL_PLANE_KUBEADM_PHASES = workflow.skippable_phases("join-control-plane")


class JoinRefused(Exception):
    """A join cannot start; the message says why and ``hint`` what to do (nothing ran)."""

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


def _control_plane(ctx: PhaseContext) -> bool:
    return ctx.operation.kind == CONTROL_PLANE


def api_server_endpoint(cluster: Cluster) -> str:
    """host:port of the API server, as JoinConfiguration's discovery wants it."""
    from tokens.services import join_endpoint

    return join_endpoint(cluster).removeprefix("https://")


# --- the join token and the certificate key ---------------------------------------------------------


def _token_for(ctx: PhaseContext):
    from tokens.models import BootstrapToken

    description = TOKEN_DESCRIPTION.format(node=ctx.node.name, operation=ctx.operation.pk)
    return (
        BootstrapToken.objects.filter(
            cluster=ctx.cluster,
            node=ctx.node,
            description=description,
            status=BootstrapToken.Status.ACTIVE,
            expires_at__gt=timezone.now() + TOKEN_MARGIN,
        )
        .order_by("-created_at")
        .first()
    )


def join_token(ctx: PhaseContext) -> None:
    from tokens.models import BootstrapToken
    from tokens.services import create_token

    existing = _token_for(ctx)
    if existing is not None:
        ctx.log(f"Using join token {existing.token_id} made for {ctx.node.name} by an earlier attempt.")
        return
    try:
        token, _ = create_token(
            ctx.cluster,
            user=ctx.operation.requested_by,
            description=TOKEN_DESCRIPTION.format(node=ctx.node.name, operation=ctx.operation.pk),
            node=ctx.node,
            purpose=BootstrapToken.Purpose.JOIN,
        )
    except kube.KubeAPIError as exc:
        raise PhaseError(str(exc), hint=exc.hint or "retry the operation") from None
    except Exception as exc:  # the tokens service's TokenError: its message says what is wrong
        raise PhaseError(f"could not create a join token: {exc}", hint="check the cluster's token policy") from None
    ctx.log(
        f"Created join token {token.token_id} for {ctx.node.name} (Secret {token.secret_name} through the API), "
        f"valid until {token.expires_at:%Y-%m-%d %H:%M} UTC."
    )


def certificate_key(ctx: PhaseContext) -> None:
    """A certificate key with at least CERTIFICATE_KEY_MARGIN left, re-uploaded fresh if needed."""
    from tokens import certkeys

    current = certkeys.current_key(ctx.cluster)
    if current is not None and current.expires_at - timezone.now() > CERTIFICATE_KEY_MARGIN:
        ctx.log(
            f"Certificate key #{current.pk} (kubeadm-certs) is valid until {current.expires_at:%H:%M:%S} UTC; using it."
        )
        return
    if current is not None:
        ctx.log(
            f"Certificate key #{current.pk} expires at {current.expires_at:%H:%M:%S} UTC, too soon for a join; "
            "uploading the certificates again with a fresh key."
        )
    with kube.phase_errors("retry the operation"):
        certkeys.issue_certificate_key(
            ctx.cluster, user=ctx.operation.requested_by, operation=ctx.operation, log=ctx.log
        )


def _valid_certificate_key(ctx: PhaseContext):
    from tokens import certkeys

    current = certkeys.current_key(ctx.cluster)
    if current is None or not current.is_valid():
        raise PhaseError(
            "no valid certificate key for the kubeadm-certs Secret",
            hint="resume from this machine's certificate-key phase (it uploads them again)",
        )
    return current


# --- files ----------------------------------------------------------------------------------------------


def join_configuration_text(ctx: PhaseContext, full_token: str, key: str = "") -> str:
    node, cluster = ctx.node, ctx.cluster
    return nodeconfig.join_config_for_node(
        api_server_endpoint=api_server_endpoint(cluster),
        token=full_token,
        ca_cert_hashes=[cluster.ca_pin_hash],
        node_name=node.name,
        ignore_preflight_errors=_ignored(ctx),
        control_plane_address=node.address if _control_plane(ctx) else None,
        certificate_key=key,
    )


IGNORE, METHOD = attempts.IGNORE, attempts.METHOD


def attempt_settings(operation: Operation, phase: PhaseRun) -> dict:
    """The settings an attempt runs with, read now: the cluster's and the machine's ignore lists
    merged, the certificate method (control planes) and the kubeadm phases skipped on the machine."""
    cluster, settings = attempts.machine_settings(operation, phase, CONTROL_PLANE_KUBEADM_PHASES)
    if operation.kind == CONTROL_PLANE:
        # The join's own choice until someone resumes it; from then on the cluster's setting.
        started = operation.params.get("method") or cluster.control_plane_join_method
        settings[METHOD] = cluster.control_plane_join_method if operation.resume_trigger else started
    return settings


def _ignored(ctx: PhaseContext) -> list[str]:
    if IGNORE in ctx.settings:
        return list(ctx.settings[IGNORE])
    return list((ctx.params.get("ignore_preflight_errors") or {}).get(ctx.node.name) or [])


def _method(ctx: PhaseContext) -> str:
    return ctx.settings.get(METHOD) or ctx.params.get("method") or ""


def _secrets(ctx: PhaseContext) -> commands.Secrets:
    secrets = commands.Secrets()
    token = _token_for(ctx)
    if token is not None:
        secrets.add(token.plain_secret(), f"{token.token_id}.{token.plain_secret()}")
    if _control_plane(ctx) and _method(ctx) == UPLOAD_CERTS:
        from tokens import certkeys

        current = certkeys.current_key(ctx.cluster)
        if current is not None and current.key:
            secrets.add(current.plain_key())
    return secrets


def upload_files(ctx: PhaseContext) -> None:
    token = _token_for(ctx)
    if token is None:
        raise PhaseError(f"no valid join token for {ctx.node.name}", hint="resume from this machine's join-token phase")
    key = ""
    if _control_plane(ctx) and _method(ctx) == UPLOAD_CERTS:
        # Planned with pre-seed and resumed after the cluster moved to upload-certs, the operation
        # has no certificate-key phase: make sure of the key here.
        certificate_key(ctx)
        key = _valid_certificate_key(ctx).plain_key()
    text = join_configuration_text(ctx, f"{token.token_id}.{token.plain_secret()}", key)
    files = [commands.RemoteFile(nodeconfig.JOIN_CONFIG_PATH, text.encode(), nodeconfig.CONFIG_MODE)]
    if _control_plane(ctx) and _method(ctx) == PRE_SEED:
        files += identity.authority_files(ctx.cluster, shared=True)
    with phase_connection(ctx) as conn:
        commands.upload(ctx, conn, files)
    if _control_plane(ctx) and _method(ctx) == PRE_SEED:
        ctx.log("The shared certificates came from Kubeboard's custody; kubeadm's download-certs has nothing to do.")


# --- phases ---------------------------------------------------------------------------------------------


def check_machine(ctx: PhaseContext) -> None:
    # What upload-files writes for a control plane (the shared CA material) may be there already,
    # byte for byte, from an earlier join of this machine that failed: it is written again, not
    # mixed in, so it does not make the machine "not empty".
    own = identity.authority_files(ctx.cluster, shared=True) if _control_plane(ctx) else []
    readiness.check_before_kubeadm(ctx, control_plane=_control_plane(ctx), own_files=own)


def kubeadm_phase(name: str):
    def run(ctx: PhaseContext) -> None:
        attempts.refresh_files(ctx, upload_phase=UPLOAD.name, keys=(IGNORE, METHOD), upload=upload_files)
        argv = nodeconfig.join_phase_argv(name, ignore_preflight_errors=_ignored(ctx) if name == "preflight" else ())
        with phase_connection(ctx) as conn:
            commands.run(ctx, conn, argv, secrets=_secrets(ctx), label=f"kubeadm join phase {name}")

    run.__name__ = f"kubeadm_join_{name.replace('-', '_')}"
    return run


def verify_node(ctx: PhaseContext) -> None:
    node = ctx.node
    row = kube.phase_wait_node_ready(ctx)
    ctx.log(f"Node {node.name} is Ready ({', '.join(row['roles']) or 'worker'}, kubelet {row['kubelet_version']}).")
    Node.objects.filter(pk=node.pk).update(status=Node.Status.JOINED)
    if _control_plane(ctx):
        with phase_connection(ctx) as conn:
            machine = inventory.read_machine(conn, node)
        ctx.log(inventory.machine_summary(machine))


def read_back(ctx: PhaseContext) -> None:
    api = inventory.read_api(ctx.cluster)
    if api.error:
        raise PhaseError(api.error, hint="retry the read-back from the cluster page")
    ctx.log(inventory.api_nodes_summary(api))


def _kubeadm(phase: workflow.Phase) -> PhaseSpec:
    # kubeadm's join phases re-run safely after a crash (files rewritten, objects updated);
    # the job lock keeps two attempts from overlapping on the machine.
    return PhaseSpec(phase.name, phase.description, kubeadm_phase(phase.name), True)


CHECK = PhaseSpec(
    "check-machine",
    "Check the machine: host key, empty /etc/kubernetes, a kubeadm that can deploy this version",
    check_machine,
    idempotent=True,
)
TOKEN = PhaseSpec(
    "join-token",
    "Create this machine's own join token (a Secret through the API)",
    join_token,
    idempotent=True,
)
CERTIFICATE_KEY = PhaseSpec(
    "certificate-key",
    "Make sure the kubeadm-certs Secret and its certificate key have enough life left (upload again if not)",
    certificate_key,
    idempotent=True,
)
UPLOAD = PhaseSpec(
    "upload-files",
    "Upload the JoinConfiguration (and, pre-seeding, the shared CA material) over SFTP",
    upload_files,
    idempotent=True,
)
VERIFY = PhaseSpec(
    "verify-node",
    "Wait for the node to be Ready in the API server (control planes: read back certificates and manifests)",
    verify_node,
    idempotent=True,
)
ENDPOINT = PhaseSpec(
    endpoint.JOIN_PHASE,
    "Install the control-plane endpoint on the machine; a control plane joins every proxy's backends (reload)",
    endpoint.join_endpoint,
    idempotent=True,
)
LOCAL_PROXY_KUBELET = PhaseSpec(
    endpoint.JOIN_KUBELET_PHASE,
    "Point the kubelet's kubeconfig at the machine's local proxy and restart it (local-proxy clusters)",
    endpoint.join_kubelet,
    idempotent=True,
)
READ_BACK = PhaseSpec("read-back", "Read the node list back from the API server", read_back, idempotent=True)

WORKER_PHASES = (
    CHECK,
    TOKEN,
    UPLOAD,
    ENDPOINT,
    *(_kubeadm(phase) for phase in workflow.JOIN_WORKER_PHASES),
    LOCAL_PROXY_KUBELET,
    VERIFY,
    READ_BACK,
)
CONTROL_PLANE_PHASES = (
    CHECK,
    TOKEN,
    CERTIFICATE_KEY,
    UPLOAD,
    ENDPOINT,
    *(_kubeadm(phase) for phase in workflow.JOIN_CONTROL_PLANE_PHASES),
    VERIFY,
    READ_BACK,
)


def _plan(kubeadm_phases: tuple[str, ...]):
    def plan(operation: Operation) -> list[PlannedPhase]:
        planned: list[PlannedPhase] = []
        method = operation.params.get("method")
        control_plane = operation.kind == CONTROL_PLANE
        unplanned = endpoint.join_phases_unplanned(operation.cluster, control_plane=control_plane)
        for node_id, name in zip(operation.params["node_ids"], operation.params["nodes"], strict=True):
            names = ["check-machine", "join-token"]
            if control_plane and method == UPLOAD_CERTS:
                names.append("certificate-key")
            names += ["upload-files", ENDPOINT.name, *kubeadm_phases, LOCAL_PROXY_KUBELET.name, "verify-node"]
            names = [phase for phase in names if phase not in unplanned]
            planned += [PlannedPhase(phase, group=name, node_id=node_id) for phase in names]
        planned.append(PlannedPhase("read-back"))
        return planned

    return plan


def on_finished(operation: Operation) -> None:
    """Each machine ends joined (verify-node did that), or failed if one of its phases failed or
    was cut short; a machine whose phases never started goes back to where it was."""
    previous = operation.params.get("previous_status") or {}
    for node_id, name in zip(operation.params["node_ids"], operation.params["nodes"], strict=True):
        phases = list(operation.phases.filter(group=name).values_list("status", flat=True))
        if phases and all(status in PhaseRun.DONE_STATUSES for status in phases):
            Node.objects.filter(pk=node_id).update(status=Node.Status.JOINED)
        elif any(status not in (PhaseRun.Status.PENDING,) for status in phases):
            Node.objects.filter(pk=node_id).update(status=Node.Status.FAILED)
        else:
            Node.objects.filter(pk=node_id).update(status=previous.get(name, Node.Status.NEW))


JOIN_WORKERS = OperationKind(
    name=WORKERS,
    label="Join workers",
    phases=WORKER_PHASES,
    plan=_plan(WORKER_KUBEADM_PHASES),
    # A bound given when it started (manage.py node join --parallel), else the cluster's setting
    # "Worker joins at once" as it is when the block starts.
    max_parallel_groups=lambda operation: int(
        operation.params.get("parallelism") or operation.cluster.join_parallelism or 1
    ),
    on_finished=on_finished,
    skippable=frozenset(WORKER_KUBEADM_PHASES),
    settings=attempt_settings,
)
JOIN_CONTROL_PLANE = OperationKind(
    name=CONTROL_PLANE,
    label="Join control plane",
    phases=CONTROL_PLANE_PHASES,
    plan=_plan(CONTROL_PLANE_KUBEADM_PHASES),
    # etcd membership changes must not overlap: one machine at a time, stop at the first failure.
    max_parallel_groups=1,
    on_finished=on_finished,
    skippable=frozenset(CONTROL_PLANE_KUBEADM_PHASES),
    settings=attempt_settings,
)


# --- starting one ---------------------------------------------------------------------------------------


@refusals_of("operation.queued", JoinRefused)
def start_join(
    cluster: Cluster,
    nodes: list[Node],
    *,
    control_plane: bool = False,
    method: str = "",
    parallelism: int | None = None,
    user=None,
    skip=(),
    skip_reason: str = "",
) -> Operation:
    """Refuse what cannot work before anything runs, then queue one join operation for ``nodes``."""
    from operations.services import start_operation

    with transaction.atomic():
        # Checks and start as one step under the cluster's row lock (two clicks, one join).
        cluster = Cluster.objects.select_for_update().get(pk=cluster.pk)
        nodes = [Node.objects.select_related("cluster").get(pk=node.pk) for node in nodes]
        method = _refuse_join(cluster, nodes, control_plane=control_plane, method=method)
        if parallelism is not None and parallelism < 1:
            raise JoinRefused("parallelism must be at least 1")
        params = {
            "node_ids": [node.pk for node in nodes],
            "nodes": [node.name for node in nodes],
            "previous_status": {node.name: node.status for node in nodes},
            # As they were when it started; each attempt reads them again and records what it
            # used (PhaseAttempt.settings), so a resume after changing them uses the new ones.
            "ignore_preflight_errors": {node.name: readiness.preflight_ignore_list(cluster, node) for node in nodes},
        }
        if control_plane:
            params["method"] = method
        elif parallelism is not None:
            params["parallelism"] = parallelism
        role = Node.Role.CONTROL_PLANE if control_plane else Node.Role.WORKER
        Node.objects.filter(pk__in=[node.pk for node in nodes]).update(role=role, status=Node.Status.JOINING)
        return start_operation(
            cluster,
            CONTROL_PLANE if control_plane else WORKERS,
            user=user,
            params=params,
            skip=skip,
            skip_reason=skip_reason,
        )


def _refuse_join(cluster: Cluster, nodes: list[Node], *, control_plane: bool, method: str) -> str:
    """Raise JoinRefused for what cannot work; returns the control-plane join method to use."""
    if not nodes:
        raise JoinRefused("choose at least one machine to join")
    if cluster.status != Cluster.Status.RUNNING and not cluster.is_adopted:
        raise JoinRefused(
            f"cluster {cluster.name} has no control plane yet ({cluster.get_status_display()})",
            hint="initialize it first",
        )
    if not cluster.ca_pin_hash:
        raise JoinRefused(f"cluster {cluster.name} has no CA pin", hint="prepare its identity or adopt it again")
    method = method or cluster.control_plane_join_method
    if control_plane:
        if method not in (PRE_SEED, UPLOAD_CERTS):
            raise JoinRefused(f"unknown control-plane join method {method!r} (choose pre-seed or upload-certs)")
        if cluster.is_adopted:
            raise JoinRefused(
                f"cluster {cluster.name} was adopted: Kubeboard holds none of its CA keys to share with a new "
                "control plane",
                hint="join control planes with kubeadm's own upload-certs on the cluster",
            )
    names = [node.name for node in nodes]
    if len(set(names)) != len(names):
        raise JoinRefused("a machine was chosen twice")
    busy = {
        name
        for operation in cluster.operations.filter(
            kind__in=(WORKERS, CONTROL_PLANE), status__in=Operation.ACTIVE_STATUSES
        )
        for name in operation.params.get("nodes", [])
    }
    problems: list[readiness.Refusal] = []
    for node in nodes:
        if node.cluster_id != cluster.pk:
            raise JoinRefused(f"machine {node.name} belongs to another cluster")
        if node.status == Node.Status.JOINED:
            problems.append(readiness.Refusal(f"{node.name} has already joined the cluster", "choose another machine"))
        elif node.name in busy or node.status == Node.Status.JOINING:
            problems.append(readiness.Refusal(f"{node.name} is being joined by another operation", "follow that one"))
        problems += readiness.facts_refusals(node, kubernetes_version=cluster.kubernetes_version)
        if control_plane and prepare_steps.prepared_as_worker(node):
            problems.append(
                readiness.Refusal(prepare_steps.prepared_as_worker(node), prepare_steps.prepared_as_worker_hint(node))
            )
    if problems:
        raise JoinRefused("; ".join(p.message for p in problems), hint=problems[0].hint)
    return method
