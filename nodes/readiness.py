"""Whether a machine may be given to kubeadm init or join, and the preflight checks it skips.

The machine check itself is ``nodes.checks`` (read-only); this reads its report (live, in an
operation's first phase, or the last one stored on the node) and says what forbids kubeadm there,
each refusal with what to do next.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.phases import PhaseError
from kubeadm import nodeconfig, preflight
from kubeadm.components import KUBERNETES_DIR
from nodes import places
from nodes.checks import check_machine
from nodes.connect import phase_connection
from nodes.models import Node
from remote import commands
from remote.commands import RemoteFile

if TYPE_CHECKING:
    from operations.runner import PhaseContext


def check_before_kubeadm(ctx: PhaseContext, *, control_plane: bool, own_files: Sequence[RemoteFile] = ()) -> dict:
    """The machine check (nodes.checks, read-only), then refuse what kubeadm must not touch:
    an unreachable machine, an unaccepted/changed host key, a populated /etc/kubernetes, a
    missing kubeadm or one that cannot deploy the cluster's version. Returns the report.

    ``own_files``: what this operation itself writes into /etc/kubernetes before kubeadm runs. Found
    there byte for byte (an earlier attempt of the same work failed after writing them), they are
    written again, not mixed in: they do not count as a populated /etc/kubernetes. Anything else
    there, or one of them with other content, still does (nothing is ever removed here)."""
    node = ctx.node
    if node is None:
        raise PhaseError(f"phase {ctx.phase.name} has no machine (its node was deleted)", hint="start a new operation")
    report = check_machine(node, progress=lambda step: ctx.log(f"Check machine: {step}"))
    if report.get("error"):
        raise PhaseError(f"{node.name}: {report['error']}", hint=report.get("hint") or "fix the machine and resume")
    leftovers = _own_leftovers(ctx, report, own_files)
    if leftovers:
        ctx.log(
            f"{len(leftovers)} file(s) in {KUBERNETES_DIR} are exactly what this operation writes there "
            f"(left by an earlier attempt that failed): {', '.join(leftovers)}; they are written again, not mixed in.",
            files=leftovers,
        )
        etc = dict(report["etc_kubernetes"])
        etc["files"] = [path for path in etc["files"] if path not in leftovers]
        etc["count"] = int(etc.get("count") or 0) - len(leftovers)
        etc["populated"] = etc["count"] > 0
        report = {**report, "etc_kubernetes": etc}
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
    ctx.log(f"{node.name} can be used as a {role}: {KUBERNETES_DIR} is empty and kubeadm fits.")
    return report


def _own_leftovers(ctx: PhaseContext, report: dict, own_files: Sequence[RemoteFile]) -> list[str]:
    """The files of /etc/kubernetes (outside Kubeboard's config directory) if every one of them is
    one of ``own_files`` with the same SHA-256 on the machine; else none (the usual refusal)."""
    etc = report.get("etc_kubernetes") or {}
    listed = [path for path in etc.get("files") or [] if not path.startswith(nodeconfig.CONFIG_DIR + "/")]
    expected = {item.path: hashlib.sha256(item.data).hexdigest() for item in own_files}
    complete = int(etc.get("count") or 0) == len(etc.get("files") or [])  # the listing is not cut short
    if not listed or not complete or not set(listed) <= set(expected):
        return []
    with phase_connection(ctx) as conn:
        output = commands.quiet(conn, ["sha256sum", "--", *listed])
    found = {}
    for line in output.lines:
        digest, _, path = line.strip().partition("  ")
        found[path] = digest
    return listed if all(found.get(path) == expected[path] for path in listed) else []


@dataclass(frozen=True)
class Refusal:
    message: str
    hint: str


def refusals(report: dict, *, node: Node, kubernetes_version: str) -> list[Refusal]:
    """What in a machine-check report forbids running kubeadm init/join there."""
    found: list[Refusal] = []
    etc = report.get("etc_kubernetes") or {}
    # Kubeboard's own config files (left by an earlier attempt) are rewritten, not mixed in.
    listed = etc.get("files") or []
    files = [path for path in listed if not path.startswith(nodeconfig.CONFIG_DIR + "/")]
    count = int(etc.get("count") or 0) - (len(listed) - len(files))
    if etc.get("populated") and count > 0:
        shown = ", ".join(files[:5]) + (f" and {count - 5} more" if count > 5 else "")
        found.append(
            Refusal(
                f"{node.name}: {KUBERNETES_DIR} is not empty ({count} files: {shown}); "
                "kubeadm would mix this cluster with whatever is there — reset the machine first",
                f"reset the machine first: one click, {places.undo_join_text(node)}, if a join of it failed; "
                f"{places.reset_text(node)} if Kubeboard joined it or an init of it failed; else `kubeadm reset -f` "
                f"on {node.name}, then run Check machine on its page ({places.machine_page(node)}) and try again",
            )
        )
    binaries = report.get("binaries") or {}
    kubeadm = binaries.get("kubeadm") or {}
    if binaries and not kubeadm.get("path"):
        found.append(
            Refusal(
                f"{node.name}: kubeadm not found (PATH searched: {report.get('path') or 'empty'})",
                f"{places.prepare_text(node)} installs containerd and kubeadm {kubernetes_version} (or install "
                "kubeadm yourself in a directory on that PATH), then resume",
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


def needs_kubeadm(report: dict) -> bool:
    """Whether a machine-check report found no kubeadm, or one that cannot deploy the cluster's
    version: what Prepare installs. An empty report (never checked, or the check could not log in)
    says nothing either way."""
    binaries = report.get("binaries") or {}
    kubeadm = binaries.get("kubeadm") or {}
    return bool(binaries) and not (kubeadm.get("path") and kubeadm.get("version") and not kubeadm.get("skew"))


def facts_refusals(node: Node, *, kubernetes_version: str) -> list[Refusal]:
    """Refusals known before an operation starts: the pinned host key, and the last machine
    check's findings (stale facts are re-checked live by the operation's first phase)."""
    found: list[Refusal] = []
    state = node.host_key_state
    if state == node.HostKeyState.CHANGED:
        found.append(
            Refusal(
                f"{node.name}: the host key changed (pinned {node.ssh_host_key_fingerprint}, now offered "
                f"{node.offered_host_key_fingerprint})",
                places.linked_hint(
                    "if the machine was reinstalled on purpose, accept the new key on the node page", node
                ),
            )
        )
    elif state != node.HostKeyState.PINNED:
        found.append(
            Refusal(
                f"{node.name}: its host key has not been accepted yet",
                f"run Check machine on its page ({places.machine_page(node)}), compare the fingerprint with the "
                "machine's and accept it",
            )
        )
    facts = node.facts or {}
    if facts.get("binaries") or facts.get("etc_kubernetes"):
        found.extend(refusals(facts, node=node, kubernetes_version=kubernetes_version))
    return found


def preflight_ignore_list(cluster, node: Node, extra: Iterable[str] | None = ()) -> list[str]:
    """The list a run on ``node`` uses: the cluster's, the machine's own, then ``extra`` (the
    upgrade's), merged by kubeadm.preflight's rule (each name once; "all" in any of them wins)."""
    return preflight.merge_ignore_lists(cluster.ignore_preflight_errors, node.ignore_preflight_errors, extra)
