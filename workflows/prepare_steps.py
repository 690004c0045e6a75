"""The steps of Prepare machine (workflows.prepare), each a phase on one machine over SSH.

Each step reads the machine, decides from kubeadm/prepare.py what should be there, logs "already
done" or each change (a dry run logs "would …" and changes nothing), then changes it. Paths are
rendered through ``kubeadm.prepare.Layout`` (``settings.PREPARE_ROOT``, "/" on a real machine).
"""

from __future__ import annotations

import hashlib
import re
import shlex
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

from artifacts.models import ArtifactFile, ArtifactSet
from artifacts.services import find_set
from core.phases import OperationCancelled, PhaseError
from core.waiting import WaitCancelled, WaitTimedOut, wait_until
from kubeadm import artifacts as layout_of_sets
from kubeadm import prepare as knowledge
from kubeadm.config import parse_config
from kubeadm.errors import KubeadmError
from kubeadm.versions import minor_of, with_v
from nodes.connect import phase_connection
from operations.runner import PhaseContext
from remote import commands, ssh
from workflows.models import MachinePreparation, PrepareSettings, StoredConfiguration

MIB = 1024 * 1024
# Kept free beyond what is pushed, so the machine is not left with a full disk.
FREE_MARGIN = 64 * MIB


def settings_for(cluster) -> PrepareSettings:
    found = PrepareSettings.objects.filter(cluster=cluster).first()
    return found if found is not None else PrepareSettings(cluster=cluster)


def mark_prepared(node, operation, *, source: str, version: str) -> None:
    """Recorded only after a whole run; an air-gapped one records the role whose images it sent."""
    MachinePreparation.objects.update_or_create(
        node=node,
        defaults={
            "operation": operation,
            "prepared_at": timezone.now(),
            "source": source,
            "kubernetes_version": version,
            "prepared_as": node.role if source == PrepareSettings.Source.ARTIFACTS else "",
        },
    )


def prepared_as_worker(node) -> str:
    """Why ``node`` cannot become a control plane yet ("" if it can): an air-gapped Prepare that
    ran while it was a worker sent it no control-plane image, and with no registry kubeadm's
    ImagePull preflight (init, join --control-plane) fails naming them."""
    preparation = MachinePreparation.objects.filter(node=node, prepared_at__isnull=False).first()
    if preparation is None or preparation.prepared_as != node.Role.WORKER:
        return ""
    names = ", ".join(layout_of_sets.CONTROL_PLANE_IMAGES)
    return (
        f"{node.name} was prepared as a worker: the control-plane images ({names}) were not sent to it, and "
        "kubeadm's ImagePull preflight on a control plane would fail without them"
    )


def prepared_as_worker_hint(node) -> str:
    first = "" if node.role == node.Role.CONTROL_PLANE else " (set its role to Control plane on its page first)"
    return f"Prepare {node.name} again{first}: it was prepared as a worker; Prepare then sends the missing images"


def role_files(node, artifact_set: ArtifactSet) -> tuple[list[ArtifactFile], list[ArtifactFile], str]:
    """The set's files ``node``'s role needs, those it does not, and the sentence saying what was
    left out and why ("" when nothing was)."""
    rows = list(artifact_set.files.all())
    control_plane = node.role == node.Role.CONTROL_PLANE
    needed, left_out = layout_of_sets.for_role({row.path: row.images for row in rows}, control_plane=control_plane)
    by_path = {row.path: row for row in rows}
    kept, dropped = [by_path[p] for p in needed], [by_path[p] for p in left_out]
    if not dropped:
        return kept, dropped, ""
    names = layout_of_sets.left_out_images({row.path: row.images for row in dropped}, left_out)
    size = sum(row.size for row in dropped)
    why = (
        f"{len(names)} control-plane image{'s' if len(names) != 1 else ''} not sent: {node.name} is a worker "
        f"({', '.join(names)}; {size / MIB:.1f} MiB). Made a control plane later, it is prepared again first."
    )
    return kept, dropped, why


def kubelet_settings(cluster) -> knowledge.KubeletSettings:
    """The cluster's KubeletConfiguration (from its stored kubeadm file), or kubeadm's defaults."""
    stored = StoredConfiguration.objects.filter(cluster=cluster).values_list("text", flat=True).first()
    if not stored:
        return knowledge.KubeletSettings()
    try:
        return knowledge.kubelet_settings(parse_config(stored).other_documents)
    except KubeadmError:  # a file kubeadm rejects is reported by init, not here
        return knowledge.KubeletSettings()


@dataclass
class Machine:
    """One phase's view of its machine: paths under the layout's root, reads that log nothing,
    changes that are logged (or only announced in a dry run)."""

    ctx: PhaseContext
    conn: ssh.Connection
    layout: knowledge.Layout

    @property
    def dry_run(self) -> bool:
        return bool(self.ctx.params.get("dry_run"))

    def path(self, absolute: str) -> str:
        return self.layout.path(absolute)

    def command(self, argv: list[str] | str) -> str:
        text = argv if isinstance(argv, str) else shlex.join(argv)
        if self.layout.root == "/":
            return text
        return f"env PATH={shlex.quote(self.layout.search_path)} {text}"

    def script(self, script: str, *args: str) -> str:
        return self.command(["sh", "-c", script, "kubeboard", *args])

    def read(self, argv: list[str] | str) -> commands.Output:
        """A read that changes nothing: its standard output only, not logged."""
        try:
            status, text = self.conn.output(self.command(argv))
        except ssh.SSHError as exc:
            raise commands.phase_error(exc, self.ctx.node) from None
        return commands.Output(status, text.splitlines())

    def read_file(self, absolute: str) -> str | None:
        status, text = self._output(["cat", "--", self.path(absolute)])
        return text if status == 0 else None

    def _output(self, argv: list[str]) -> tuple[int | None, str]:
        try:
            return self.conn.output(self.command(argv))
        except ssh.SSHError as exc:
            raise commands.phase_error(exc, self.ctx.node) from None

    def exists(self, absolute: str) -> bool:
        return self.read(["test", "-e", self.path(absolute)]).exit_status == 0

    def existing(self, absolute_paths: list[str]) -> set[str]:
        """Those of the paths that exist, asked in one command: each SSH command costs a round trip
        and a shell on the machine, which is most of a step's time when machines are prepared at once."""
        if not absolute_paths:
            return set()
        by_target = {self.path(p): p for p in absolute_paths}
        script = 'for f; do [ -e "$f" ] && printf "%s\\n" "$f"; done; true'
        _, lines = self.read(self.script(script, *by_target))
        return {by_target[line] for line in lines if line in by_target}

    def run(self, argv: list[str] | str, *, label: str = "", check: bool = True, show: bool = True):
        return commands.run(self.ctx, self.conn, self.command(argv), label=label, check=check, show=show)

    def write(self, absolute: str, text: str, *, mode: int = 0o644) -> None:
        try:
            self.conn.write_file(self.path(absolute), text.encode(), mode=mode, dir_mode=0o755)
        except ssh.SSHError as exc:
            raise commands.phase_error(exc, self.ctx.node) from None

    def sha256(self, absolute_paths: list[str]) -> dict[str, str]:
        """path -> SHA-256 of those that are regular files, hashed on the machine (one command for all)."""
        if not absolute_paths:
            return {}
        _, lines = self.read(self.script(SHA256_EACH, *[self.path(p) for p in absolute_paths]))
        by_target = {self.path(p): p for p in absolute_paths}
        return {by_target[name]: digest for name, digest in digests(lines).items() if name in by_target}


# SHA-256 of each argument that is a regular file. OpenSSL's digest where the machine has it: it
# uses the CPU's SHA extensions, where coreutils' sha256sum does not (120 MiB: 0.12 s against
# 0.47 s on the test host), and hashing what was sent is most of a push's work on the machine.
SHA256_EACH = (
    'if command -v openssl >/dev/null 2>&1; then h() { openssl dgst -sha256 -r -- "$1"; }; '
    'else h() { sha256sum -- "$1"; }; fi; '
    'for f; do [ -f "$f" ] && h "$f"; done; true'
)


def digests(lines: list[str]) -> dict[str, str]:
    """path -> hex digest from SHA256_EACH's output: sha256sum prints "<hex>  <path>", openssl dgst
    -r "<hex> *<path>" (one mark after the space, then the path)."""
    found = {}
    for line in lines:
        digest, _, marked = line.partition(" ")
        if len(digest) == 64 and marked[:1] in (" ", "*"):
            found[marked[1:]] = digest.lower()
    return found


def machine_root(template: str, node_name: str) -> str:
    """``PREPARE_ROOT`` for one machine: "{node}" stands for its name (test-bed machines that share
    one host each get their own tree)."""
    return (template or "/").replace("{node}", node_name)


def machine_for(ctx: PhaseContext, conn: ssh.Connection) -> Machine:
    template = ctx.settings.get("root") or settings.PREPARE_ROOT or "/"
    return Machine(ctx, conn, knowledge.Layout(machine_root(template, ctx.node.name)))


def report(machine: Machine, step: knowledge.StepReport) -> None:
    """Say what the step found: "already done", or each change (as "would" in a dry run)."""
    for note in step.notes:
        machine.ctx.log(note)
    if step.done_already:
        machine.ctx.log(f"{step.step}: already done, nothing changed.")
        return
    verb = "would change" if machine.dry_run else "changed"
    for change in step.changes:
        machine.ctx.log(f"{step.step}: {verb}: {change}", change=change, dry_run=machine.dry_run)


def facts_of(ctx: PhaseContext) -> knowledge.Facts:
    preparation = MachinePreparation.objects.filter(node=ctx.node).first()
    stored = (preparation.facts or {}) if preparation else {}
    if not stored:
        raise PhaseError(f"{ctx.node.name}: the facts step has not run", hint="resume from the facts step")
    return knowledge.facts(stored["os_release"], stored["machine"], stored["init"])


# --- facts ------------------------------------------------------------------------------------


def facts(ctx: PhaseContext) -> None:
    with phase_connection(ctx) as conn:
        machine = machine_for(ctx, conn)
        if not conn.is_root:
            try:
                result = conn.run("sudo -n true", root=False, timeout=30)
            except ssh.SSHError as exc:
                raise commands.phase_error(exc, ctx.node) from None
            if result.exit_status != 0:
                user = conn.target.user
                raise PhaseError(
                    f"{user} on {ctx.node.name} has no passwordless sudo (sudo -n true failed): Kubeboard installs "
                    "packages and writes /etc as root",
                    hint=f"allow it, e.g. /etc/sudoers.d/kubeboard with '{user} ALL=(ALL) NOPASSWD: ALL' (visudo -cf to "
                    "check), or connect as root; then resume",
                )
            ctx.log(f"{conn.target.user} may run commands as root (passwordless sudo).")
        os_release = machine.read_file("/etc/os-release") or machine.read_file("/usr/lib/os-release") or ""
        _, arch_lines = machine.read(["uname", "-m"])
        init = "systemd" if machine.exists("/run/systemd/system") else (machine.read_file("/proc/1/comm") or "").strip()
        values = {"os_release": os_release[:8000], "machine": (arch_lines or [""])[0].strip(), "init": init}
        try:
            found = knowledge.facts(values["os_release"], values["machine"], values["init"])
        except knowledge.Unsupported as exc:
            raise PhaseError(
                f"{ctx.node.name}: {exc}",
                hint="prepare it by hand as kubeadm's install guide says, or reinstall it with a supported system",
            ) from None
        MachinePreparation.objects.update_or_create(
            node=ctx.node,
            defaults={
                "facts": {**values, "family": found.family, "architecture": found.architecture},
                "operation": ctx.operation,
            },
        )
        ctx.log(f"{ctx.node.name}: {found.describe()}.", family=found.family, architecture=found.architecture)
        if _is_artifacts(ctx):
            _artifact_set(ctx, found)  # refuses now, before anything changes, if there is none


def _is_artifacts(ctx: PhaseContext) -> bool:
    return ctx.settings.get("source", ctx.params.get("source")) == PrepareSettings.Source.ARTIFACTS


def _artifact_set(ctx: PhaseContext, found: knowledge.Facts) -> ArtifactSet:
    version = with_v(ctx.cluster.kubernetes_version)
    artifact_set = find_set(version, found.architecture)
    if artifact_set is None:
        held = (
            ", ".join(
                ArtifactSet.objects.order_by("-kubernetes_version")
                .values_list("kubernetes_version", flat=True)
                .distinct()
            )
            or "none"
        )
        raise PhaseError(
            f"Kubeboard holds no artifact set for Kubernetes {version} on {found.architecture} (held: {held})",
            hint=f"import one built for {found.architecture} (manage.py artifacts import DIR, or the Artifact sets "
            "page), then resume",
        )
    return artifact_set


# --- swap, modules, sysctls ------------------------------------------------------------------------


def swap(ctx: PhaseContext) -> None:
    step = knowledge.StepReport("swap")
    with phase_connection(ctx) as conn:
        machine = machine_for(ctx, conn)
        if kubelet_settings(ctx.cluster).swap_allowed:
            ctx.log("The cluster's KubeletConfiguration allows swap (failSwapOn: false): swap is left as it is.")
            return
        active = knowledge.swaps_in_use(machine.read_file(knowledge.PROC_SWAPS) or "")
        fstab = machine.read_file(knowledge.FSTAB)
        new_fstab, commented = knowledge.comment_out_swap(fstab or "")
        _, unit_lines = machine.read(["systemctl", "list-units", "--type=swap", "--all", "--plain", "--no-legend"])
        to_mask = []
        for unit in knowledge.swap_units(unit_lines):
            _, state = machine.read(["systemctl", "is-enabled", unit])
            if (state or [""])[0].strip() != "masked":
                to_mask.append(unit)
        if active:
            step.change(f"swapoff -a (in use: {', '.join(active)})")
        for entry in commented:
            step.change(f"commented out in {knowledge.FSTAB}: {entry}")
        for unit in to_mask:
            step.change(f"masked {unit} (systemd would turn it on at boot)")
        report(machine, step)
        if machine.dry_run or step.done_already:
            return
        if active:
            machine.run(["swapoff", "-a"], label="swapoff")
        if commented:
            machine.write(knowledge.FSTAB, new_fstab, mode=0o644)
        if to_mask:
            machine.run(["systemctl", "mask", *to_mask], label="systemctl mask")


def modules(ctx: PhaseContext) -> None:
    step = knowledge.StepReport("kernel modules")
    with phase_connection(ctx) as conn:
        machine = machine_for(ctx, conn)
        listed = (machine.read_file(knowledge.MODULES_FILE) or "").split()
        missing_file = [name for name in knowledge.MODULES if name not in listed]
        unloaded = [name for name in knowledge.MODULES if not _module_loaded(machine, name)]
        if missing_file:
            step.change(f"{knowledge.MODULES_FILE} lists {', '.join(knowledge.MODULES)} (loaded at every boot)")
        for name in unloaded:
            step.change(f"modprobe {name}")
        report(machine, step)
        if machine.dry_run or step.done_already:
            return
        if missing_file:
            machine.write(knowledge.MODULES_FILE, knowledge.modules_file())
        for name in unloaded:
            machine.run(["modprobe", name], label=f"modprobe {name}")


def _module_loaded(machine: Machine, name: str) -> bool:
    return knowledge.module_loaded(name, machine.existing(list(knowledge.module_loaded_paths(name))))


def _sysctl_file_values(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.strip().startswith(("#", ";")):
            values[key.strip()] = value.strip()
    return values


def _sysctls_now(machine: Machine) -> dict[str, str]:
    """Each of kubeadm's sysctls as the machine has it now ("" if absent), read in one command."""
    paths = {machine.path(knowledge.sysctl_proc_path(key)): key for key in knowledge.SYSCTLS}
    script = 'for f; do v=$(cat "$f" 2>/dev/null); printf "%s\\t%s\\n" "$f" "$v"; done'
    _, lines = machine.read(machine.script(script, *paths))
    found = dict.fromkeys(knowledge.SYSCTLS, "")
    for line in lines:
        path, _, value = line.partition("\t")
        if path in paths:
            found[paths[path]] = value.strip()
    return found


def sysctl(ctx: PhaseContext) -> None:
    step = knowledge.StepReport("sysctl")
    with phase_connection(ctx) as conn:
        machine = machine_for(ctx, conn)
        persisted = _sysctl_file_values(machine.read_file(knowledge.SYSCTL_FILE) or "")
        wrong_file = [k for k, v in knowledge.SYSCTLS.items() if persisted.get(k) != v]
        live_wrong = []
        live = _sysctls_now(machine)
        for key, value in knowledge.SYSCTLS.items():
            now = live[key]
            if now != value:
                live_wrong.append(f"{key} = {value} (now {now or 'absent: br_netfilter not loaded'})")
        if wrong_file:
            step.change(f"{knowledge.SYSCTL_FILE} sets {', '.join(f'{k} = 1' for k in knowledge.SYSCTLS)}")
        for text in live_wrong:
            step.change(f"applied {text}")
        report(machine, step)
        if machine.dry_run or step.done_already:
            return
        if wrong_file:
            machine.write(knowledge.SYSCTL_FILE, knowledge.sysctl_file())
        machine.run(["sysctl", "-p", machine.path(knowledge.SYSCTL_FILE)], label="sysctl -p")
        live = _sysctls_now(machine)
        still = [key for key, value in knowledge.SYSCTLS.items() if live[key] != value]
        if still:
            raise PhaseError(
                f"{', '.join(still)} still not 1 on {ctx.node.name} after sysctl -p",
                hint="another file in /etc/sysctl.d or a network manager sets it back; look at sysctl --system's "
                "output, fix it, then resume",
            )


# --- the artifact set ----------------------------------------------------------------------------


def staging_dir(artifact_set: ArtifactSet) -> str:
    return f"{knowledge.ARTIFACTS_DIR}/{artifact_set.name}"


def _free_bytes(machine: Machine, absolute: str) -> int | None:
    script = 'd="$1"; while [ ! -e "$d" ]; do d=$(dirname "$d"); done; df -Pk "$d" | tail -n 1'
    status, lines = machine.read(machine.script(script, machine.path(absolute)))
    try:
        return int(lines[-1].split()[3]) * 1024 if status == 0 and lines else None
    except (IndexError, ValueError):
        return None


def _copies_on_machine(machine: Machine, artifact_set: ArtifactSet, items: list[ArtifactFile]) -> dict[str, str]:
    """SHA-256 -> a file on the machine with that content, in another set Kubeboard pushed there.

    An upgrade pushes the target's set next to the set Prepare pushed; the runtime binaries, the
    units and most images are the same bytes in both, and copying them on the machine costs no
    transfer. Each candidate is hashed on the machine first: only an intact copy is used.
    """
    others = (
        ArtifactFile.objects.filter(sha256__in={item.sha256 for item in items})
        .exclude(artifact_set=artifact_set)
        .select_related("artifact_set")
        .order_by("artifact_set__kubernetes_version", "path")
    )
    candidates = {f"{staging_dir(row.artifact_set)}/{row.path}": row.sha256 for row in others}
    found: dict[str, str] = {}
    for path, digest in machine.sha256(list(candidates)).items():
        if digest == candidates[path]:
            found.setdefault(digest, path)
    return found


def push(ctx: PhaseContext, artifact_set: ArtifactSet | None = None) -> None:
    """Send the set (the cluster's version's by default; the upgrade passes its target's) and check it.

    A file already in the set's directory on the machine with the same SHA-256 is not sent; one
    that another set on the machine holds with the same SHA-256 is copied there, not sent."""
    if artifact_set is None:
        artifact_set = _artifact_set(ctx, facts_of(ctx))
    files, left_out, why = role_files(ctx.node, artifact_set)
    where = staging_dir(artifact_set)
    with phase_connection(ctx) as conn:
        machine = machine_for(ctx, conn)
        if why:
            ctx.log(why, left_out=[item.path for item in left_out], role=ctx.node.role)
        remote = machine.sha256([f"{where}/{item.path}" for item in files])
        missing = [item for item in files if remote.get(f"{where}/{item.path}") != item.sha256]
        copies = _copies_on_machine(machine, artifact_set, missing) if missing else {}
        to_copy = [item for item in missing if item.sha256 in copies]
        to_push = [item for item in missing if item.sha256 not in copies]
        size = sum(item.size for item in to_push)
        kept = len(files) - len(missing)
        copied = f", {len(to_copy)} copied from another set already on it" if to_copy else ""
        ctx.log(
            f"Artifact set {artifact_set.name}: {len(files)} files for a {ctx.node.get_role_display().lower()}; {kept} already on {ctx.node.name} with the same "
            f"SHA-256 (not sent again){copied}, {len(to_push)} to send ({size / MIB:.1f} MiB).",
            bytes_to_push=size,
        )
        if machine.dry_run:
            for item in to_copy:
                ctx.log(f"push: would copy {item.path} from {copies[item.sha256]} (same SHA-256) to {where}/")
            for item in to_push:
                ctx.log(f"push: would send {item.path} ({item.size / MIB:.1f} MiB) to {where}/")
            return
        free = _free_bytes(machine, where)
        needed = size + sum(item.size for item in to_copy)
        if free is not None and needed and free < needed + FREE_MARGIN:
            raise PhaseError(
                f"not enough free space on {ctx.node.name} for {where}: {free / MIB:.0f} MiB free, "
                f"{(needed + FREE_MARGIN) / MIB:.0f} MiB needed ({needed / MIB:.0f} MiB to send or copy + "
                f"{FREE_MARGIN // MIB} MiB kept free); nothing was sent",
                hint="free space on that file system (or grow it), then resume",
            )
        owner = [] if conn.is_root else ["-o", conn.target.user]
        directories = sorted({f"{where}/{item.path}".rsplit("/", 1)[0] for item in files} | {where})
        machine.run(
            ["install", "-d", "-m", "0755", *owner, *[machine.path(d) for d in directories]], label="install -d"
        )
        for item in to_copy:
            ctx.check_cancelled()
            source, target = machine.path(copies[item.sha256]), machine.path(f"{where}/{item.path}")
            machine.run(["install", "-m", "0644", *owner, source, target], label=f"copy {item.path}", show=False)
            ctx.log(f"Copied {item.path} from {copies[item.sha256]} on {ctx.node.name} (same SHA-256, not sent).")
        sent = 0
        for item in to_push:
            ctx.check_cancelled()
            try:
                sent += conn.put_file(str(item.local_path), machine.path(f"{where}/{item.path}"), mode=0o644)
            except FileNotFoundError:
                raise PhaseError(
                    f"Kubeboard's copy of {artifact_set.name}/{item.path} is missing",
                    hint="import the set again, then resume",
                ) from None
            except ssh.SSHError as exc:
                raise commands.phase_error(exc, ctx.node) from None
            ctx.log(f"Sent {item.path} ({item.size / MIB:.1f} MiB).", path=item.path, bytes=item.size)
        sums = layout_of_sets.render_sums({item.path: item.sha256 for item in files})
        machine.write(f"{where}/{layout_of_sets.SUMS_FILE}", sums)
        MachinePreparation.objects.filter(node=ctx.node).update(bytes_pushed=sent)
        ctx.log(f"Sent {sent} bytes to {ctx.node.name}.", bytes_pushed=sent)
        # The files that were already there were hashed on the machine a moment ago; reading them
        # again would double the disk and CPU cost of a push that sends little.
        _check_sums(machine, where, {item.path: item.sha256 for item in missing})


def _check_sums(machine: Machine, where: str, sums: dict[str, str]) -> None:
    """Hash those files (sent or copied just now) on the machine and compare them with the set's
    SHA-256; a file that does not match, or is missing, is deleted (a resume sends it again)."""
    if not sums:
        machine.ctx.log(f"Every file of {where} already matched SHA256SUMS (hashed on the machine above).")
        return
    found = machine.sha256([f"{where}/{path}" for path in sums])
    bad = sorted(path for path, digest in sums.items() if found.get(f"{where}/{path}") != digest)
    if not bad:
        machine.ctx.log(
            f"SHA-256 checked on {machine.ctx.node.name}: the {len(sums)} files sent or copied to {where} match "
            "SHA256SUMS."
        )
        return
    machine.read(["rm", "-f", "--", *[machine.path(f"{where}/{p}") for p in bad]])
    raise PhaseError(
        f"checksum mismatch on {machine.ctx.node.name}: {', '.join(bad)} did not match SHA256SUMS; nothing was "
        "installed",
        hint="the bad copies were deleted: resume to send them again (if they fail again, Kubeboard's own copy is "
        "damaged: import the set again)",
    )


def install_from_set(
    machine: Machine, artifact_set: ArtifactSet, paths: tuple[str, ...], step: knowledge.StepReport
) -> list[str]:
    """Install those set files whose installed copy differs; returns the machine paths changed."""
    where = staging_dir(artifact_set)
    rows = {row.path: row for row in ArtifactFile.objects.filter(artifact_set=artifact_set, path__in=paths)}
    targets = {path: layout_of_sets.destination(path) for path in rows}
    installed = machine.sha256([dest for dest, _ in targets.values() if dest])
    # Units are installed rewritten (their ExecStart names the set's binaries where they go), so
    # they are compared, and written, as installed; Kubeboard's copy is the checked one.
    rewritten = {
        path: layout_of_sets.installed_content(path, rows[path].local_path.read_bytes())
        for path in rows
        if path.startswith("systemd/")
    }
    changed = []
    installs: list[list[str]] = []
    for path, (dest, mode) in sorted(targets.items()):
        wanted = hashlib.sha256(rewritten[path]).hexdigest() if path in rewritten else rows[path].sha256
        if installed.get(dest) == wanted:
            continue
        step.change(f"installed {dest} from {artifact_set.name}/{path}")
        changed.append(dest)
        if not machine.dry_run and path in rewritten:
            machine.write(dest, rewritten[path].decode(), mode=mode)
        elif not machine.dry_run:
            installs.append(
                knowledge.install_set_file_command(machine.path(f"{where}/{path}"), machine.path(dest), mode)
            )
    if installs:
        # One command for all the files (each a round trip otherwise); the first that fails stops it.
        machine.run(machine.script(" && ".join(shlex.join(argv) for argv in installs)), label="install")
    return changed


# --- container runtime ------------------------------------------------------------------------------


def _systemctl_state(machine: Machine, verb: str, unit: str) -> str:
    _, lines = machine.read(["systemctl", verb, unit])
    return (lines or [""])[0].strip()


def _runtime_answers(machine: Machine) -> bool:
    socket = machine.path(knowledge.CONTAINERD_SOCKET)
    return machine.read(["ctr", "--address", socket, "version"]).exit_status == 0


# Where a distribution's package (or someone by hand) puts a runtime; Kubeboard's own containerd
# is the one in /usr/local/bin, installed from an artifact set.
OTHER_RUNTIME_DIRS = ("/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/sbin", "/opt/bin")


def _existing_runtime(machine: Machine, *, ours_too: bool = False) -> str:
    """A runtime that is not Kubeboard's to touch: CRI-O, or a containerd installed otherwise
    (looked for under the machine's root only, never on the PATH of whoever runs the test bed)."""
    dirs = OTHER_RUNTIME_DIRS + ((knowledge.BIN_DIR,) if ours_too else ())
    there = machine.existing([knowledge.CRIO_SOCKET, *(f"{d}/{p}" for p in ("crio", "containerd") for d in dirs)])
    if knowledge.CRIO_SOCKET in there:
        return "CRI-O"
    for program, name in (("crio", "CRI-O"), ("containerd", "containerd")):
        for directory in dirs:
            if f"{directory}/{program}" in there:
                return f"{name} ({directory}/{program})"
    return ""


def run_package_manager(machine: Machine, family: str, argv: list[str], *, label: str) -> None:
    """Run apt-get/dnf; a lock held by another process becomes a clear failure (checked first
    with lslocks, and in the output: apt waits PREPARE_LOCK_WAIT_SECONDS for it)."""
    holders = _lock_holders(machine, family)
    if holders:
        _locked(machine, "; ".join(holders))
    command = ["env", "DEBIAN_FRONTEND=noninteractive", *argv] if family == knowledge.DEBIAN else argv
    status, lines = machine.run(command, label=label, check=False)
    if status == 0:
        return
    locked = knowledge.package_manager_locked(lines)
    if locked:
        _locked(machine, locked)
    tail = " ".join(line.strip() for line in lines[-4:])[-400:]
    raise PhaseError(
        f"{label} failed on {machine.ctx.node.name} (exit status {status}): {tail}",
        hint="read its output above (a repository the machine cannot reach, a package missing from the mirror), fix "
        "it, then resume",
    )


# lslocks reads the kernel's lock table, which holds the locks of every mount namespace, each path
# as its holder sees it: the dpkg of a container (or of another test-bed machine on the same host)
# holds its own root's lock, not this machine's. So only holders in this shell's mount namespace
# are listed; one whose namespace cannot be read still is (apt's own lock wait catches a miss),
# unless it has exited since lslocks read the table: another machine's short apt-get that ended
# in between was taken for this machine's holder (a CI run's parallel Prepare failed so).
LOCKS_HERE = (
    "own=$(readlink /proc/$$/ns/mnt); lslocks --noheadings --raw -o PID,COMMAND,PATH | while read -r pid rest; do "
    'ns=$(readlink "/proc/$pid/ns/mnt" 2>/dev/null); '
    'if [ "$ns" = "$own" ] || { [ -z "$ns" ] && [ -e "/proc/$pid" ]; }; then echo "$pid $rest"; fi; '
    "done"
)


def _lock_holders(machine: Machine, family: str) -> list[str]:
    paths = [machine.path(p) for p in knowledge.lock_paths(family)]
    status, lines = machine.read(machine.script(LOCKS_HERE))
    return knowledge.lock_holders(lines, paths) if status == 0 else []


def _locked(machine: Machine, holder: str) -> None:
    raise PhaseError(
        f"the package manager on {machine.ctx.node.name} is busy: {holder}; nothing was installed",
        hint="wait for that process to finish (unattended-upgrades or cloud-init often run after boot), then resume",
    )


def runtime(ctx: PhaseContext) -> None:
    found = facts_of(ctx)
    step = knowledge.StepReport("container runtime")
    chosen = settings_for(ctx.cluster)
    with phase_connection(ctx) as conn:
        machine = machine_for(ctx, conn)
        other = _existing_runtime(machine)
        if other.startswith("containerd") and knowledge.configured_by_kubeboard(
            machine.read_file(knowledge.CONTAINERD_CONFIG)
        ):
            other = ""  # an earlier Prepare installed (or replaced) and configured it: checked like the rest
        if other and not ctx.settings.get("replace-runtime", chosen.replace_runtime):
            ctx.log(
                f"{ctx.node.name} already has {other}: left as it is (the cluster's 'replace an existing container "
                "runtime' is off). kubeadm needs its CRI on, its cgroup driver matching the kubelet's "
                f"({kubelet_settings(ctx.cluster).cgroup_driver}) and kubeadm's pause image.",
                level="warning",
            )
            return
        units_changed: list[str] = []
        if _is_artifacts(ctx):
            artifact_set = _artifact_set(ctx, found)
            binaries = tuple(f"bin/{name}" for name in layout_of_sets.RUNTIME_BINARIES)
            changed = install_from_set(machine, artifact_set, (*binaries, "systemd/containerd.service"), step)
            units_changed = [path for path in changed if path.endswith(".service")]
        elif not _existing_runtime(machine, ours_too=True):
            package = knowledge.CONTAINERD_PACKAGE[found.family]
            step.change(f"installed the {package} package")
            if not machine.dry_run:
                wait = int(settings.PREPARE_LOCK_WAIT_SECONDS)
                for argv in knowledge.runtime_install_commands(found.family, lock_wait=wait):
                    label = f"install {package}" if package in argv else "refresh"
                    run_package_manager(machine, found.family, argv, label=label)
        major = knowledge.containerd_major(" ".join(machine.read(["containerd", "--version"]).lines)) or 2
        kubelet = kubelet_settings(ctx.cluster)
        image = knowledge.pause_image(ctx.cluster.kubernetes_version, ctx.cluster.image_repository)
        wanted = {
            knowledge.CONTAINERD_CONFIG: knowledge.containerd_config(
                major=major,
                sandbox_image=image,
                systemd_cgroup=kubelet.systemd_cgroup,
                certs_dir=machine.path(knowledge.CONTAINERD_CERTS_DIR),
            ),
            knowledge.CRICTL_CONFIG: knowledge.crictl_config(machine.path(knowledge.CONTAINERD_SOCKET)),
        }
        mirrors = knowledge.parse_mirrors(ctx.settings.get("registry-mirrors", chosen.registry_mirrors) or "")
        for registry, urls in mirrors.items():
            wanted[f"{knowledge.CONTAINERD_CERTS_DIR}/{registry}/hosts.toml"] = knowledge.hosts_toml(registry, urls)
        config_changed = []
        for path, text in wanted.items():
            if machine.read_file(path) != text:
                config_changed.append(path)
                step.change(
                    f"wrote {path}"
                    + (
                        f" (SystemdCgroup = {str(kubelet.systemd_cgroup).lower()}, sandbox {image})"
                        if path.endswith("config.toml")
                        else ""
                    )
                )
                if not machine.dry_run:
                    machine.write(path, text)
        enabled = _systemctl_state(machine, "is-enabled", "containerd") == "enabled"
        running = _runtime_answers(machine)
        if not enabled:
            step.change("enabled containerd (starts at boot)")
        if not running:
            step.change("started containerd")
        elif config_changed or step.changes:
            step.change("restarted containerd (new configuration or binaries)")
        report(machine, step)
        if machine.dry_run or step.done_already:
            return
        if units_changed:
            machine.run(["systemctl", "daemon-reload"], label="systemctl daemon-reload")
        if not enabled:
            machine.run(["systemctl", "enable", "containerd"], label="systemctl enable containerd")
        machine.run(["systemctl", "restart", "containerd"], label="systemctl restart containerd", check=False)
        _wait_for_runtime(machine)


def _wait_for_runtime(machine: Machine) -> None:
    try:
        wait_until(
            lambda: True if _runtime_answers(machine) else None,
            timeout=float(settings.PREPARE_RUNTIME_START_SECONDS),
            interval=0.5,
            cancel=machine.ctx.cancel_event,
        )
    except WaitCancelled:
        raise OperationCancelled("cancelled while waiting for containerd to start") from None
    except WaitTimedOut:
        _, log = machine.read(["journalctl", "-u", "containerd", "-n", "20", "--no-pager"])
        for line in log[-20:]:
            machine.ctx.log(f"journal: {line}", level="warning")
        raise PhaseError(
            f"containerd did not start on {machine.ctx.node.name}: it does not answer on {knowledge.CONTAINERD_SOCKET} "
            f"after {settings.PREPARE_RUNTIME_START_SECONDS:.0f} s; the machine is not ready",
            hint="read its journal (last lines above; journalctl -u containerd), fix the cause (its configuration, a "
            "missing runc, the cgroup driver), then resume",
        ) from None
    machine.ctx.log("containerd answers on its socket.")


# --- kubeadm, kubelet, kubectl, crictl ---------------------------------------------------------------


def _repository(ctx: PhaseContext, found: knowledge.Facts) -> knowledge.Repository:
    chosen = settings_for(ctx.cluster)
    return knowledge.Repository(
        family=found.family,
        minor=minor_of(ctx.cluster.kubernetes_version),
        base=ctx.settings.get("repository") or chosen.repository_url or knowledge.PKGS_K8S_IO,
        fingerprint=knowledge.normalize_fingerprint(
            ctx.settings.get("repository-key") or chosen.repository_key_fingerprint
        ),
    )


def _key_fingerprints(machine: Machine, path: str) -> list[str]:
    _, lines = machine.read(["gpg", "--show-keys", "--with-colons", path])
    return [line.split(":")[9] for line in lines if line.startswith("fpr:") and len(line.split(":")) > 9]


def ensure_repository(machine: Machine, repo: knowledge.Repository, step: knowledge.StepReport) -> None:
    """The repository's key (only with the pinned fingerprint) and source file, each change in ``step``."""
    key_path = machine.path(repo.key_path)
    if repo.fingerprint not in _key_fingerprints(machine, key_path):
        step.change(f"{repo.key_path}: the key from {repo.key_url} (fingerprint {repo.fingerprint})")
        if not machine.dry_run:
            download = f"{key_path}.download"
            status, lines = machine.run(
                ["curl", "-fsSL", "--retry", "3", "--max-time", "60", "-o", download, repo.key_url],
                label="curl",
                check=False,
            )
            if status != 0:
                raise PhaseError(
                    f"downloading {repo.key_url} failed on {machine.ctx.node.name}: {' '.join(lines)[-300:] or f'exit {status}'}",
                    hint="check that the machine reaches it (DNS, proxy, firewall) or set the cluster's repository "
                    "mirror; then resume",
                )
            got = _key_fingerprints(machine, download)
            if repo.fingerprint not in got:
                machine.read(["rm", "-f", download])
                raise PhaseError(
                    f"the key at {repo.key_url} has fingerprint {', '.join(got) or 'none (not an OpenPGP key)'}, not "
                    f"the pinned {repo.fingerprint}; it was not installed",
                    hint="if the mirror signs with its own key, set its fingerprint in the cluster's preparation "
                    "settings; then resume",
                )
            if repo.family == knowledge.DEBIAN:
                machine.run(["gpg", "--batch", "--yes", "--dearmor", "-o", key_path, download], label="gpg --dearmor")
                machine.read(["rm", "-f", download])
            else:
                machine.run(["mv", "-f", download, key_path], label="mv")
                machine.run(["rpm", "--import", key_path], label="rpm --import")
    if machine.read_file(repo.source_path) != repo.source():
        step.change(f"{repo.source_path}: {repo.url}")
        if not machine.dry_run:
            machine.write(repo.source_path, repo.source())


def _install_packages(machine: Machine, found: knowledge.Facts, specs: list[str], *, refresh: bool, label: str) -> None:
    wait = int(settings.PREPARE_LOCK_WAIT_SECONDS)
    if refresh:
        run_package_manager(
            machine, found.family, knowledge.refresh_command(found.family, lock_wait=wait), label="refresh"
        )
    run_package_manager(
        machine, found.family, knowledge.install_command(found.family, specs, lock_wait=wait), label=label
    )


def kubernetes(ctx: PhaseContext) -> None:
    found = facts_of(ctx)
    version = with_v(ctx.cluster.kubernetes_version)
    step = knowledge.StepReport(f"Kubernetes {version}")
    with phase_connection(ctx) as conn:
        machine = machine_for(ctx, conn)
        if _is_artifacts(ctx):
            artifact_set = _artifact_set(ctx, found)
            paths = (
                *(f"bin/{name}" for name in layout_of_sets.KUBERNETES_BINARIES),
                "systemd/kubelet.service",
                "systemd/10-kubeadm.conf",
            )
            changed = install_from_set(machine, artifact_set, paths, step)
            enabled = _systemctl_state(machine, "is-enabled", "kubelet") == "enabled"
            if not enabled:
                step.change("enabled the kubelet (kubeadm starts it)")
            step.notes.append(
                f"Installed from {artifact_set.name} into {knowledge.BIN_DIR}: no package manager owns these files, "
                "so unattended upgrades never change them."
            )
            report(machine, step)
            if machine.dry_run or step.done_already:
                return
            if any(path.endswith((".service", ".conf")) for path in changed):
                machine.run(["systemctl", "daemon-reload"], label="systemctl daemon-reload")
            if not enabled:
                machine.run(["systemctl", "enable", "kubelet"], label="systemctl enable kubelet")
            return
        repo = _repository(ctx, found)
        ensure_repository(machine, repo, step)
        installed = knowledge.parse_installed(machine.read(knowledge.installed_query(found.family)).lines)
        wrong = knowledge.installed_matches(installed, version)
        if wrong:
            step.change(
                f"installed {' '.join(knowledge.package_specs(found.family, version))} (was: {', '.join(wrong)})"
            )
        held = set(machine.read(["apt-mark", "showhold"]).lines) if found.family == knowledge.DEBIAN else set()
        hold_needed = found.family == knowledge.DEBIAN and not set(knowledge.PACKAGES) <= {h.strip() for h in held}
        if found.family == knowledge.RHEL:
            status, lines = machine.read(["dnf", "versionlock", "list"])
            hold_needed = status != 0 or not all(any(p in line for line in lines) for p in knowledge.PACKAGES)
        if hold_needed or wrong:
            step.change(f"held {', '.join(knowledge.PACKAGES)} ({' '.join(knowledge.hold_command(found.family)[:2])})")
        # As from an artifact set: a package need not enable its unit (the RHEL family's presets
        # leave it disabled), and a kubelet that is not enabled does not come back after a reboot.
        enabled = _systemctl_state(machine, "is-enabled", "kubelet") == "enabled"
        if not enabled:
            step.change("enabled the kubelet (kubeadm starts it)")
        report(machine, step)
        if machine.dry_run or step.done_already:
            return
        if wrong:
            _install_packages(
                machine, found, knowledge.package_specs(found.family, version), refresh=True,
                label="install kubeadm, kubelet, kubectl, cri-tools",
            )  # fmt: skip
        machine.run(knowledge.hold_command(found.family), label="hold")
        if not enabled:
            machine.run(["systemctl", "enable", "kubelet"], label="systemctl enable kubelet")


# --- images -------------------------------------------------------------------------------------------


def _images_present(machine: Machine) -> set[str]:
    socket = machine.path(knowledge.CONTAINERD_SOCKET)
    status, lines = machine.read(["ctr", "--address", socket, "-n", "k8s.io", "images", "ls", "-q"])
    return {line.strip() for line in lines} if status == 0 else set()


def images(ctx: PhaseContext, artifact_set: ArtifactSet | None = None) -> None:
    """Import the set's images (the cluster's version's set by default; the upgrade passes its target's)."""
    if artifact_set is None:
        artifact_set = _artifact_set(ctx, facts_of(ctx))
    step = knowledge.StepReport("images")
    where = staging_dir(artifact_set)
    files, left_out, why = role_files(ctx.node, artifact_set)
    if why:
        step.notes.append(why.replace("not sent", "not imported", 1))
    with phase_connection(ctx) as conn:
        machine = machine_for(ctx, conn)
        present = _images_present(machine)
        archives = [row for row in files if row.path.startswith("images/") and row.images]
        missing = [row for row in archives if not set(row.images) <= present]
        for row in missing:
            step.change(f"imported {', '.join(row.images)} from {row.path}")
        report(machine, step)
        if machine.dry_run or step.done_already:
            return
        socket = machine.path(knowledge.CONTAINERD_SOCKET)
        for row in missing:
            ctx.check_cancelled()
            machine.run(
                ["ctr", "--address", socket, "-n", "k8s.io", "images", "import", machine.path(f"{where}/{row.path}")],
                label=f"ctr images import {row.path}",
            )
        still = [name for row in archives for name in row.images if name not in _images_present(machine)]
        if still:
            raise PhaseError(
                f"after the import containerd does not list {', '.join(still)}",
                hint="the archive may be for another platform; build the set for this machine's architecture, import "
                "it again, then resume",
            )


# --- verify -------------------------------------------------------------------------------------------


_VERSION = re.compile(r"\bv\d+\.\d+\.\d+\S*")


def _version_in(lines: list[str]) -> str:
    for line in reversed(lines):
        found = _VERSION.search(line)
        if found:
            return found.group(0)
    return ""


def verify(ctx: PhaseContext) -> None:
    facts_of(ctx)  # the facts step ran (it may have been skipped on a resume)
    version = with_v(ctx.cluster.kubernetes_version)
    if ctx.params.get("dry_run"):
        ctx.log(f"Dry run: nothing was changed on {ctx.node.name}; the steps above list what a run would change.")
        return
    problems: list[str] = []
    with phase_connection(ctx) as conn:
        machine = machine_for(ctx, conn)
        if not kubelet_settings(ctx.cluster).swap_allowed:
            active = knowledge.swaps_in_use(machine.read_file(knowledge.PROC_SWAPS) or "")
            if active:
                problems.append(f"swap is on ({', '.join(active)})")
        for name in knowledge.MODULES:
            if not _module_loaded(machine, name):
                problems.append(f"module {name} is not loaded")
        live = _sysctls_now(machine)
        for key, value in knowledge.SYSCTLS.items():
            if live[key] != value:
                problems.append(f"{key} is not {value}")
        if not _runtime_answers(machine) and not _existing_runtime(machine):
            problems.append("containerd does not answer on its socket")
        # The version from the line that carries one: a login shell may print its own noise first.
        for program, argv in (
            ("kubeadm", ["kubeadm", "version", "-o", "short"]),
            ("kubelet", ["kubelet", "--version"]),
        ):
            status, lines = machine.read(argv)
            said = _version_in(lines) if status == 0 else ""
            if said != version:
                problems.append(f"{program} is {said or 'not found'}, not {version}")
        there = machine.existing([f"{d}/{p}" for p in ("kubectl", "crictl") for d in (knowledge.BIN_DIR, "/usr/bin")])
        for program in ("kubectl", "crictl"):
            if not any(f"{d}/{program}" in there for d in (knowledge.BIN_DIR, "/usr/bin")):
                problems.append(f"{program} is not installed")
    if problems:
        raise PhaseError(
            f"{ctx.node.name} is not ready for kubeadm: {'; '.join(problems)}",
            hint="resume: each step runs again and puts back what is missing (or skip it if done by hand)",
        )
    mark_prepared(ctx.node, ctx.operation, source=ctx.settings.get("source", ""), version=version)
    ctx.log(
        f"{ctx.node.name} is ready for kubeadm {version}: swap, modules, sysctls, containerd and the Kubernetes "
        "binaries checked."
    )
    from nodes.services import run_check

    run_check(ctx.node.pk, actor=ctx.operation.requested_by, progress=lambda text: ctx.log(f"Check: {text}"))
