"""Driving kubeadm on a machine from a phase: connect, check, upload, run, report.

Shared by the init operation (clusters/init.py) and the join operations (nodes/join.py).
Everything here runs inside a phase (``operations.runner.PhaseContext``) and turns trouble
into ``PhaseError`` with a hint, so the operation page says what to do next.

Safety rules kept here, once:
* one SSH connection per phase (``nodes.ssh.connect``: guard checked, host key pinned);
* each remote command runs as the phase's *job* (``ctx.job``): a cancel kills its process
  group, and an attempt after a crashed worker first waits for a leftover of the previous
  attempt to end, so one phase never runs twice at the same time on a machine;
* output lines become typed events with every secret Kubeboard knows for this phase (token
  secrets, certificate keys) replaced by ``***`` first; command lines shown never carry one
  (secrets travel in 0600 files, never in argv).
"""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from kubeadm import nodeconfig, uploads, workflow
from kubeadm import output as kubeadm_output
from nodes.checks import check_machine
from nodes.connect import connect as connect_node
from operations.runner import OperationCancelled, PhaseContext, PhaseError
from remote import ssh

# Kubeboard's files for kubeadm on the machine (kubeadm.nodeconfig says where and why).
CONFIG_DIR = nodeconfig.CONFIG_DIR
INIT_CONFIG = nodeconfig.INIT_CONFIG_PATH
JOIN_CONFIG = nodeconfig.JOIN_CONFIG_PATH

# kubeadm's own waits are at most a few minutes (timeouts in the config); this is the backstop.
COMMAND_TIMEOUT = 20 * 60
# How long a new attempt waits for a leftover command of a crashed attempt before killing it.
LEFTOVER_WAIT = 15 * 60
# Lines kept for the failure diagnosis (kubeadm's error is at the end).
TAIL_LINES = 200

# "abcdef.0123456789abcdef" anywhere, and a 64-hex certificate key after "key": masked even if
# Kubeboard did not hand them out itself (kubeadm may print one it generated).
_TOKEN = re.compile(r"\b([a-z0-9]{6})\.[a-z0-9]{16}\b")
_CERT_KEY = re.compile(r"(?i)(key[^0-9a-f\n]{0,40})\b[0-9a-f]{64}\b")


@dataclass
class Secrets:
    """Strings that must never reach an event, a log line or an error message."""

    values: set[str] = field(default_factory=set)

    def add(self, *values: str) -> None:
        self.values.update(value for value in values if value and len(value) >= 8)

    def redact(self, text: str) -> str:
        for value in self.values:
            if value in text:
                text = text.replace(value, "***")
        text = _TOKEN.sub(lambda m: f"{m.group(1)}.****************", text)
        return _CERT_KEY.sub(lambda m: f"{m.group(1)}***", text)


def phase_error(exc: ssh.SSHError, node) -> PhaseError:
    """An SSH failure as the phase's error, with the transport's hint (what to do next)."""
    message = str(exc)
    hint = exc.hint
    if isinstance(exc, ssh.HostKeyChanged):
        message = (
            f"the host key of {node.name} changed: Kubeboard pinned {exc.pinned_fingerprint}, the machine now "
            f"offers {exc.offered_fingerprint}; every operation on this machine stops until a person decides"
        )
        hint = hint or "if the machine was reinstalled, accept the new key on the node page, then resume"
    elif isinstance(exc, ssh.HostKeyUnknown):
        message = f"the host key of {node.name} ({exc.fingerprint}) has not been accepted yet"
        hint = hint or "compare the fingerprint on the node page with the machine's and accept it, then resume"
    return PhaseError(message, hint=hint)


@contextmanager
def connection(ctx: PhaseContext) -> Iterator[ssh.Connection]:
    """The phase's SSH connection to its node; SSH trouble ends the phase with a hint."""
    node = ctx.node
    if node is None:
        raise PhaseError(f"phase {ctx.phase.name} has no machine (its node was deleted)", hint="start a new operation")
    try:
        with connect_node(node) as conn:
            yield conn
    except ssh.CommandCancelled:
        raise
    except ssh.SSHError as exc:
        if ctx.cancel_event.is_set():
            raise OperationCancelled(str(exc)) from exc
        raise phase_error(exc, node) from None


def await_leftover(ctx: PhaseContext, conn: ssh.Connection, job: str) -> None:
    """Before re-running a phase, make sure no earlier attempt's command still runs there."""
    if ctx.attempt <= 1:
        return
    pgid = conn.job_pgid(job)
    if pgid is None:
        return
    ctx.log(
        f"The command of an earlier attempt is still running on {ctx.node.name} (process group {pgid}); "
        "waiting for it to end before running the phase again, so it never runs twice at once.",
        level="warning",
        pgid=pgid,
    )
    deadline = time.monotonic() + LEFTOVER_WAIT
    while conn.job_running(job):
        if ctx.cancel_event.wait(1.0):
            conn.kill_job(job)
            raise OperationCancelled("cancelled while waiting for an earlier attempt's command")
        if time.monotonic() > deadline:
            conn.kill_job(job)
            ctx.log(f"It was still running after {LEFTOVER_WAIT // 60} min; stopped it.", level="warning")
            return
    ctx.log("The earlier command has ended; running the phase again.")


def diagnose(lines: list[str], exit_status: int | None, phase: str) -> tuple[str, str]:
    """(summary, hint) for a failed kubeadm command; kubeadm.diagnose holds the knowledge."""
    try:
        from kubeadm.diagnose import diagnose as kubeadm_diagnose
    except ImportError:  # pragma: no cover - until kubeadm/diagnose.py lands
        kubeadm_diagnose = None
    if kubeadm_diagnose is not None:
        found = kubeadm_diagnose(lines, exit_status, phase=phase)
        if found is not None:
            return found.summary, found.hint
    parsed = [kubeadm_output.parse_line(line) for line in lines]
    checks = [f"{p.check}: {p.text}" for p in parsed if p.check and p.level == "error"]
    errors = [line.strip() for line, p in zip(lines, parsed, strict=True) if p.level == "error"]
    if checks:
        return "preflight checks failed: " + "; ".join(checks), (
            "fix what the failed checks name on the machine (or add the check to the ignore list if it does "
            "not matter there), then resume"
        )
    summary = errors[-1] if errors else (lines[-1].strip() if lines else "")
    if exit_status == 127:
        return summary or "kubeadm was not found", (
            "install kubeadm on the machine (on the PATH of the SSH user), then resume"
        )
    return summary, "read the phase's output above, fix the machine, then resume the operation"


def run(
    ctx: PhaseContext,
    conn: ssh.Connection,
    argv: Iterable[str],
    *,
    secrets: Secrets | None = None,
    timeout: float = COMMAND_TIMEOUT,
    label: str = "",
) -> ssh.CommandResult:
    """Run one command as the phase's job, streaming its output as events; non-zero exit fails
    the phase with kubeadm's error and a hint. ``argv`` must not contain secrets."""
    secrets = secrets or Secrets()
    argv = list(argv)
    command = shlex.join(argv)
    job = ctx.job
    await_leftover(ctx, conn, job)
    ctx.log(f"$ {secrets.redact(command)}", command=secrets.redact(command))
    tail: list[str] = []

    def on_line(line: str) -> None:
        line = secrets.redact(line)
        tail.append(line)
        if len(tail) > TAIL_LINES:
            del tail[0]
        ctx.output_line(line)

    result = conn.run(command, on_line=on_line, cancel=ctx.cancel_event, timeout=timeout, job=job)
    ctx.exit_status = result.exit_status
    if result.exit_status != 0:
        summary, hint = diagnose(tail, result.exit_status, ctx.phase.name)
        what = label or argv[0]
        status = f"exit status {result.exit_status}" if result.exit_status is not None else f"signal {result.signal}"
        message = f"{what} failed on {ctx.node.name} ({status})" + (f": {summary}" if summary else "")
        raise PhaseError(secrets.redact(message), hint=secrets.redact(hint), exit_status=result.exit_status)
    return result


# --- kubeadm's phase commands ------------------------------------------------------------------


def init_phase_argv(name: str, *, ignore_preflight_errors=()) -> list[str]:
    """The command of one ``kubeadm init`` phase with Kubeboard's config (kubeadm.workflow knows
    which phases run alone and which through the whole command with the others skipped).

    ``upload-certs`` without ``--upload-certs`` only says kubeadm skips it: with that flag kubeadm
    would make its own owner token for the kubeadm-certs Secret, a token Kubeboard does not know;
    Kubeboard writes that Secret itself when the cluster joins control planes that way."""
    if name == "upload-certs":
        return ["kubeadm", "init", "phase", "upload-certs", "--config", INIT_CONFIG]
    return workflow.init_phase_command(name, INIT_CONFIG, ignore_preflight_errors=tuple(ignore_preflight_errors))


def join_phase_argv(name: str, *, ignore_preflight_errors=()) -> list[str]:
    return workflow.join_phase_command(name, JOIN_CONFIG, ignore_preflight_errors=tuple(ignore_preflight_errors))


# --- before anything runs on a machine -----------------------------------------------------------


def check_before_kubeadm(ctx: PhaseContext, *, control_plane: bool) -> dict:
    """The machine check (nodes.checks, read-only), then refuse what kubeadm must not touch:
    an unreachable machine, an unaccepted/changed host key, a populated /etc/kubernetes, a
    missing kubeadm or one that cannot deploy the cluster's version. Returns the report."""
    node = ctx.node
    if node is None:
        raise PhaseError(f"phase {ctx.phase.name} has no machine (its node was deleted)", hint="start a new operation")
    report = check_machine(node, progress=lambda step: ctx.log(f"Check machine: {step}"))
    if report.get("error"):
        raise PhaseError(f"{node.name}: {report['error']}", hint=report.get("hint") or "fix the machine and resume")
    problems = refusals(report, node=node, kubernetes_version=ctx.cluster.kubernetes_version)
    kubeadm = report.get("binaries", {}).get("kubeadm", {})
    ctx.log(
        f"{node.name}: {report.get('os', {}).get('pretty_name', 'unknown OS')}, kernel {report.get('kernel')}, "
        f"{report.get('architecture')}; kubeadm {kubeadm.get('version') or 'missing'} at {kubeadm.get('path') or '-'}",
        facts={"kubeadm": kubeadm.get("version"), "path": kubeadm.get("path")},
    )
    for warning in report.get("warnings", []):
        ctx.log(warning, level="warning")
    if problems:
        for problem in problems:
            ctx.log(problem.message, level="error")
        first = problems[0]
        raise PhaseError("; ".join(problem.message for problem in problems), hint=first.hint)
    role = "control-plane" if control_plane else "worker"
    ctx.log(f"{node.name} can be used as a {role}: /etc/kubernetes is empty and kubeadm fits.")
    return report


@dataclass(frozen=True)
class Refusal:
    message: str
    hint: str


def refusals(report: dict, *, node, kubernetes_version: str) -> list[Refusal]:
    """What in a machine-check report forbids running kubeadm init/join there."""
    found: list[Refusal] = []
    etc = report.get("etc_kubernetes") or {}
    # Kubeboard's own config files (left by an earlier attempt) are rewritten, not mixed in.
    listed = etc.get("files") or []
    files = [path for path in listed if not path.startswith(CONFIG_DIR + "/")]
    count = int(etc.get("count") or 0) - (len(listed) - len(files))
    if etc.get("populated") and count > 0:
        shown = ", ".join(files[:5]) + (f" and {count - 5} more" if count > 5 else "")
        found.append(
            Refusal(
                f"{node.name}: /etc/kubernetes is not empty ({count} files: {shown}); "
                "kubeadm would mix this cluster with whatever is there — reset the machine first",
                f"reset the machine first (Reset node on its page if Kubeboard put a cluster there, else "
                f"`kubeadm reset -f` on {node.name}), then run Check machine and try again",
            )
        )
    binaries = report.get("binaries") or {}
    kubeadm = binaries.get("kubeadm") or {}
    if binaries and not kubeadm.get("path"):
        found.append(
            Refusal(
                f"{node.name}: kubeadm not found (PATH searched: {report.get('path') or 'empty'})",
                f"install kubeadm {kubernetes_version} on {node.name} in a directory on that PATH, then resume",
            )
        )
    elif kubeadm.get("path") and not kubeadm.get("version"):
        found.append(
            Refusal(
                f"{node.name}: {kubeadm['path']} did not report a version",
                f"check the kubeadm binary on {node.name} (`kubeadm version -o short`)",
            )
        )
    elif kubeadm.get("skew"):
        found.append(
            Refusal(
                f"{node.name}: {kubeadm['skew']}",
                f"install a kubeadm that can deploy Kubernetes {kubernetes_version} on {node.name}",
            )
        )
    return found


def facts_refusals(node, *, kubernetes_version: str) -> list[Refusal]:
    """Refusals known before an operation starts: the pinned host key, and the last machine
    check's findings (stale facts are re-checked live by the operation's first phase)."""
    found: list[Refusal] = []
    state = node.host_key_state
    if state == node.HostKeyState.CHANGED:
        found.append(
            Refusal(
                f"{node.name}: the host key changed (pinned {node.ssh_host_key_fingerprint}, now offered "
                f"{node.offered_host_key_fingerprint})",
                "if the machine was reinstalled on purpose, accept the new key on the node page",
            )
        )
    elif state != node.HostKeyState.PINNED:
        found.append(
            Refusal(
                f"{node.name}: its host key has not been accepted yet",
                "run Check machine, compare the fingerprint with the machine's and accept it",
            )
        )
    facts = node.facts or {}
    if facts.get("binaries") or facts.get("etc_kubernetes"):
        found.extend(refusals(facts, node=node, kubernetes_version=kubernetes_version))
    return found


# --- files -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteFile:
    path: str
    data: bytes = field(repr=False)
    mode: int = 0o600


def upload(ctx: PhaseContext, conn: ssh.Connection, files: Iterable[RemoteFile]) -> None:
    """Write files atomically over SFTP and say which (never what: they may hold keys)."""
    for item in files:
        ctx.check_cancelled()
        try:
            conn.write_file(item.path, item.data, mode=item.mode)
        except ssh.SSHError as exc:
            raise phase_error(exc, ctx.node) from None
        ctx.log(
            f"Wrote {item.path} (mode {item.mode:04o}, {len(item.data)} bytes)", path=item.path, mode=f"{item.mode:04o}"
        )


def authority_files(cluster, *, shared: bool = False) -> list[RemoteFile]:
    """The CA certificates and keys (and the service-account key pair) from Kubeboard's custody,
    as kubeadm expects them under /etc/kubernetes/pki (kubeadm.uploads: paths and modes). On the
    first control plane (``shared`` False) kubeadm then reuses them instead of generating its own
    ("Using existing ... certificate authority"); ``shared`` pre-seeds a joining control plane."""
    held = {authority.name: authority for authority in cluster.authorities.all()}
    missing = sorted(set(uploads.AUTHORITY_FILES) - set(held))
    if missing:
        raise PhaseError(
            f"Kubeboard holds no {', '.join(missing)} for cluster {cluster.name}",
            hint="prepare the cluster's identity first (it generates the certificate authorities)",
        )
    authorities = {
        name: (
            authority.public_key_pem if name == "sa" else authority.certificate_pem,
            authority.private_key.reveal(),
        )
        for name, authority in held.items()
        if name in uploads.AUTHORITY_FILES
    }
    make = uploads.control_plane_shared_files if shared else uploads.init_upload_files
    return [RemoteFile(item.path, item.data, item.mode) for item in make(authorities)]


def preflight_ignore_list(cluster, node) -> list[str]:
    """The cluster's ignore list plus the machine's own, in order, without duplicates ("all" wins)."""
    names: list[str] = []
    for name in list(cluster.ignore_preflight_errors or []) + list(node.ignore_preflight_errors or []):
        if name.lower() not in {n.lower() for n in names}:
            names.append(name)
    if any(name.lower() == "all" for name in names):
        return ["all"]
    return names
