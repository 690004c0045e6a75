"""etcd backup and restore.

Snapshot (operation ``etcd-snapshot``, and the first phase of an upgrade): on a control-plane
machine ``etcdctl snapshot save`` writes the snapshot into kubeadm's scratch directory,
``etcdutl snapshot status`` reads its revision and hash, and the file comes back over the SSH
session as base64 lines (bounded memory, no size cap) into ``SnapshotChunk`` rows, each
encrypted like every secret; the SHA-256 of the whole file is kept beside them. The file on
the machine is removed afterwards.

Restore (operation ``etcd-restore``, a single control plane only): the snapshot is checked
against its checksum before anything changes, a snapshot of the current state is taken first
(so the restore can itself be undone), the file is uploaded and checked again on the machine,
the static Pods are stopped by moving their manifests out (as operators do), ``etcdutl
snapshot restore`` builds a new data directory that replaces the member's, the manifests go
back, and Kubeboard waits for the API server. Several etcd members would each need the same
restore with a new cluster token at once; Kubeboard refuses that instead of half-doing it.
"""

from __future__ import annotations

import base64
import hashlib
import shlex
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

import kube
from audit.services import record, refusals_of
from clusters import preconditions
from core.formatting import duration_words
from core.waiting import WaitCancelled, WaitTimedOut, wait_until
from kubeadm import components
from nodes import readiness
from nodes.checks import listening_ports
from nodes.connect import phase_connection
from nodes.models import Node
from operations.models import Operation
from operations.registry import OperationKind, PhaseSpec, PlannedPhase
from operations.runner import OperationCancelled, PhaseContext, PhaseError
from remote import commands
from workflows import etcd
from workflows.models import DayTwoSettings, EtcdSnapshot, SnapshotChunk

CHUNK_BYTES = 1 << 20
# Characters per base64 line: a multiple of 4 (every line decodes alone) and well under the
# SSH transport's line cap.
B64_LINE = 12288
SNAPSHOT_TIMEOUT = 30 * 60
STOP_TIMEOUT = 120
START_TIMEOUT = 300

SNAPSHOT_KIND = "etcd-snapshot"
RESTORE_KIND = "etcd-restore"


class BackupRefused(Exception):
    """Nothing ran: the message says why and ``hint`` what to do instead."""

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


class SnapshotDamaged(Exception):
    """The stored snapshot does not match its checksum (or cannot be decrypted)."""


def settings_for(cluster) -> DayTwoSettings:
    found, _ = DayTwoSettings.objects.get_or_create(cluster=cluster)
    return found


def first_control_plane(cluster) -> Node | None:
    return (
        cluster.nodes.filter(role=Node.Role.CONTROL_PLANE, status=Node.Status.JOINED)
        .order_by("created_at", "pk")
        .first()
    )


def joined_control_planes(cluster) -> list[Node]:
    return list(
        cluster.nodes.filter(role=Node.Role.CONTROL_PLANE, status=Node.Status.JOINED).order_by("created_at", "pk")
    )


# --- storing and reading back ---------------------------------------------------------------------


class _ChunkWriter:
    """Decodes base64 lines as they arrive; stores CHUNK_BYTES at a time, hashing everything."""

    def __init__(self, snapshot: EtcdSnapshot) -> None:
        self.snapshot = snapshot
        self.digest = hashlib.sha256()
        self.buffer = bytearray()
        self.size = 0
        self.count = 0

    def line(self, text: str) -> None:
        text = text.strip()
        if not text:
            return
        try:
            data = base64.b64decode(text, validate=True)
        except ValueError as exc:
            raise PhaseError(
                f"the snapshot arrived damaged (a line of the transfer is not base64: {exc})",
                hint="retry the snapshot; if it happens again, check the machine's `base64` (coreutils)",
            ) from None
        self.digest.update(data)
        self.size += len(data)
        self.buffer += data
        while len(self.buffer) >= CHUNK_BYTES:
            self._store(bytes(self.buffer[:CHUNK_BYTES]))
            del self.buffer[:CHUNK_BYTES]

    def close(self) -> None:
        if self.buffer:
            self._store(bytes(self.buffer))
            self.buffer.clear()

    def _store(self, data: bytes) -> None:
        SnapshotChunk.objects.create(snapshot=self.snapshot, index=self.count, data=base64.b64encode(data).decode())
        self.count += 1


def iter_chunks(snapshot: EtcdSnapshot) -> Iterator[bytes]:
    ids = list(snapshot.chunks.order_by("index").values_list("pk", flat=True))
    if len(ids) != snapshot.chunk_count:
        raise SnapshotDamaged(f"snapshot #{snapshot.pk} has {len(ids)} of its {snapshot.chunk_count} pieces")
    for pk in ids:
        chunk = SnapshotChunk.objects.get(pk=pk)
        try:
            yield base64.b64decode(chunk.data.reveal())
        except Exception as exc:  # a key that no longer decrypts, or text that is not base64
            raise SnapshotDamaged(f"snapshot #{snapshot.pk}, piece {chunk.index}: {exc}") from None


def verify(snapshot: EtcdSnapshot) -> None:
    """Raise SnapshotDamaged unless the stored pieces add up to the recorded size and SHA-256."""
    if snapshot.status != EtcdSnapshot.Status.AVAILABLE:
        raise SnapshotDamaged(f"snapshot #{snapshot.pk} is {snapshot.get_status_display().lower()}, not available")
    digest = hashlib.sha256()
    size = 0
    for data in iter_chunks(snapshot):
        digest.update(data)
        size += len(data)
    if size != snapshot.size_bytes or digest.hexdigest() != snapshot.sha256:
        raise SnapshotDamaged(
            f"snapshot #{snapshot.pk} fails its checksum: recorded {snapshot.size_bytes} bytes with SHA-256 "
            f"{snapshot.sha256}, stored pieces give {size} bytes with SHA-256 {digest.hexdigest()}"
        )


def snapshot_bytes(snapshot: EtcdSnapshot) -> bytes:
    verify(snapshot)
    return b"".join(iter_chunks(snapshot))


def verified_stream(snapshot: EtcdSnapshot) -> Iterator[bytes]:
    """The file for a download: checked whole first (nothing is sent if it is damaged), then
    streamed piece by piece."""
    verify(snapshot)
    return iter_chunks(snapshot)


async def averified_stream(snapshot: EtcdSnapshot) -> AsyncIterator[bytes]:
    """``verified_stream`` for an ASGI server (daphne): one piece in memory at a time, the
    database read in a thread. Call ``verify`` before."""
    from asgiref.sync import sync_to_async

    pieces = iter_chunks(snapshot)
    sentinel = object()
    while True:
        piece = await sync_to_async(next)(pieces, sentinel)
        if piece is sentinel:
            return
        yield piece


# --- taking one -----------------------------------------------------------------------------------


def _remote_snapshot_path(ctx: PhaseContext) -> str:
    return f"{etcd.SCRATCH}/kubeboard-etcd-snapshot-op{ctx.operation.pk}-phase{ctx.phase.pk}.db"


def take_snapshot(ctx: PhaseContext, *, reason: str) -> EtcdSnapshot:
    """Save, check and copy back a snapshot of the etcd member on ``ctx.node``."""
    node = ctx.node
    if node is None:
        raise PhaseError("no control-plane machine to take the snapshot on", hint="start a new operation")
    cluster = ctx.cluster
    tools = settings_for(cluster)
    path = _remote_snapshot_path(ctx)
    # A retry replaces what an interrupted attempt of this phase left.
    EtcdSnapshot.objects.filter(operation=ctx.operation, node=node, status=EtcdSnapshot.Status.CREATING).delete()
    snapshot = EtcdSnapshot.objects.create(
        cluster=cluster,
        node=node,
        node_name=node.name,
        operation=ctx.operation,
        created_by=ctx.operation.requested_by,
        reason=reason,
        kubernetes_version=cluster.kubernetes_version,
    )
    started = time.monotonic()
    try:
        with phase_connection(ctx) as conn:
            # One command: save, read the status, and the file's size (the database plus the
            # SHA-256 etcd appends, so 32 bytes more than totalSize).
            script = " && ".join(
                shlex.join(argv)
                for argv in (
                    ["mkdir", "-p", "-m", "0700", etcd.SCRATCH],
                    etcd.snapshot_save(tools.etcdctl, path),
                    etcd.snapshot_status(tools.etcdutl, path),
                    ["stat", "-c", "%s", path],
                )
            )
            _, lines = commands.run(ctx, conn, script, label="etcdctl snapshot save", timeout=SNAPSHOT_TIMEOUT)
            saved = time.monotonic() - started
            try:
                status = etcd.parse_snapshot_status(lines)
                file_size = int(lines[-1].strip())
            except ValueError as exc:
                raise PhaseError(f"{exc}: {' '.join(lines)[-300:]}", hint="check etcdutl on the machine") from None
            ctx.log(
                f"etcdutl snapshot status: revision {status.revision}, {status.total_keys} keys, "
                f"{status.total_size} bytes, hash {status.hash:x}, storage version {status.version}.",
                revision=status.revision,
                keys=status.total_keys,
            )
            writer = _ChunkWriter(snapshot)
            # The copy, then the file goes (rm prints nothing into the base64 stream).
            copy = f"{shlex.join(['base64', '-w', str(B64_LINE), path])} && {shlex.join(['rm', '-f', path])}"
            commands.run(
                ctx, conn, copy, label="copy the snapshot back", show=False, on_line=writer.line,
                timeout=SNAPSHOT_TIMEOUT,
            )  # fmt: skip
            writer.close()
    except BaseException as exc:
        snapshot.chunks.all().delete()
        EtcdSnapshot.objects.filter(pk=snapshot.pk).update(status=EtcdSnapshot.Status.FAILED, error=str(exc)[:2000])
        raise
    if writer.size != file_size:
        snapshot.chunks.all().delete()
        EtcdSnapshot.objects.filter(pk=snapshot.pk).update(status=EtcdSnapshot.Status.FAILED, error="size mismatch")
        raise PhaseError(
            f"copied {writer.size} bytes back, the file on {node.name} has {file_size}",
            hint="retry the snapshot; the transfer was cut short",
        )
    with transaction.atomic():
        EtcdSnapshot.objects.filter(pk=snapshot.pk).update(
            status=EtcdSnapshot.Status.AVAILABLE,
            size_bytes=writer.size,
            sha256=writer.digest.hexdigest(),
            chunk_count=writer.count,
            revision=status.revision,
            total_keys=status.total_keys,
            etcd_hash=status.hash,
            etcd_version=status.version,
        )
        snapshot.refresh_from_db()
        record(
            "etcd_snapshot.created",
            actor=ctx.operation.requested_by,
            obj=snapshot,
            cluster=cluster,
            details={
                "node": node.name,
                "reason": reason,
                "size": writer.size,
                "sha256": snapshot.sha256,
                "revision": status.revision,
                "operation": ctx.operation.pk,
            },
        )
    ctx.log(
        f"Stored etcd snapshot #{snapshot.pk}: {writer.size} bytes in {writer.count} encrypted piece(s), "
        f"SHA-256 {snapshot.sha256}, revision {status.revision} (etcdctl took {saved:.2f} s).",
        snapshot=snapshot.pk,
        sha256=snapshot.sha256,
        saved_seconds=round(saved, 3),
    )
    return snapshot


def _snapshot_phase(ctx: PhaseContext) -> None:
    take_snapshot(ctx, reason=ctx.params.get("reason") or EtcdSnapshot.Reason.MANUAL)


def _snapshot_plan(operation: Operation) -> list[PlannedPhase]:
    return [PlannedPhase("snapshot", node_id=operation.params["node_id"])]


def _after_snapshot(operation: Operation) -> None:
    schedule_id = operation.params.get("schedule")
    if operation.status == Operation.Status.SUCCEEDED and schedule_id:
        apply_retention(operation.cluster)


SNAPSHOT = OperationKind(
    name=SNAPSHOT_KIND,
    label="etcd snapshot",
    phases=(
        PhaseSpec(
            "snapshot",
            "etcdctl snapshot save on a control plane, checked with etcdutl, copied back and stored encrypted",
            _snapshot_phase,
            idempotent=True,
        ),
    ),
    plan=_snapshot_plan,
    # Reading etcd changes nothing: a snapshot may be taken while another operation runs.
    mutating=False,
    on_finished=_after_snapshot,
)


@refusals_of("operation.queued", BackupRefused, details={"kind": SNAPSHOT_KIND})
def start_snapshot(cluster, *, user=None, node: Node | None = None, reason: str = EtcdSnapshot.Reason.MANUAL):
    from operations.services import start_operation

    ready = preconditions.check(cluster, "snapshot")
    if not ready:
        raise BackupRefused(ready.reason, hint=ready.hint)
    node = node or first_control_plane(cluster)
    if node is None:
        raise BackupRefused(
            f"cluster {cluster.name} has no joined control-plane machine to take an etcd snapshot on",
            hint="initialize the cluster (or add its control planes as machines) first",
        )
    if node.cluster_id != cluster.pk or node.role != Node.Role.CONTROL_PLANE:
        raise BackupRefused(f"{node.name} is not a control plane of {cluster.name}")
    problems = readiness.facts_refusals(node, kubernetes_version=cluster.kubernetes_version)
    problems = [p for p in problems if "host key" in p.message]
    if problems:
        raise BackupRefused(problems[0].message, hint=problems[0].hint)
    params = {"node_id": node.pk, "node": node.name, "reason": reason}
    if reason == EtcdSnapshot.Reason.SCHEDULED:
        params["schedule"] = cluster.backup_schedule.pk
    return start_operation(cluster, SNAPSHOT_KIND, user=user, params=params)


def apply_retention(cluster) -> list[int]:
    """Delete the oldest scheduled snapshots beyond the schedule's ``keep``; returns their ids.
    Snapshots taken by hand or before an upgrade or restore are kept until a person deletes them."""
    schedule = getattr(cluster, "backup_schedule", None)
    if schedule is None:
        return []
    scheduled = EtcdSnapshot.objects.filter(
        cluster=cluster, reason=EtcdSnapshot.Reason.SCHEDULED, status=EtcdSnapshot.Status.AVAILABLE
    ).order_by("-created_at", "-pk")
    doomed = list(scheduled[schedule.keep :])
    removed = []
    for snapshot in doomed:
        with transaction.atomic():
            record(
                "etcd_snapshot.expired",
                obj=snapshot,
                cluster=cluster,
                details={"snapshot": snapshot.pk, "keep": schedule.keep, "created": snapshot.created_at.isoformat()},
            )
            removed.append(snapshot.pk)
            snapshot.delete()
    return removed


def delete_snapshot(snapshot: EtcdSnapshot, *, user) -> None:
    with transaction.atomic():
        record(
            "etcd_snapshot.deleted",
            actor=user,
            obj=snapshot,
            cluster=snapshot.cluster,
            details={"snapshot": snapshot.pk, "sha256": snapshot.sha256, "reason": snapshot.reason},
        )
        snapshot.delete()


@refusals_of("etcd_snapshot.downloaded", failed=(SnapshotDamaged,))
def record_download(snapshot: EtcdSnapshot, *, user) -> None:
    """Check the stored pieces against the checksum, then record the download. A damaged
    snapshot is not sent: its download is recorded as failed, and SnapshotDamaged raised."""
    verify(snapshot)
    record(
        "etcd_snapshot.downloaded",
        actor=user,
        obj=snapshot,
        cluster=snapshot.cluster,
        details={"snapshot": snapshot.pk, "sha256": snapshot.sha256, "size": snapshot.size_bytes},
    )


# --- restore ----------------------------------------------------------------------------------------


def _restore_dir(ctx: PhaseContext) -> str:
    return f"{etcd.SCRATCH}/kubeboard-restore-op{ctx.operation.pk}"


def _snapshot_of(ctx: PhaseContext) -> EtcdSnapshot:
    snapshot = EtcdSnapshot.objects.filter(pk=ctx.params["snapshot_id"], cluster=ctx.cluster).first()
    if snapshot is None:
        raise PhaseError(f"snapshot #{ctx.params['snapshot_id']} no longer exists", hint="choose another snapshot")
    return snapshot


def member_list(ctx: PhaseContext, conn, tools: DayTwoSettings) -> list[etcd.Member]:
    _, lines = commands.run(
        ctx, conn, etcd.etcdctl(tools.etcdctl, "member", "list", "-w", "json"), label="etcdctl member list", show=False
    )
    try:
        return etcd.parse_member_list(lines)
    except ValueError as exc:
        raise PhaseError(f"{exc}: {' '.join(lines)[-300:]}", hint="check etcd on the control plane") from None


def _restore_check(ctx: PhaseContext) -> None:
    snapshot = _snapshot_of(ctx)
    try:
        verify(snapshot)
    except SnapshotDamaged as exc:
        raise PhaseError(str(exc), hint="choose another snapshot; nothing was changed") from None
    ctx.log(f"Snapshot #{snapshot.pk} matches its checksum (SHA-256 {snapshot.sha256}, revision {snapshot.revision}).")
    tools = settings_for(ctx.cluster)
    with phase_connection(ctx) as conn:
        members = member_list(ctx, conn, tools)
        manifest = conn.read_file(etcd.MANIFEST).decode()
    if len(members) != 1:
        names = ", ".join(m.name for m in members)
        raise PhaseError(
            f"etcd has {len(members)} members ({names}); Kubeboard restores a single-member etcd only",
            hint="reset the other control planes first (their members are removed), restore, then join them again",
        )
    local = etcd.local_member(manifest)
    if members[0].name != local.name:
        raise PhaseError(f"the etcd member is {members[0].name}, the manifest on {ctx.node.name} says {local.name}")
    ctx.log(f"etcd has one member, {local.name} ({local.peer_url}), data in {local.data_dir}: it can be restored.")


def _restore_safety_snapshot(ctx: PhaseContext) -> None:
    current = take_snapshot(ctx, reason=EtcdSnapshot.Reason.PRE_RESTORE)
    ctx.log(f"Restoring snapshot #{current.pk} undoes this restore.")


def _restore_upload(ctx: PhaseContext) -> None:
    snapshot = _snapshot_of(ctx)
    try:
        data = snapshot_bytes(snapshot)
    except SnapshotDamaged as exc:
        raise PhaseError(str(exc), hint="choose another snapshot") from None
    tools = settings_for(ctx.cluster)
    path = f"{_restore_dir(ctx)}/snapshot.db"
    with phase_connection(ctx) as conn:
        commands.upload(ctx, conn, [commands.RemoteFile(path, data, 0o600)])
        _, lines = commands.run(ctx, conn, ["sha256sum", path], label="sha256sum", show=False)
        remote_sum = (lines[-1].split() or [""])[0] if lines else ""
        if remote_sum != snapshot.sha256:
            raise PhaseError(
                f"the snapshot on {ctx.node.name} has SHA-256 {remote_sum or 'unknown'}, expected {snapshot.sha256}",
                hint="the upload was damaged; resume to upload it again",
            )
        _, lines = commands.run(ctx, conn, etcd.snapshot_status(tools.etcdutl, path), show=False)
    status = etcd.parse_snapshot_status(lines)
    ctx.log(
        f"Uploaded snapshot #{snapshot.pk} to {path}: SHA-256 matches, etcdutl reads revision {status.revision} "
        f"with {status.total_keys} keys."
    )


def wait_ports(
    ctx: PhaseContext, conn, *, closed: set[int] = frozenset(), opened: set[int] = frozenset(), timeout: float
) -> None:
    """Wait until every port of ``closed`` is closed and every one of ``opened`` listens."""
    still_open: list[int] = []
    not_yet: list[int] = []

    def settled() -> bool | None:
        nonlocal still_open, not_yet
        _, lines = commands.quiet(conn, "cat /proc/net/tcp /proc/net/tcp6 2>/dev/null")
        listening = listening_ports(lines)
        still_open = sorted(closed & listening)
        not_yet = sorted(opened - listening)
        return True if not still_open and not not_yet else None

    try:
        wait_until(settled, timeout=timeout, interval=1.0, cancel=ctx.cancel_event)
    except WaitCancelled:
        raise OperationCancelled("cancelled while waiting for the static Pods") from None
    except WaitTimedOut:
        what = []
        if still_open:
            what.append(f"still listening on {', '.join(map(str, still_open))}")
        if not_yet:
            what.append(f"not listening on {', '.join(map(str, not_yet))}")
        raise PhaseError(
            f"{ctx.node.name}: after {duration_words(timeout)}, {' and '.join(what)}",
            hint="the kubelet may not have picked up the manifest change; check it on the machine, then resume",
        ) from None


def _stop_control_plane(ctx: PhaseContext) -> None:
    held = f"{_restore_dir(ctx)}/manifests"
    script = (
        f"mkdir -p {held} && for f in {components.MANIFESTS_DIR}/*.yaml; do "
        f'[ -e "$f" ] || continue; mv "$f" {held}/; echo "moved $f out"; done; ls {held}'
    )
    with phase_connection(ctx) as conn:
        commands.run(ctx, conn, script, label="move the static Pod manifests out")
        ctx.log("Waiting for the kubelet to stop etcd, the API server, the controller manager and the scheduler…")
        wait_ports(ctx, conn, closed=set(components.CONTROL_PLANE_PORTS), timeout=STOP_TIMEOUT)
    ctx.log("The control plane of this machine is stopped; etcd's data directory is no longer in use.")


def _restore_data(ctx: PhaseContext) -> None:
    tools = settings_for(ctx.cluster)
    work = _restore_dir(ctx)
    with phase_connection(ctx) as conn:
        manifest = conn.read_file(f"{work}/manifests/{components.manifest_name(components.ETCD)}").decode()
        local = etcd.local_member(manifest)
        fresh = f"{local.data_dir}/kubeboard-restore-op{ctx.operation.pk}"
        previous = f"{local.data_dir}/kubeboard-previous-op{ctx.operation.pk}"
        # A retry after the swap finds the previous data moved aside and does nothing.
        done, _ = commands.run(ctx, conn, f"test -d {previous}/member && test -d {local.data_dir}/member", check=False)
        if done == 0:
            ctx.log(f"The data directory was already replaced by an earlier attempt ({previous} holds the old one).")
            return
        commands.run(ctx, conn, ["rm", "-rf", fresh], label="rm")
        commands.run(
            ctx, conn, etcd.snapshot_restore(tools.etcdutl, f"{work}/snapshot.db", local, fresh),
            label="etcdutl snapshot restore", timeout=SNAPSHOT_TIMEOUT,
        )  # fmt: skip
        swap = (
            f"set -e; mkdir -p {previous}; mv {local.data_dir}/member {previous}/member; "
            f"mv {fresh}/member {local.data_dir}/member; rmdir {fresh}; ls -l {local.data_dir}"
        )
        commands.run(ctx, conn, swap, label="swap the etcd data directory")
    ctx.log(f"{local.data_dir}/member now holds the restored data; the previous data waits in {previous}.")


def _start_control_plane(ctx: PhaseContext) -> None:
    held = f"{_restore_dir(ctx)}/manifests"
    script = f'for f in {held}/*.yaml; do [ -e "$f" ] || continue; mv "$f" {components.MANIFESTS_DIR}/; echo "moved $f back"; done'
    with phase_connection(ctx) as conn:
        commands.run(ctx, conn, script, label="move the static Pod manifests back")
        wait_ports(ctx, conn, opened={components.ETCD_CLIENT_PORT, components.API_SERVER_PORT}, timeout=START_TIMEOUT)
    wait_api_ready(ctx, timeout=START_TIMEOUT)


def wait_api_ready(ctx: PhaseContext, *, timeout: float) -> None:
    """After a restart of the control plane: any API error is waited out until ``timeout``."""
    answer = kube.phase_wait_api_ready(
        ctx,
        timeout=timeout,
        retry=(kube.KubeAPIError,),
        hint="check the control plane, then resume",
        log_retries=False,
    )
    ctx.log(f"The API server answers /readyz: {answer}.")


def _restore_cleanup(ctx: PhaseContext) -> None:
    snapshot = _snapshot_of(ctx)
    work = _restore_dir(ctx)
    with phase_connection(ctx) as conn:
        manifest = conn.read_file(etcd.MANIFEST).decode()
        local = etcd.local_member(manifest)
        commands.run(
            ctx, conn, ["rm", "-rf", work, f"{local.data_dir}/kubeboard-previous-op{ctx.operation.pk}"], label="rm"
        )
    record(
        "etcd_snapshot.restored",
        actor=ctx.operation.requested_by,
        obj=snapshot,
        cluster=ctx.cluster,
        details={"snapshot": snapshot.pk, "node": ctx.node.name, "revision": snapshot.revision},
    )
    ctx.log(f"Restored snapshot #{snapshot.pk} (revision {snapshot.revision}); removed the upload and the old data.")


RESTORE_PHASES = (
    PhaseSpec(
        "check",
        "Check the snapshot against its checksum and that etcd has exactly one member",
        _restore_check,
        idempotent=True,
    ),
    PhaseSpec(
        "safety-snapshot",
        "Snapshot the current state first, so the restore can be undone",
        _restore_safety_snapshot,
        True,
    ),
    PhaseSpec("upload", "Upload the snapshot and check it again on the machine", _restore_upload, idempotent=True),
    PhaseSpec(
        "stop-control-plane",
        f"Move the static Pod manifests out of {components.MANIFESTS_DIR} and wait for the Pods to stop",
        _stop_control_plane,
        idempotent=True,
    ),
    PhaseSpec(
        "restore-data",
        "etcdutl snapshot restore into a new data directory that replaces the member's",
        _restore_data,
        idempotent=True,
    ),
    PhaseSpec(
        "start-control-plane",
        "Move the manifests back and wait for etcd and the API server",
        _start_control_plane,
        idempotent=True,
    ),
    PhaseSpec("cleanup", "Remove the uploaded snapshot and the replaced data", _restore_cleanup, idempotent=True),
)


def _restore_plan(operation: Operation) -> list[PlannedPhase]:
    return [PlannedPhase(spec.name, node_id=operation.params["node_id"]) for spec in RESTORE_PHASES]


RESTORE = OperationKind(name=RESTORE_KIND, label="etcd restore", phases=RESTORE_PHASES, plan=_restore_plan)


@refusals_of("operation.queued", BackupRefused, details={"kind": RESTORE_KIND})
def start_restore(cluster, snapshot: EtcdSnapshot, *, user=None, confirm: str = "") -> Operation:
    """Refuse what cannot work (before anything changes), then queue the restore."""
    from operations.services import start_operation

    ready = preconditions.check(cluster, "restore")
    if not ready:
        raise BackupRefused(ready.reason, hint=ready.hint)
    if confirm.strip() != cluster.name:
        raise BackupRefused(
            "a restore replaces everything in the cluster with the snapshot's content; "
            f"type the cluster's name ({cluster.name}) to confirm",
            hint="objects created after the snapshot are lost",
        )
    if snapshot.cluster_id != cluster.pk:
        raise BackupRefused(f"snapshot #{snapshot.pk} belongs to another cluster")
    try:
        verify(snapshot)
    except SnapshotDamaged as exc:
        raise BackupRefused(str(exc), hint="choose another snapshot; this one cannot be trusted") from None
    planes = joined_control_planes(cluster)
    if not planes:
        raise BackupRefused(f"cluster {cluster.name} has no joined control-plane machine to restore on")
    if len(planes) > 1:
        raise BackupRefused(
            f"cluster {cluster.name} has {len(planes)} control planes ({', '.join(n.name for n in planes)}), so etcd "
            "has several members; Kubeboard restores a single-member etcd only",
            hint="reset the other control planes first (their etcd members are removed), restore, then join them again",
        )
    busy = cluster.operations.filter(status__in=Operation.ACTIVE_STATUSES, mutating=True).first()
    if busy is not None:
        raise BackupRefused(f"operation #{busy.pk} ({busy.get_kind_display()}) is running", hint="wait for it to end")
    node = planes[0]
    return start_operation(
        cluster,
        RESTORE_KIND,
        user=user,
        params={"snapshot_id": snapshot.pk, "node_id": node.pk, "node": node.name, "revision": snapshot.revision},
    )


def due_backups(now=None) -> list[Operation]:
    """Start the scheduled snapshots that are due (the django-q2 schedule calls this)."""
    from workflows.models import BackupSchedule

    now = now or timezone.now()
    started = []
    with transaction.atomic():
        due = list(
            BackupSchedule.objects.select_for_update(skip_locked=True)
            .filter(enabled=True, next_run_at__lte=now)
            .select_related("cluster")
        )
        for schedule in due:
            schedule.next_run_at = now + timedelta(hours=schedule.interval_hours)
            schedule.last_run_at = now
            try:
                started.append(start_snapshot(schedule.cluster, reason=EtcdSnapshot.Reason.SCHEDULED))
                schedule.last_error = ""
            except BackupRefused as exc:
                schedule.last_error = str(exc)
            schedule.save(update_fields=["next_run_at", "last_run_at", "last_error"])
    return started
