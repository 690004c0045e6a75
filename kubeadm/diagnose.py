"""What the user should do next when a kubeadm command fails on a machine.

``diagnose(lines, exit_status, phase=...)`` reads the command's output (stdout and stderr lines,
in order) and returns a Diagnosis (``summary``: what went wrong, with the specifics found in the
output — the port, the path, the hashes, the endpoint; ``hint``: the next step) or None when it
recognises nothing (the caller then shows kubeadm's own last error line).

Every rule matches text the real kubeadm v1.37.2 printed on the test bed for that failure
(tests/unit/kubeadm/data/real-v1.37.2/outputs/fail-*.txt, captured by taking a port, passing a
wrong pin, an unknown or expired token, a wrong certificate key, removing kubeadm from PATH ...),
or, where the test bed cannot produce the failure, kubeadm's source text (named in the rule).
Rules are tried in order: the most specific cause first (a machine that is not blank explains its
busy ports too).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

# The places hints send a person to, in words; Kubeboard's pages add their address to exactly
# these phrases (nodes.places.linked_hint), so keep them stable.
IGNORE_LISTS = "the ignore-preflight-errors list of the cluster or the machine"
RESET = "the Reset operation"


@dataclass(frozen=True)
class Diagnosis:
    code: str  # stable identifier, e.g. "port-in-use", "ca-pin-mismatch"
    summary: str  # what went wrong, with the specifics
    hint: str  # what to do next
    details: dict = field(default_factory=dict)  # the specifics as data (ports, paths, hashes, ...)


@dataclass(frozen=True)
class _Context:
    lines: list[str]
    text: str
    exit_status: int | None
    phase: str
    pins: tuple[str, ...]
    kubeadm: str

    def errors(self, check_prefix: str = "") -> list[tuple[str, str]]:
        """[(check name, message)] of the preflight ``[ERROR Name]: message`` lines."""
        found = []
        for line in self.lines:
            match = re.match(r"^\s*\[ERROR ([^\]]+)\]: ?(.*)$", line)
            if match and match.group(1).startswith(check_prefix):
                found.append((match.group(1), match.group(2)))
        return found


def _clean(line: str) -> str:
    return _ANSI.sub("", line).rstrip("\r\n")


def _resume(ctx: _Context) -> str:
    return f"resume the operation from {ctx.phase}" if ctx.phase else "resume the operation"


# --- rules (each returns a Diagnosis or None) --------------------------------------------------

_NOT_FOUND = re.compile(
    r"^(?:(?:ba|z|da)?sh|sudo|env)(?:: line \d+)?(?:: \d+)?: (?P<path>\S*kubeadm): "
    r"(?:command not found|not found|No such file or directory)\s*$"
)


def _kubeadm_missing(ctx: _Context) -> Diagnosis | None:
    for line in ctx.lines:
        match = _NOT_FOUND.match(line.strip())
        if match:
            path = match.group("path")
            where = "on the SSH user's PATH" if "/" not in path else f"at {path}"
            return Diagnosis(
                "kubeadm-missing",
                f"kubeadm was not found on the machine: `{path}` ({line.strip()})",
                f"install kubeadm {where} (the same minor version as the cluster), check it with "
                f"`{path} version`, then {_resume(ctx)}",
                {"path": path},
            )
    if ctx.exit_status == 127:
        return Diagnosis(
            "kubeadm-missing",
            f"the command could not be started (exit status 127: not found); tried `{ctx.kubeadm}`",
            f"install kubeadm on the machine (on the SSH user's PATH), then {_resume(ctx)}",
            {"path": ctx.kubeadm},
        )
    return None


def _not_blank(ctx: _Context) -> Diagnosis | None:
    # preflight FileAvailable--* ("... already exists") and DirAvailable--* ("... is not empty").
    paths = [
        msg.split(" ", 1)[0] for name, msg in ctx.errors() if name.startswith(("FileAvailable--", "DirAvailable--"))
    ]
    if not paths:
        return None
    ports = [name.removeprefix("Port-") for name, _ in ctx.errors("Port-")]
    busy = f"; ports {', '.join(ports)} are in use" if ports else ""
    return Diagnosis(
        "machine-not-blank",
        f"the machine already holds Kubernetes files: {', '.join(paths)}{busy}",
        f"it is (or was) part of a cluster: reset it first ({RESET}, or `kubeadm reset --force` on "
        "the machine, which also stops what holds the ports), or use a blank machine; then " + _resume(ctx),
        {"paths": paths, "ports": ports},
    )


_BIND = re.compile(r"listen tcp (?P<addr>[^\s:]*|\[[^\]]*\]):(?P<port>\d+): bind: address already in use")


def _port_in_use(ctx: _Context) -> Diagnosis | None:
    ports = [name.removeprefix("Port-") for name, _ in ctx.errors("Port-")]
    for match in _BIND.finditer(ctx.text):
        if match.group("port") not in ports:
            ports.append(match.group("port"))
    if not ports:
        return None
    plural = "s" if len(ports) > 1 else ""
    listed = ", ".join(ports)
    return Diagnosis(
        "port-in-use",
        f"port{plural} {listed} already in use on the machine",
        f"find what listens there (`ss -ltnp 'sport = :{ports[0]}'`) and stop it; if it is a leftover "
        f"kube-apiserver, etcd or kubelet, reset the machine ({RESET}); then {_resume(ctx)}",
        {"ports": ports},
    )


_PIN = re.compile(r"none of the public keys (?P<actual>.+?) (?:are|is) pinned")


def _pin_mismatch(ctx: _Context) -> Diagnosis | None:
    match = _PIN.search(ctx.text)
    if not match:
        return None
    actual = re.findall(r"sha256:[0-9a-f]{64}", match.group("actual"))
    expected = list(ctx.pins)
    expected_text = ", ".join(expected) if expected else "the pin given to the join (caCertHashes)"
    return Diagnosis(
        "ca-pin-mismatch",
        f"the API server's CA does not match the pinned hash: it presents {', '.join(actual)}, "
        f"expected {expected_text}",
        "the endpoint answers for another cluster, or the cluster's CA changed: check the control-plane "
        "endpoint the machine joins; if the CA really was replaced, update the cluster's CA pin in Kubeboard; "
        f"then {_resume(ctx)}",
        {"actual": actual, "expected": expected},
    )


_NO_JWS = re.compile(r'could not find a JWS signature in the cluster-info ConfigMap for token ID "(?P<id>[^"]+)"')


def _token(ctx: _Context) -> Diagnosis | None:
    match = _NO_JWS.search(ctx.text)
    if match:
        token_id = match.group("id")
        return Diagnosis(
            "token-unknown",
            f"the join token {token_id} is unknown to the cluster or has expired (cluster-info has no signature "
            "for it)",
            f"rotate the join token (create a new one for this node), then {_resume(ctx)}",
            {"token_id": token_id},
        )
    if "failed to verify JWS signature of received cluster info object" in ctx.text:
        return Diagnosis(
            "token-mismatch",
            "the join token's secret does not match the cluster's token with that id (cluster-info's signature "
            "does not verify)",
            f"rotate the join token (create a new one for this node), then {_resume(ctx)}",
        )
    # TLS bootstrap with a deleted/expired token (kubelet-start / kubelet-wait-bootstrap); source:
    # client-go's 401 text as kubeadm wraps it.
    if re.search(r"\bUnauthorized\b", ctx.text) and ctx.phase.startswith(
        ("kubelet-start", "kubelet-wait", "preflight")
    ):
        return Diagnosis(
            "token-rejected",
            "the API server rejected the join token (Unauthorized): it expired or was deleted",
            f"rotate the join token (create a new one for this node), then {_resume(ctx)}",
        )
    return None


_VERSION_LOW = re.compile(
    r"this version of kubeadm only supports deploying clusters with the control plane version >= "
    r"(?P<min>\S+)\. Current version: (?P<version>\S+)"
)


def _version(ctx: _Context) -> Diagnosis | None:
    match = _VERSION_LOW.search(ctx.text)
    if match:
        minimum, version = match.group("min").rstrip("."), match.group("version")
        return Diagnosis(
            "version-not-deployable",
            f"this kubeadm cannot deploy Kubernetes {version}: it deploys {minimum} and newer (its own minor and "
            "one older)",
            f"install the kubeadm release matching {version} on the machine (or choose a version this kubeadm "
            f"deploys), then {_resume(ctx)}",
            {"version": version, "minimum": minimum},
        )
    for name, message in ctx.errors("KubeletVersion"):
        return Diagnosis(
            "kubelet-version",
            f"the machine's kubelet does not fit the control plane: {message}",
            "install the kubelet matching the cluster's version (at most three minors older, never newer), "
            f"then {_resume(ctx)}",
            {"check": name},
        )
    return None


def _certificate_key(ctx: _Context) -> Diagnosis | None:
    if re.search(r'Secret "kubeadm-certs" was not found', ctx.text):
        return Diagnosis(
            "kubeadm-certs-missing",
            "the kubeadm-certs Secret is gone: the uploaded control-plane certificates expire two hours after "
            "upload-certs",
            "upload the certificates again with a fresh certificate key (Upload certificates, i.e. `kubeadm init "
            "phase upload-certs --upload-certs` on a control plane) and join with that key — or pre-seed the "
            f"shared certificates instead; then {_resume(ctx)}",
        )
    if "error decoding secret data with provided key" in ctx.text:
        return Diagnosis(
            "certificate-key-wrong",
            "the certificate key does not decrypt the kubeadm-certs Secret (it was uploaded with another key)",
            "upload the certificates again with a fresh certificate key and join with that key — or pre-seed the "
            f"shared certificates instead; then {_resume(ctx)}",
        )
    return None


def _shared_certs_missing(ctx: _Context) -> Diagnosis | None:
    if "The certificates that must be shared among control plane instances are provided" not in ctx.text:
        return None
    files = sorted(set(re.findall(r"couldn't load the (?:certificate|private key) file (\S+?):", ctx.text)))
    return Diagnosis(
        "shared-certificates-missing",
        "the shared control-plane certificates are not on the machine" + (f": {', '.join(files)}" if files else ""),
        "pre-seed them (the CA, front-proxy CA, etcd CA and service-account keys from Kubeboard's custody) or "
        f"join with a certificate key after Upload certificates; then {_resume(ctx)}",
        {"files": files},
    )


# "...: kube-scheduler check failed at https://127.0.0.1:10259/livez: Get ..." (v1.37.2), after
# "[control-plane-check] kube-scheduler is not healthy after 20.0s".
_CP_CHECK = re.compile(r"(?P<component>kube-[a-z-]+|etcd) check failed at (?P<url>https?://\S+?): ")


def _control_plane(ctx: _Context) -> Diagnosis | None:
    failed = [(m.group("component"), m.group("url")) for m in _CP_CHECK.finditer(ctx.text)]
    bootstrap = re.search(
        r"could not bootstrap the admin user in file admin\.conf: .*?(?:Post|Get) "
        r"\"(?P<url>https://[^/\"]+)",
        ctx.text,
    )
    if not failed and bootstrap:
        failed = [("kube-apiserver", bootstrap.group("url"))]
    if not failed:
        return None
    components = [c for c, _ in failed]
    logs = "; ".join(f"`crictl ps -a --name {c}` then `crictl logs <container id>`" for c in dict.fromkeys(components))
    return Diagnosis(
        "control-plane-unhealthy",
        f"{', '.join(dict.fromkeys(components))} did not become healthy ({failed[0][1]} did not answer)",
        f"read the logs of {', '.join(dict.fromkeys(components))} on the machine ({logs}); common causes: its "
        "port taken by another process, etcd not running, a certificate that does not match its key; fix it, "
        f"then {_resume(ctx)}",
        {"components": components, "urls": [u for _, u in failed]},
    )


def _kubelet(ctx: _Context) -> Diagnosis | None:
    # kubeadm's waiter (util/apiclient/wait.go WaitForKubelet) and kubeletFailTempl.
    if not re.search(
        r"The kubelet is not healthy|kubelet is not running|curl -sSL http://127\.0\.0\.1:10248/healthz' "
        r"failed|failed while waiting for the kubelet|timed out waiting for the condition.*kubelet",
        ctx.text,
    ):
        return None
    return Diagnosis(
        "kubelet-unhealthy",
        "the kubelet did not become healthy (http://127.0.0.1:10248/healthz)",
        "check the kubelet on the machine (`systemctl status kubelet`, `journalctl -xeu kubelet`): it must be "
        f"installed, enabled and able to reach the container runtime; then {_resume(ctx)}",
    )


_DISCOVERY = re.compile(
    r"failed to request the cluster-info ConfigMap: Get \"https://(?P<endpoint>[^/\"]+)[^\"]*\": (?P<cause>.+)$"
)


def _discovery(ctx: _Context) -> Diagnosis | None:
    for line in ctx.lines:
        match = _DISCOVERY.search(line)
        if match:
            endpoint, cause = match.group("endpoint"), match.group("cause").strip()
            return Diagnosis(
                "endpoint-unreachable",
                f"the machine cannot reach the control-plane endpoint {endpoint}: {cause}",
                f"check from the machine that {endpoint} answers (control plane running, address and port right, "
                f"no firewall or missing route in between), then {_resume(ctx)}",
                {"endpoint": endpoint, "cause": cause},
            )
    if "couldn't validate the identity of the API Server" in ctx.text and re.search(
        r"timed out|deadline exceeded|i/o timeout", ctx.text
    ):
        return Diagnosis(
            "endpoint-unreachable",
            "discovery timed out: the control-plane endpoint did not answer",
            f"check that the control-plane endpoint answers from the machine, then {_resume(ctx)}",
        )
    return None


def _node_exists(ctx: _Context) -> Diagnosis | None:
    # phases/join/kubelet.go runKubeletStartJoinPhase
    match = re.search(r'a Node with name "(?P<name>[^"]+)" and status "Ready" already exists in the cluster', ctx.text)
    if not match:
        return None
    return Diagnosis(
        "node-name-taken",
        f"a Ready node named {match.group('name')} already exists in the cluster",
        "delete that Node from the cluster if it is this machine's old registration (or give the machine "
        f"another name), then {_resume(ctx)}",
        {"node": match.group("name")},
    )


def _no_control_plane_endpoint(ctx: _Context) -> Diagnosis | None:
    # phases/join/preflight.go
    if "doesn't have a stable controlPlaneEndpoint address" not in ctx.text:
        return None
    return Diagnosis(
        "no-control-plane-endpoint",
        "the cluster has no controlPlaneEndpoint, so no second control plane can join",
        "control planes can only be added to a cluster created with a stable control-plane endpoint "
        "(a load balancer or DNS name in front of the API servers)",
    )


def _preflight(ctx: _Context) -> Diagnosis | None:
    errors = ctx.errors()
    if not errors:
        return None
    names = [name for name, _ in errors]
    return Diagnosis(
        "preflight-failed",
        "preflight checks failed: " + "; ".join(f"{name}: {msg}" for name, msg in errors),
        "fix the machine so these checks pass; only if you are sure they do not matter there, add "
        f"{', '.join(names)} to {IGNORE_LISTS}; then " + _resume(ctx),
        {"checks": names},
    )


_RULES: tuple[Callable[[_Context], Diagnosis | None], ...] = (
    _kubeadm_missing,
    _not_blank,
    _version,
    _port_in_use,
    _pin_mismatch,
    _token,
    _certificate_key,
    _shared_certs_missing,
    _discovery,
    _node_exists,
    _no_control_plane_endpoint,
    _control_plane,
    _kubelet,
    _preflight,
)


def diagnose(
    lines: Sequence[str], exit_status: int | None, *, phase: str, pins: Sequence[str] = (), kubeadm: str = "kubeadm"
) -> Diagnosis | None:
    """The cause of a failed kubeadm command and what to do next, or None.

    ``lines``: the command's output lines (any order of stdout/stderr; ANSI escapes are ignored);
    ``exit_status``: None when it did not exit (signal, lost connection); 0 means success and gives
    None. ``phase``: the phase it ran (named in the hint). ``pins``: the CA pins the join used, so a
    pin mismatch can show expected next to actual. ``kubeadm``: the binary path Kubeboard ran.
    """
    if exit_status == 0:
        return None
    cleaned = [_clean(line) for line in lines]
    ctx = _Context(cleaned, "\n".join(cleaned), exit_status, phase, tuple(pins), kubeadm)
    for rule in _RULES:
        found = rule(ctx)
        if found is not None:
            return found
    return None
