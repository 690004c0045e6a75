"""A stand-in for the kubelet's static pods on a sandbox node.

Runs *inside* a node's namespaces (started by ``Node.start_runner``). It polls
the node's /etc/kubernetes/manifests once a second and, for every Pod
manifest there, runs each container's command + args as a plain process:

* the binary comes from the build cache, chosen by the image name
  (``registry.k8s.io/kube-apiserver:v1.37.2`` -> ``<cache>/v1.37.2/bin/kube-apiserver``
  when that version is cached, else ``--bin-dir``; ``.../etcd:3.7.0-0`` -> the
  cached etcd whose ``--version`` is 3.7.0, else ``--bin-dir/etcd``);
* hostPath volumes: the process already sees the node's private
  /etc/kubernetes, /var/lib/etcd, ...; a volumeMount whose mountPath differs
  from its hostPath is bind-mounted in a private mount namespace for that
  process only;
* a changed manifest (content hash) restarts its processes, a removed one
  stops them (SIGTERM, then SIGKILL after the grace period, at most 10 s);
* an exited process is restarted with back-off (restartPolicy Always).

What it does NOT emulate (see tools/README.md): images and image pulls,
container root filesystems, cgroups/resources, probes (only logged), init
containers, non-hostNetwork pods (everything shares the node's network),
mirror pods in the API server, pod status, user/security contexts,
seccomp, env valueFrom, and any kubelet API.
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

PRIVATE_PREFIXES = ("/etc/kubernetes", "/var/lib/kubelet", "/var/lib/etcd", "/run")
MAX_GRACE = 10.0
# PIDs (process-group leaders) this node's runner started, in the node-private
# /run: a runner that was killed hard leaves its pods running; the next one
# stops them first instead of colliding with them on their ports.
CHILDREN = Path("/run/kubeboard-runner.children")
BACKOFF_MAX = 30.0


def with_private_mounts(script: str) -> list[str]:
    """The argv prefix that runs ``script`` (bind mounts) in a mount namespace of its own, then
    execs the command that follows it there: the mounts are seen by that process only."""
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", f'{script} && exec "$@"', "sh"]


def log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} runner: {msg}", flush=True)


def _under_private(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in PRIVATE_PREFIXES)


@dataclass
class Container:
    pod: str
    name: str
    argv: list[str]
    env: dict[str, str]
    workdir: str
    log_path: Path
    grace: float
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = 0.0

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            out.write(f"\n==== {time.ctime()} start #{self.restarts}: {shlex.join(self.argv)}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.workdir,
                start_new_session=True,  # own process group: stop kills its children too
            )
        self.started_at = time.monotonic()
        with open(CHILDREN, "a") as fh:
            fh.write(f"{self.proc.pid}\n")
        log(f"started {self.pod}/{self.name} pid {self.proc.pid}: {shlex.join(self.argv)} (log {self.log_path})")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        pid = self.proc.pid
        log(f"stopping {self.pod}/{self.name} pid {pid}")
        try:
            os.killpg(pid, signal.SIGTERM)
            self.proc.wait(timeout=self.grace)
        except subprocess.TimeoutExpired:
            log(f"{self.pod}/{self.name} ignored SIGTERM for {self.grace}s; SIGKILL")
            os.killpg(pid, signal.SIGKILL)
            self.proc.wait()
        except ProcessLookupError:
            pass

    def _log_tail(self, size: int = 4096) -> str:
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(max(0, fh.seek(0, os.SEEK_END) - size))
                return fh.read().decode(errors="replace")
        except OSError:
            return ""

    def check(self) -> None:
        """Restart with back-off if the process exited (restartPolicy Always)."""
        now = time.monotonic()
        if self.proc is not None and self.proc.poll() is not None:
            code = self.proc.returncode
            ran = now - self.started_at
            self.proc = None
            self.restarts += 1
            if ran > 60:
                self.restarts = 1  # it ran a while: reset the back-off like the kubelet
            delay = min(BACKOFF_MAX, 2.0 ** min(self.restarts - 1, 5))
            self.next_start = now + delay
            log(
                f"{self.pod}/{self.name} exited with {code} after {ran:.1f}s; "
                f"restarting in {delay:.0f}s (see {self.log_path})"
            )
            if "address already in use" in self._log_tail():
                log(
                    f"{self.pod}/{self.name}: a port it needs is already in use in this node "
                    "(a process left from an earlier runner?). Recreate the sandbox: "
                    "`python -m tools.testbed down` then `up`."
                )
        if self.proc is None and now >= self.next_start:
            self.start()


@dataclass
class StaticPod:
    path: Path
    digest: str
    name: str
    containers: list[Container] = field(default_factory=list)

    def stop(self) -> None:
        for c in self.containers:
            c.stop()


KUBELET_CONF = Path("/etc/kubernetes/kubelet.conf")
BOOTSTRAP_CONF = Path("/etc/kubernetes/bootstrap-kubelet.conf")
KUBELET_CONFIG = Path("/var/lib/kubelet/config.yaml")
KUBELET_FLAGS = Path("/var/lib/kubelet/kubeadm-flags.env")
# kubemark makes its root and static-pod dirs under a hard-coded /tmp; it gets
# this node-private directory bind-mounted as its /tmp (its own mount
# namespace), so they land in HOLLOW_TMP/hollow-kubelet.*/static-pods*.
# (The node's /tmp stays the host's: the repo or a venv may live there.)
HOLLOW_TMP = Path("/var/lib/kubelet/hollow-tmp")
# A kubelet "package" installed on this node (tools.testbed.sandbox.PACKAGES_BIN): when present,
# the hollow kubelet runs that binary, restarted when it changes (systemctl restart kubelet).
PACKAGED_KUBELET = Path("/run/testbed/bin/kubelet")
MANIFESTS = Path("/etc/kubernetes/manifests")


# Never route through an http(s)_proxy from the environment.
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class _HealthzProxy(http.server.BaseHTTPRequestHandler):
    """127.0.0.1:10248/healthz, answered from the hollow kubelet's read-only port.

    kubeadm waits on the kubelet's healthz port (10248); kubemark's hollow
    kubelet does not start that server, but serves /healthz on 10255.
    """

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        try:
            with _NO_PROXY.open("http://127.0.0.1:10255/healthz", timeout=5) as resp:
                body, code = resp.read(), resp.status
        except Exception as exc:  # kubelet not (yet) up
            body, code = f"hollow kubelet not healthy: {exc}".encode(), 503
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


class HollowKubelet:
    """Supervises kubemark's hollow kubelet as the node's "kubelet service".

    Like systemd's kubelet unit under kubeadm it waits until kubeadm has
    written /var/lib/kubelet/config.yaml and a kubeconfig (kubelet.conf, or
    bootstrap-kubelet.conf for TLS bootstrap), and restarts the kubelet when
    kubeadm rewrites config.yaml or kubeadm-flags.env. The hollow kubelet
    uses a fake container runtime: pods it is given are not really run.
    """

    def __init__(self, kubemark: Path, log_dir: Path) -> None:
        self.kubemark = kubemark
        self.log_dir = log_dir
        self.container: Container | None = None
        self.digest = ""
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 10248), _HealthzProxy)
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def binary(self) -> Path:
        if os.access(PACKAGED_KUBELET, os.X_OK):
            return PACKAGED_KUBELET.resolve()
        return self.kubemark

    def node_name(self) -> str:
        if KUBELET_FLAGS.exists():
            m = re.search(r"--hostname-override=(\S+?)[\"\s]", KUBELET_FLAGS.read_text())
            if m:
                return m.group(1)
        return os.uname().nodename

    def check(self) -> None:
        ready = KUBELET_CONFIG.exists() and (KUBELET_CONF.exists() or BOOTSTRAP_CONF.exists())
        if not ready:
            if self.container is not None:
                self.container.stop()
                self.container = None
                log("kubelet config removed: hollow kubelet stopped")
            return
        binary = self.binary()
        digest = hashlib.sha256(
            b"".join(p.read_bytes() for p in (KUBELET_CONFIG, KUBELET_FLAGS) if p.exists()) + bytes(binary)
        ).hexdigest()
        if self.container is not None and digest != self.digest:
            log(f"kubelet configuration or binary changed: restarting hollow kubelet ({binary})")
            self.container.stop()
            self.container = None
        if self.container is None:
            self.digest = digest
            # A fresh dir per start, so the static-pod dir found below is its own.
            shutil.rmtree(HOLLOW_TMP, ignore_errors=True)
            HOLLOW_TMP.mkdir(parents=True)
            HOLLOW_TMP.chmod(0o1777)
            argv = [
                *with_private_mounts(f"mount --bind {HOLLOW_TMP} /tmp"),
                str(binary),
                "--morph=kubelet",
                f"--name={self.node_name()}",
                f"--kubeconfig={KUBELET_CONF}",
                "--cert-dir=/var/lib/kubelet/pki",
                "--use-host-image-service=false",
                "--v=2",
            ]
            if not KUBELET_CONF.exists() and BOOTSTRAP_CONF.exists():
                argv.append(f"--bootstrap-kubeconfig={BOOTSTRAP_CONF}")
            self.container = Container(
                pod="kubelet",
                name="hollow-kubelet",
                argv=argv,
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "TMPDIR": "/tmp"},
                workdir="/",
                log_path=self.log_dir / "kubelet.log",
                grace=MAX_GRACE,
            )
        self.container.check()
        self.sync_static_pods()

    def sync_static_pods(self) -> None:
        """Copy /etc/kubernetes/manifests into the hollow kubelet's static-pod dir.

        kubemark hard-codes a temp static-pod dir. Mirroring the manifests there
        makes it create the mirror pods (etcd-NODE, kube-apiserver-NODE, ...)
        with kubeadm's annotations, which kubeadm reads (e.g. check-etcd finds
        etcd endpoints that way). The fake runtime only pretends to run them;
        the real processes are the runner's.
        """
        dirs = list(HOLLOW_TMP.glob("hollow-kubelet.*/static-pods*"))
        if not dirs:
            return
        target = max(dirs, key=lambda d: d.stat().st_mtime)  # the running kubelet's (after restarts)
        wanted = {}
        if MANIFESTS.is_dir():
            for p in MANIFESTS.iterdir():
                if p.is_file() and not p.name.startswith(".") and p.suffix in (".yaml", ".yml", ".json"):
                    wanted[p.name] = p.read_bytes()
        for p in target.iterdir():
            if p.name not in wanted:
                p.unlink()
        for name, data in wanted.items():
            dst = target / name
            if not dst.exists() or dst.read_bytes() != data:
                tmp = target / f".{name}.tmp"
                tmp.write_bytes(data)
                tmp.rename(dst)  # atomic: the kubelet never reads a half-written file

    def stop(self) -> None:
        if self.container is not None:
            self.container.stop()


class ConditionUnmet(Exception):
    """A unit's Condition*= does not hold: systemd skips the start (the unit stays inactive and
    ``systemctl start`` still succeeds), e.g. keepalived's ConditionFileNotEmpty on its config."""


# The Condition*= settings the runner checks, as systemd evaluates them (a leading ``!`` negates).
CONDITIONS = {
    "ConditionPathExists": lambda p: os.path.exists(p),
    "ConditionFileNotEmpty": lambda p: os.path.isfile(p) and os.path.getsize(p) > 0,
}


# Type=notify daemons that notify only a systemd that is PID 1 (keepalived's
# check_parent_systemd() reads /proc/1/stat for "1 (systemd) "; a node's PID 1 is the host's):
# they are ready once they wrote their PID file with the main PID, which keepalived does when
# its startup is done.
READY_PIDFILE = {"keepalived.service": "/run/keepalived.pid"}


class Service:
    """One unit the systemctl test double started (runner ``--systemd``, bare nodes).

    ExecStartPre lines run first (a leading ``-`` ignores their failure), then ExecStart under
    supervision: restarted per ``Restart=`` (always / on-failure) after ``RestartSec=``. A
    ``Type=notify`` unit gets a NOTIFY_SOCKET and is *active* only once it sent READY=1, as
    under systemd, so ``systemctl start containerd`` returns when containerd serves.
    ``ConditionPathExists=``/``ConditionFileNotEmpty=`` are checked first; ``reload()`` runs
    ExecReload with ``$MAINPID``.
    """

    def __init__(self, name: str, log_dir: Path) -> None:
        from tools.testbed import systemctl as sd

        self.name = name
        self.unit = sd.load_unit(name)
        for key, holds in CONDITIONS.items():
            for spec in self.unit.get("Unit", key):
                negate = spec.startswith("!")
                if holds(spec.lstrip("!")) == negate:
                    raise ConditionUnmet(f"start condition failed: {key}={spec} was not met")
        self.log_dir = log_dir
        self.notify = self.unit.last("Service", "Type", "simple") == "notify"
        self.restart = self.unit.last("Service", "Restart", "no")
        self.ready = not self.notify
        self.failed = ""
        self.sock: socket.socket | None = None
        commands = self.unit.command("ExecStart")
        if not commands:
            raise ValueError(f"{name} ({self.unit.path}) has no ExecStart")
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", **self.unit.environment()}
        self.env = env
        if self.notify:
            path = Path(sd.STATE) / f"notify-{name}.sock"
            path.unlink(missing_ok=True)
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self.sock.bind(str(path))
            self.sock.setblocking(False)
            env["NOTIFY_SOCKET"] = str(path)
        # systemd runs every command of a unit in WorkingDirectory= ("/" by default). Set it
        # explicitly: the runner, entered into the node by nsenter --wd, has a working directory
        # outside the node's private root, where haproxy -c fails ("Impossible to retrieve
        # startup directory name").
        self.workdir = self.unit.last("Service", "WorkingDirectory", "/")
        for pre in self.unit.command("ExecStartPre"):
            ignore = pre[0] == "-"
            argv = pre[1:] if ignore else pre
            try:
                code = subprocess.run(argv, env=env, cwd=self.workdir, capture_output=True, check=False).returncode
            except OSError as exc:
                code = 127
                log(f"{name}: ExecStartPre {shlex.join(argv)}: {exc}")
            if code != 0 and not ignore:
                raise ValueError(f"{name}: ExecStartPre {shlex.join(argv)} exited with {code}")
        argv = commands[-1]
        argv = argv[1:] if argv[0] == "-" else argv
        grace = float(re.sub(r"s$", "", self.unit.last("Service", "TimeoutStopSec", str(MAX_GRACE))) or MAX_GRACE)
        self.container = Container(
            pod="systemd",
            name=name,
            argv=argv,
            env=env,
            workdir=self.workdir,
            log_path=log_dir / f"{name}.log",
            grace=min(grace, MAX_GRACE),
        )
        self.container.start()

    def check(self) -> None:
        c = self.container
        if self.sock is not None:
            try:
                while True:
                    msg = self.sock.recv(4096).decode(errors="replace")
                    if "READY=1" in msg.split("\n"):
                        self.ready = True
                        log(f"{self.name}: READY=1")
            except BlockingIOError:
                pass
        pidfile = READY_PIDFILE.get(self.name)
        if pidfile and not self.ready and c.proc is not None:
            try:
                self.ready = Path(pidfile).read_text().strip() == str(c.proc.pid)
            except OSError:
                pass
            if self.ready:
                log(f"{self.name}: ready ({pidfile} names main PID {c.proc.pid}; it never notifies a non-systemd init)")
        if c.proc is not None and c.proc.poll() is not None:
            code = c.proc.returncode
            if self.restart == "no" or (self.restart == "on-failure" and code == 0):
                self.failed = "" if code == 0 else f"exited with {code}"
                log(f"{self.name} exited with {code} (Restart={self.restart}: not restarted)")
                c.proc = None
                c.next_start = float("inf")
                return
            self.ready = not self.notify
        c.check()

    def reload(self) -> str:
        """Run the unit's ExecReload lines in order with ``$MAINPID``, as ``systemctl reload``
        does (haproxy's: check the configuration, then USR2 to the master, which starts new
        workers and lets the old ones finish their connections). Returns what failed, or ''."""
        pid = self.pid()
        if pid is None:
            return "not running"
        for line in self.unit.command("ExecReload", {"MAINPID": str(pid)}):
            ignore = line[0] == "-"
            argv = line[1:] if ignore else line
            try:
                proc = subprocess.run(
                    argv, env=self.env, cwd=self.workdir, capture_output=True, text=True, timeout=90, check=False
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                if ignore:
                    continue
                return f"ExecReload {shlex.join(argv)}: {exc}"
            log(f"{self.name}: reload: {shlex.join(argv)} exited with {proc.returncode}")
            if proc.returncode != 0 and not ignore:
                out = (proc.stdout + proc.stderr).strip()[-500:]
                return f"ExecReload {shlex.join(argv)} exited with {proc.returncode}: {out}"
        return ""

    def state(self) -> str:
        if self.failed:
            return "failed"
        if self.container.proc is None:
            return "activating" if self.container.next_start != float("inf") else "inactive"
        return "active" if self.ready else "activating"

    def pid(self) -> int | None:
        return self.container.proc.pid if self.container.proc is not None else None

    def stop(self) -> None:
        self.container.stop()
        self.container.next_start = float("inf")
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class Services:
    """The node's init on a bare node: acts on what the systemctl test double asks for.

    ``/run/testbed/systemd/<unit>.want`` (written by the double) says start / restart / stop
    with a sequence number; this writes ``<unit>.status`` (state, main PID, the sequence
    number it acted on) so the double can wait for the job and answer is-active/status.
    ``kubelet.service`` runs the hollow kubelet (kubemark) from the unit's ExecStart binary,
    once kubeadm has configured it, like HollowKubelet below; its real command line is logged.
    """

    def __init__(self, log_dir: Path) -> None:
        from tools.testbed import systemctl as sd

        self.sd = sd
        self.log_dir = log_dir
        self.services: dict[str, Service] = {}
        self.kubelet: HollowKubelet | None = None
        self.kubelet_on = False
        self.acted: dict[str, int] = {}
        self.notes: dict[str, str] = {}
        self.skipped: set[str] = set()  # start condition unmet: inactive, not failed
        self.reload_failed: dict[str, str] = {}
        sd.STATE.mkdir(parents=True, exist_ok=True)

    def adopt_kubelet(self, kubelet: HollowKubelet) -> None:
        """A provisioned machine with a private root (runner ``--kubelet --systemd``): its running
        hollow kubelet is ``kubelet.service`` (the unit ``up`` wrote, enabled as kubeadm's
        packages leave it), so ``systemctl restart kubelet`` restarts it and reads kubelet.conf
        afresh, as the local-proxy endpoint needs."""
        self.kubelet = kubelet
        self.kubelet_on = True
        self.acted["kubelet.service"] = 0

    def act(self, name: str, action: str) -> None:
        self.reload_failed.pop(name, None)
        if action == "reload":
            svc = self.services.get(name)
            failed = svc.reload() if svc is not None else "not running"
            if failed:
                log(f"{name}: reload failed: {failed}")
                self.reload_failed[name] = failed
            return
        self.notes.pop(name, None)
        self.skipped.discard(name)
        if name == "kubelet.service":
            if action in ("stop", "restart") and self.kubelet is not None:
                self.kubelet.stop()
                self.kubelet.container = None
            self.kubelet_on = action in ("start", "restart")
            if self.kubelet_on:
                unit = self.sd.load_unit(name)
                commands = unit.command("ExecStart")
                if not commands:
                    self.notes[name] = f"{unit.path} has no ExecStart"
                    self.kubelet_on = False
                    return
                binary = Path(commands[-1][0].lstrip("-"))
                log(f"kubelet.service: unit command {shlex.join(commands[-1])}; runs the hollow kubelet {binary}")
                if self.kubelet is None:
                    self.kubelet = HollowKubelet(binary, self.log_dir)
                self.kubelet.kubemark = binary
            return
        current = self.services.pop(name, None)
        if current is not None:
            current.stop()
        if action in ("start", "restart"):
            try:
                self.services[name] = Service(name, self.log_dir)
            except ConditionUnmet as exc:
                log(f"{name}: {exc}; not started")
                self.notes[name] = str(exc)
                self.skipped.add(name)
            except (ValueError, OSError) as exc:
                log(f"{name}: cannot start: {exc}")
                self.notes[name] = str(exc)

    def state(self, name: str) -> tuple[str, int | None]:
        if name == "kubelet.service":
            if not self.kubelet_on:
                return ("failed" if name in self.notes else "inactive"), None
            c = self.kubelet.container if self.kubelet is not None else None
            if c is not None and c.proc is not None and c.proc.poll() is None:
                return "active", c.proc.pid
            return "activating", None  # waiting for kubeadm's configuration, as kubelet crash-loops
        if name in self.skipped:
            return "inactive", None
        if name in self.notes:
            return "failed", None
        svc = self.services.get(name)
        if svc is None:
            return "inactive", None
        return svc.state(), svc.pid()

    def check(self) -> None:
        for want_path in sorted(self.sd.STATE.glob("*.want")):
            name = want_path.name[: -len(".want")]
            want = self.sd.read_json(want_path)
            seq = int(want.get("seq", 0))  # type: ignore[call-overload]
            if self.acted.get(name) != seq:
                log(f"systemctl {want.get('action')} {name} (#{seq})")
                self.act(name, str(want.get("action")))
                self.acted[name] = seq
        for svc in self.services.values():
            svc.check()
        if self.kubelet is not None and self.kubelet_on:
            self.kubelet.check()
        for name, seq in self.acted.items():
            state, pid = self.state(name)
            status_path = self.sd.STATE / f"{name}.status"
            old = self.sd.read_json(status_path)
            # A notify unit's start is answered once it is ready (or failed), like systemd's job.
            answered = seq if state != "activating" or name == "kubelet.service" else old.get("seq", 0)
            new = {
                "state": state,
                "pid": pid,
                "seq": answered,
                "since": old.get("since") if old.get("state") == state else time.time(),
                "note": self.notes.get(name, ""),
                "reload_failed": self.reload_failed.get(name, ""),
            }
            if new != old:
                self.sd.write_json(status_path, new)

    def stop(self) -> None:
        if self.kubelet is not None:
            self.kubelet.stop()
        for svc in self.services.values():
            svc.stop()


class Runner:
    def __init__(
        self,
        manifests: Path,
        bin_dir: Path,
        cache_root: Path,
        log_dir: Path,
        kubelet: HollowKubelet | None = None,
        services: Services | None = None,
    ) -> None:
        self.kubelet = kubelet
        self.services = services
        if kubelet is not None and services is not None:
            # One owner: the init thread supervises the kubelet as its unit (no second check).
            services.adopt_kubelet(kubelet)
            self.kubelet = None
        self.manifests = manifests
        self.bin_dir = bin_dir
        self.cache_root = cache_root
        self.log_dir = log_dir
        self.pods: dict[Path, StaticPod] = {}
        self._etcd_versions: dict[Path, str] = {}
        self.stopping = False

    def resolve_binary(self, image: str) -> Path:
        """Map a container image to a cached binary (images themselves are not used)."""
        ref = image.split("@", 1)[0]
        last = ref.rsplit("/", 1)[-1]
        component, _, tag = last.partition(":")
        candidates = []
        if tag.startswith("v"):
            candidates.append(self.cache_root / tag / "bin" / component)
        elif component == "etcd" and tag:
            # etcd images are tagged "3.7.0-0": find the cached etcd of that release.
            candidates += self.cached_etcd(tag.split("-", 1)[0])
        candidates.append(self.bin_dir / component)
        for path in candidates:
            if os.access(path, os.X_OK):
                return path
        raise FileNotFoundError(
            f"no binary for image {image!r} (looked for {', '.join(map(str, candidates))}); "
            "build it with tools/build-k8s.sh"
        )

    def cached_etcd(self, version: str) -> list[Path]:
        """Cached etcd binaries whose ``etcd --version`` is ``version``."""
        found = []
        for etcd in sorted(self.cache_root.glob("*/bin/etcd")):
            if etcd not in self._etcd_versions:
                proc = subprocess.run([str(etcd), "--version"], capture_output=True, text=True, check=False)
                m = re.search(r"etcd Version: (\S+)", proc.stdout)
                self._etcd_versions[etcd] = m.group(1) if m else ""
            if self._etcd_versions[etcd] == version:
                found.append(etcd)
        if not found:
            log(f"no cached etcd {version} under {self.cache_root}; using {self.bin_dir / 'etcd'}")
        return found

    def load(self, path: Path, digest: str) -> StaticPod:
        doc = yaml.safe_load(path.read_text())
        if not isinstance(doc, dict) or doc.get("kind") != "Pod":
            raise ValueError(f"{path} is not a Pod manifest")
        meta = doc.get("metadata") or {}
        spec = doc.get("spec") or {}
        pod_name = str(meta.get("name") or path.stem)
        if not spec.get("hostNetwork"):
            log(f"{pod_name}: hostNetwork is not true; runner runs it in the node's network anyway")
        if spec.get("initContainers"):
            log(f"{pod_name}: initContainers are not run by this runner")
        volumes = {v["name"]: v["hostPath"] for v in spec.get("volumes") or [] if "hostPath" in v}
        grace = min(float(spec.get("terminationGracePeriodSeconds", 30)), MAX_GRACE)
        pod = StaticPod(path=path, digest=digest, name=pod_name)
        for c in spec.get("containers") or []:
            binary = self.resolve_binary(c.get("image", ""))
            command = list(c.get("command") or [])
            args = [str(a) for a in c.get("args") or []]
            # command[0] names the program inside the image; run the cached binary instead.
            argv = [str(binary)] + [str(a) for a in command[1:]] + args if command else [str(binary)] + args
            binds = []
            for m in c.get("volumeMounts") or []:
                hp = volumes.get(m.get("name"))
                if hp is None:
                    log(f"{pod_name}/{c['name']}: volume {m.get('name')} is not hostPath; ignored")
                    continue
                src, dst = hp["path"], m["mountPath"]
                if not os.path.exists(src):
                    if hp.get("type") == "DirectoryOrCreate" and _under_private(src):
                        os.makedirs(src, mode=0o755, exist_ok=True)
                    else:
                        log(
                            f"{pod_name}/{c['name']}: hostPath {src} ({hp.get('type', '')}) missing; "
                            "not created on the shared host filesystem, mount skipped"
                        )
                        continue
                if os.path.realpath(src) != os.path.realpath(dst):
                    if not os.path.exists(dst):
                        if not _under_private(dst):
                            log(
                                f"{pod_name}/{c['name']}: mountPath {dst} missing; not created on the "
                                "shared host filesystem, mount skipped"
                            )
                            continue
                        if os.path.isdir(src):
                            os.makedirs(dst, exist_ok=True)
                        else:
                            os.makedirs(os.path.dirname(dst), exist_ok=True)
                            Path(dst).touch()
                    binds.append((src, dst))
            if binds:
                # Bind the differing paths in a mount namespace of this process only.
                script = " && ".join(f"mount --bind {shlex.quote(s)} {shlex.quote(d)}" for s, d in binds)
                argv = with_private_mounts(script) + argv
            env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
            for e in c.get("env") or []:
                if "value" in e:
                    env[e["name"]] = str(e["value"])
                else:
                    log(f"{pod_name}/{c['name']}: env {e.get('name')} uses valueFrom; not emulated")
            probes = [
                f"{k}={(c[k].get('httpGet') or {}).get('path', '?')}"
                for k in ("startupProbe", "livenessProbe", "readinessProbe")
                if k in c
            ]
            if probes:
                log(f"{pod_name}/{c['name']}: probes not run: {', '.join(probes)}")
            pod.containers.append(
                Container(
                    pod=pod_name,
                    name=c["name"],
                    argv=argv,
                    env=env,
                    workdir=c.get("workingDir") or "/",
                    log_path=self.log_dir / f"{pod_name}_{c['name']}.log",
                    grace=grace,
                )
            )
        return pod

    def scan(self) -> None:
        seen: dict[Path, str] = {}
        if self.manifests.is_dir():
            for p in sorted(self.manifests.iterdir()):
                # Like the kubelet: skip dotfiles and other extensions.
                if p.name.startswith(".") or p.suffix not in (".yaml", ".yml", ".json") or not p.is_file():
                    continue
                try:
                    seen[p] = hashlib.sha256(p.read_bytes()).hexdigest()
                except OSError:
                    continue
        for path in list(self.pods):
            if path not in seen:
                log(f"manifest {path} removed: stopping {self.pods[path].name}")
                self.pods.pop(path).stop()
        for path, digest in seen.items():
            current = self.pods.get(path)
            if current is not None and current.digest == digest:
                continue
            if current is not None:
                log(f"manifest {path} changed: restarting {current.name}")
                current.stop()
                del self.pods[path]
            try:
                pod = self.load(path, digest)
            except Exception as exc:  # a bad manifest must not stop the others
                log(f"cannot run {path}: {exc}")
                self.pods[path] = StaticPod(path=path, digest=digest, name=path.stem)
                continue
            log(f"manifest {path}: pod {pod.name}, {len(pod.containers)} container(s)")
            self.pods[path] = pod
        for pod in self.pods.values():
            for c in pod.containers:
                c.check()
        if self.kubelet is not None:
            self.kubelet.check()

    def serve_services(self) -> None:
        """The node's init, in a thread of its own: systemd and the kubelet are independent on a
        real machine, so a static Pod that takes its grace period to stop (the loop above waits
        for it) must not hold up ``systemctl stop keepalived`` issued at the same moment."""
        assert self.services is not None
        while not self.stopping:
            try:
                self.services.check()
            except Exception as exc:  # noqa: BLE001 (the init never dies of one unit's error)
                log(f"systemd: {exc!r}")
            time.sleep(0.1)

    def stop_orphans(self) -> None:
        if not CHILDREN.exists():
            return
        own_netns = os.stat("/proc/self/ns/net").st_ino
        for line in CHILDREN.read_text().split():
            pid = int(line)
            # PIDs are host-wide (no PID namespace): only touch a process group
            # that still lives in this node's network namespace.
            try:
                if os.stat(f"/proc/{pid}/ns/net").st_ino != own_netns or os.getpgid(pid) != pid:
                    continue
                os.killpg(pid, signal.SIGKILL)
                log(f"stopped process group {pid} left by an earlier runner")
            except OSError:  # gone already
                pass
        CHILDREN.unlink()

    def run(self) -> None:
        def _term(signum: int, _frame: object) -> None:
            self.stopping = True

        signal.signal(signal.SIGTERM, _term)
        signal.signal(signal.SIGINT, _term)
        self.stop_orphans()
        log(f"watching {self.manifests} (bin dir {self.bin_dir}, logs {self.log_dir}, pid {os.getpid()})")
        init = None
        if self.services is not None:
            init = threading.Thread(target=self.serve_services, name="systemd", daemon=True)
            init.start()
        while not self.stopping:
            self.scan()
            time.sleep(0.25 if self.services is not None else 1.0)
        if init is not None:
            init.join()
        log("stopping all static pods")
        if self.kubelet is not None:
            self.kubelet.stop()
        if self.services is not None:
            self.services.stop()
        for pod in self.pods.values():
            pod.stop()
        log("stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="static-pod runner for a sandbox node")
    parser.add_argument("--manifests", type=Path, default=Path("/etc/kubernetes/manifests"))
    parser.add_argument("--bin-dir", type=Path, required=True)
    parser.add_argument(
        "--cache-root", type=Path, default=Path(os.environ.get("KUBEBOARD_K8S_CACHE", "/var/cache/kubeboard/k8s"))
    )
    parser.add_argument("--log-dir", type=Path, required=True)
    parser.add_argument(
        "--kubelet", action="store_true", help="also act as the kubelet service with kubemark's hollow kubelet"
    )
    parser.add_argument(
        "--systemd",
        action="store_true",
        help="also be the node's init for the systemctl test double (private-root nodes: containerd, kubelet, keepalived, haproxy)",
    )
    args = parser.parse_args(argv)
    kubelet = HollowKubelet(args.bin_dir / "kubemark", args.log_dir) if args.kubelet else None
    services = Services(args.log_dir) if args.systemd else None
    Runner(args.manifests, args.bin_dir, args.cache_root, args.log_dir, kubelet, services).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
