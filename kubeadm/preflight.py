"""kubeadm's preflight checks: what a check name looks like, and the ignore-list rules.

Check names are what kubeadm prints in ``[ERROR <Name>]`` / ``[WARNING <Name>]`` and accepts in
``--ignore-preflight-errors`` / ``nodeRegistration.ignorePreflightErrors``
(cmd/kubeadm/app/preflight/checks.go; ``FileContent--proc-sys-net-ipv4-ip_forward`` is the
FileContentCheck name with "/" replaced by "-"). kubeadm compares them case-insensitively and
refuses "all" mixed with other names (validation.ValidateIgnorePreflightErrors).

The one home of the rules, for three situations:
* ``ignore_list_problem``: one list a person writes (a cluster's, a machine's, the upgrade's):
  refused with the reason if a name is malformed, listed twice, or mixed with "all";
* ``merge_ignore_lists``: the list one run uses, made of several such lists (the cluster's, then
  the machine's, then the upgrade's): duplicates dropped, and "all" in any of them wins;
* ``normalize_ignore_list``: a list about to be written for kubeadm (its configuration, its
  flag): duplicates dropped, a malformed name or "all" mixed with names refused.

The test bed's own lists (the checks it cannot pass without a container runtime) are test-bed
data: tools/testbed/preflight.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from kubeadm.errors import ConfigError

ALL = "all"
# kubeadm's check names: "NumCPU", "Port-6443", "FileAvailable--etc-kubernetes-manifests-etcd.yaml", "all".
CHECK_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{0,252}$")


def parse_check_list(text: str) -> list[str]:
    """A list as a person types it ("CRI, ImagePull" or one per line) as a list of names."""
    return [part.strip() for part in re.split(r"[,\s]+", text or "") if part.strip()]


def ignore_list_problem(names: object) -> str | None:
    """What is wrong with an ignore list a person wrote, in words they can act on; None if nothing."""
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        return "The preflight ignore list must be a list of check names."
    bad = [name for name in names if not CHECK_NAME.match(name)]
    if bad:
        return (
            f"Not a kubeadm preflight check name: {', '.join(repr(b) for b in bad)} "
            "(names look like NumCPU, Port-6443, FileAvailable--etc-kubernetes-manifests-etcd.yaml, or all)."
        )
    lowered = [name.lower() for name in names]
    if ALL in lowered and len(names) > 1:
        return "'all' already ignores every check: list it alone, as kubeadm requires."
    duplicates = sorted({name for name in names if lowered.count(name.lower()) > 1})
    if duplicates:
        return f"Listed twice: {', '.join(duplicates)}."
    return None


def _first_spellings(names: Iterable[str]) -> list[str]:
    """Each name once, compared case-insensitively as kubeadm does, in its first spelling."""
    result: list[str] = []
    seen: set[str] = set()
    for name in names:
        if name.lower() not in seen:
            seen.add(name.lower())
            result.append(name)
    return result


def merge_ignore_lists(*lists: Iterable[str] | None) -> list[str]:
    """The list one run uses, from several lists in order (cluster, machine, upgrade): each
    name once, and ["all"] if any of them says "all" (it already ignores the others)."""
    names = _first_spellings(name for names in lists for name in (names or ()))
    return [ALL] if any(name.lower() == ALL for name in names) else names


def normalize_ignore_list(names: Iterable[str], *, field: str = "ignorePreflightErrors") -> list[str]:
    """Validate and de-duplicate (case-insensitively, first spelling kept) an ignore list.

    "all" alone stays ["all"]; "all" mixed with names is refused as kubeadm refuses it
    ("don't specify individual checks if 'all' is used"). Names must be check-name shaped
    (``CHECK_NAME``): a comma inside one entry would silently become two on a command line.
    """
    stripped: list[str] = []
    for raw in names:
        if not isinstance(raw, str) or not raw.strip():
            raise ConfigError(field, "preflight check names such as Port-6443 or Swap", raw)
        name = raw.strip()
        if not CHECK_NAME.match(name):
            raise ConfigError(field, "one check name per entry (letters, digits, '.', '_' and '-')", name)
        stripped.append(name)
    result = _first_spellings(stripped)
    if ALL in {name.lower() for name in result} and len(result) > 1:
        raise ConfigError(
            field,
            "either 'all' alone or individual check names",
            result,
            hint="kubeadm refuses individual checks together with 'all'",
        )
    return result


def ignore_flag(names: Iterable[str]) -> list[str]:
    """``["--ignore-preflight-errors=A,B"]``, or [] for an empty list."""
    normalized = normalize_ignore_list(names)
    return ["--ignore-preflight-errors=" + ",".join(normalized)] if normalized else []
