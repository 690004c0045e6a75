"""Failover time of a highly available control-plane endpoint (issue 21) on the test bed.

A real 3-control-plane cluster (kubeadm init and two control-plane joins, real etcd and API
servers, the hollow kubelet) plus one worker, on provisioned test-bed machines with private roots
(``Sandbox(private_root=True)``): keepalived and haproxy are Debian's packages run as services
through the systemctl test double, configured with the files Kubeboard renders
(``endpoints.render``: VRRPv3 at 0.5 s, nopreempt, the /readyz track script, haproxy in TCP mode
with 1 s health checks, ``redispatch``).

* **Virtual IP**: ``controlPlaneEndpoint`` is ``VIP:8443``. Each trial stops the VIP holder's API
  server (its static Pod manifest moved away, as a stopped kubelet would leave it) and its
  keepalived (``systemctl stop``; or ``--kill``: the machine lost, SIGKILL to keepalived's process
  group and its eth0 down, restored as after a reboot), then times ``kubectl get --raw /readyz`` from the host
  through the VIP until it answers and keeps answering for 3 s. Then the node is restored.
* **Local proxy**: the worker's haproxy on 127.0.0.1:8443 spreads over the three API servers; its
  kubelet's kubeconfig points there. Each trial stops one API server (in turn) and times kubectl
  run on the worker through its local proxy the same way; the worker's Lease must keep being
  renewed (its kubelet keeps reporting).

Figures: median and maximum over the trials (goal: median <= 3 s, maximum <= 5 s), and the ratio
to a healthy kubectl call through the same endpoint measured in the same run. Prints, asserts
nothing. Needs root, the test bed and the Debian packages (tools/setup-testbed.sh); sandbox
``kbtbfo`` on 10.213.66.0/24.

    python bench/bench_failover.py [--trials 10] [--modes vip,local-proxy] [--kill]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from endpoints import layout, render  # noqa: E402  (ROOT is on sys.path now)
from tools.testbed.binaries import find_binaries, selected_version  # noqa: E402
from tools.testbed.cluster import ControlPlane, kubeadm_join, new_bootstrap_token  # noqa: E402
from tools.testbed.guard import assert_routed_via_bridge  # noqa: E402
from tools.testbed.sandbox import Node, Sandbox  # noqa: E402

NAME = "kbtbfo"
SUBNET = "10.213.66.0/24"
VIP = "10.213.66.100"
VIP_SPEC = layout.Spec(mode=layout.VIP, vip=VIP, interface="eth0", port=layout.DEFAULT_PORT, router_id=66)
PROXY_SPEC = layout.Spec(mode=layout.LOCAL_PROXY, port=layout.DEFAULT_PORT)
MANIFEST = "/etc/kubernetes/manifests/kube-apiserver.yaml"
PARKED = "/etc/kubernetes/kube-apiserver.yaml.stopped"
STABLE = 3.0  # an answer counts once every call for this long after it answered too
GIVE_UP = 60.0
# kubectl's --request-timeout does not bound the TLS dial: a call still running after this is a
# failure (a client would give up and retry).
CALL_TIMEOUT = 2.0


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def write(node: Node, path: str, text: str, mode: str = "644") -> None:
    node.ssh(f"install -D -m {mode} /dev/stdin {path} <<'KUBEBOARD_EOF'\n{text}KUBEBOARD_EOF")


def restart_hollow_kubelet(node: Node) -> None:
    """Kill ``node``'s hollow kubelet (its runner starts it again, reading kubelet.conf afresh).
    Found by the node's network namespace: PIDs are the host's, never pkill by name."""
    netns = os.stat(f"/run/netns/{node.netns}").st_ino
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{pid}/ns/net").st_ino != netns:
                continue
            if b"kubemark" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]:
                os.kill(int(pid), 9)
        except OSError:
            continue


def install_proxy(node: Node, spec: layout.Spec, planes: list[Node], index: int) -> None:
    backends = [layout.Backend(p.name, p.address) for p in planes]
    write(node, layout.HAPROXY_CFG, render.haproxy_cfg(spec, cluster=NAME, backends=backends))
    if spec.mode == layout.VIP:
        peers = [p.address for p in planes]
        conf = render.keepalived_conf(
            spec, cluster=NAME, node=node.name, address=node.address, priority=layout.priority(index), peers=peers
        )
        write(node, layout.KEEPALIVED_CONF, conf)
        write(node, layout.CHECK_SCRIPT, render.check_script(spec, address=node.address), mode="755")
        node.ssh("systemctl enable --now haproxy && systemctl enable --now keepalived")
    else:
        node.ssh("systemctl enable --now haproxy")


def holder(sb: Sandbox, planes: list[Node]) -> Node | None:
    held = [n for n in planes if VIP in n.exec(["ip", "-o", "addr", "show", "dev", "eth0"]).stdout]
    return held[0] if len(held) == 1 else None


def wait(what: str, condition: Callable[[], object], timeout: float = 240) -> object:
    deadline = time.monotonic() + timeout
    while True:
        answer = condition()
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: {what} not within {timeout:.0f}s")
        time.sleep(0.2)


def kubectl_host(kubectl: Path, kubeconfig: Path, sb: Sandbox, address: str) -> Callable[[], bool]:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}

    def call() -> bool:
        assert_routed_via_bridge(address, sb.bridge)
        try:
            proc = subprocess.run(
                [str(kubectl), f"--kubeconfig={kubeconfig}", "--request-timeout=1s", "get", "--raw", "/readyz"],
                capture_output=True,
                text=True,
                env=env,
                check=False,
                timeout=CALL_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            return False
        return proc.returncode == 0 and proc.stdout.strip() == "ok"

    return call


def kubectl_on(node: Node, kubectl: Path, kubeconfig: str) -> Callable[[], bool]:
    def call() -> bool:
        try:
            proc = node.exec(
                [str(kubectl), f"--kubeconfig={kubeconfig}", "--request-timeout=1s", "get", "--raw", "/readyz"],
                check=False,
                timeout=CALL_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            return False
        return proc.returncode == 0 and proc.stdout.strip() == "ok"

    return call


def outage(call: Callable[[], bool], started: float) -> tuple[float, int]:
    """(seconds from ``started`` until ``call`` answered and kept answering for STABLE s, number
    of failed calls). Calls run back to back, as a client retrying at once would."""
    answered_at: float | None = None
    failures = 0
    while time.monotonic() - started < GIVE_UP:
        ok = call()
        now = time.monotonic()
        if not ok:
            failures += 1
            answered_at = None
        elif answered_at is None:
            answered_at = now
        elif now - answered_at >= STABLE:
            return answered_at - started, failures
    raise SystemExit(f"bench: no stable answer within {GIVE_UP:.0f}s")


def healthy_latency(call: Callable[[], bool], n: int = 10) -> float:
    took = []
    for _ in range(n):
        began = time.monotonic()
        if not call():
            raise SystemExit("bench: the endpoint does not answer while healthy")
        took.append(time.monotonic() - began)
    return statistics.median(took)


def api_ready(cp: ControlPlane, node: Node) -> Callable[[], bool]:
    def check() -> bool:
        proc = cp.kubectl(f"--server=https://{node.address}:6443", "get", "--raw", "/readyz", check=False)
        return proc.returncode == 0 and proc.stdout.strip() == "ok"

    return check


def backends_up(node: Node, want: int) -> Callable[[], bool]:
    """haproxy on ``node`` reports ``want`` API servers UP (its statistics, on the loopback)."""
    from endpoints import status

    def check() -> bool:
        url = f"http://127.0.0.1:{layout.STATS_PORT}{layout.STATS_PATH}"
        proc = node.exec(["curl", "-s", "--max-time", "2", "--noproxy", "*", url], check=False)
        return sum(b.up for b in status.backend_health(proc.stdout.splitlines())) == want

    return check


def stop_api_server(node: Node) -> None:
    node.exec(["mv", MANIFEST, PARKED])


def start_api_server(node: Node) -> None:
    node.exec(["mv", PARKED, MANIFEST])


def lease_renewed(cp: ControlPlane, name: str) -> str:
    proc = cp.kubectl("-n", "kube-node-lease", "get", "lease", name, "-o", "jsonpath={.spec.renewTime}", check=False)
    return proc.stdout.strip()


def lease_renewed_since(cp: ControlPlane, name: str, before: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lease_renewed(cp, name) not in ("", before):
            return True
        time.sleep(0.5)
    return False


def report(label: str, times: list[float], failures: list[int], baseline: float) -> None:
    median, worst = statistics.median(times), max(times)
    print(
        f"{label:<38} trials {len(times):>2}  median {median:5.2f} s  max {worst:5.2f} s  "
        f"(goal <= 3 s / <= 5 s: {'met' if median <= 3 and worst <= 5 else 'NOT met'})  "
        f"failed calls {sum(failures)}  healthy kubectl {baseline * 1000:.0f} ms  "
        f"median/healthy {median / baseline:.1f}x"
    )
    print(f"{'':<38} each: {', '.join(f'{t:.2f}' for t in times)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--modes", default="vip,local-proxy")
    parser.add_argument(
        "--kill", action="store_true", help="lose the holder: SIGKILL keepalived and take its eth0 down (not a stop)"
    )
    args = parser.parse_args()
    modes = args.modes.split(",")
    missing = [b for b in ("/usr/sbin/keepalived", "/usr/sbin/haproxy") if not os.access(b, os.X_OK)]
    if missing:
        raise SystemExit(f"bench: {' '.join(missing)} missing: run bash tools/setup-testbed.sh (Debian packages)")
    bins = find_binaries()
    kubectl = bins / "kubectl"
    sb = Sandbox(name=NAME, subnet=SUBNET, size=4, private_root=True).up(log=log)
    try:
        planes, worker = sb.nodes[:3], sb.node(4)
        began = time.monotonic()
        for i, node in enumerate(planes):
            install_proxy(node, VIP_SPEC, planes, i)
        cp = ControlPlane(
            node=planes[0],
            bin_dir=bins,
            version=selected_version(),
            token=new_bootstrap_token(),
            endpoint=layout.control_plane_endpoint(VIP_SPEC),
            cert_sans=tuple(layout.cert_sans(PROXY_SPEC)),  # the worker's local proxy too
        )
        log("kubeadm init on node1 with controlPlaneEndpoint " + cp.endpoint)
        cp.kubeadm_init()
        for node in planes[1:]:
            log(f"control-plane join of {node.name} through the VIP")
            kubeadm_join(node, bins, cp.join_command(control_plane=True))
        log("worker join of node4 through the VIP")
        kubeadm_join(worker, bins, cp.join_command())
        for node in planes:
            wait(f"{node.name}'s haproxy to see 3 API servers", backends_up(node, 3))
        log(f"cluster up in {time.monotonic() - began:.0f}s; VIP held by {holder(sb, planes).name}")

        if "vip" in modes:
            call = kubectl_host(kubectl, cp.admin_conf, sb, VIP)
            baseline = healthy_latency(call)
            times, failures = [], []
            for trial in range(args.trials):
                node = wait("a VIP holder", lambda: holder(sb, planes), 30)
                pid = node.exec(["systemctl", "show", "-p", "MainPID", "--value", "keepalived"]).stdout.strip()
                began = time.monotonic()
                stop_api_server(node)
                if args.kill:
                    # The machine is lost: keepalived dies with its VRRP child (no priority-0
                    # goodbye) and the machine drops off the segment (eth0 down).
                    node.exec(["kill", "-KILL", "--", f"-{pid}"])
                    node.exec(["ip", "link", "set", "dev", "eth0", "down"])
                else:
                    node.exec(["systemctl", "stop", "keepalived"])
                took, failed = outage(call, began)
                new = holder(sb, [p for p in planes if p is not node])  # a lost node keeps its stale VIP
                log(f"vip trial {trial + 1}: {node.name} down, {new.name if new else '?'} answers after {took:.2f}s")
                times.append(took)
                failures.append(failed)
                if args.kill:  # back as after a reboot: no VIP left on its eth0
                    node.exec(["ip", "addr", "del", f"{VIP}/32", "dev", "eth0"])
                    node.exec(["ip", "link", "set", "dev", "eth0", "up"])
                start_api_server(node)
                wait(f"{node.name}'s API server back", api_ready(cp, node))
                node.exec(["systemctl", "start", "keepalived"])
                for plane in planes:
                    wait(f"{plane.name}'s haproxy to see 3 API servers", backends_up(plane, 3), 60)
            vip_label = "virtual IP (keepalived " + ("killed)" if args.kill else "stopped)")

        if "local-proxy" in modes:
            install_proxy(worker, PROXY_SPEC, planes, 3)
            wait("the worker's haproxy to see 3 API servers", backends_up(worker, 3))
            # The kubelet's kubeconfig points at the local proxy; the hollow kubelet restarts on it.
            conf = worker.host_path("/etc/kubernetes/kubelet.conf")
            conf.write_text(render.with_server(conf.read_text(), layout.local_proxy_url(PROXY_SPEC)))
            restart_hollow_kubelet(worker)
            call = kubectl_on(worker, kubectl, "/etc/kubernetes/kubelet.conf")
            wait("kubectl through the worker's local proxy", call, 60)
            proxy_baseline = healthy_latency(call)
            proxy_times, proxy_failures, renewed = [], [], []
            for trial in range(args.trials):
                node = planes[trial % 3]
                lease_before = lease_renewed(cp, worker.name)
                began = time.monotonic()
                stop_api_server(node)
                took, failed = outage(call, began)
                proxy_times.append(took)
                proxy_failures.append(failed)
                log(f"local-proxy trial {trial + 1}: {node.name}'s API server down, answers after {took:.2f}s")
                # The worker's kubelet keeps renewing its Lease (every 10 s) through the proxy.
                renewed.append(lease_renewed_since(cp, worker.name, lease_before, 30))
                start_api_server(node)
                wait(f"{node.name}'s API server back", api_ready(cp, node))
                wait("the worker's haproxy to see 3 API servers", backends_up(worker, 3), 60)

        print()
        print(
            f"failover on the test bed (3 control planes + 1 worker, {args.trials} trials, 2 cores, load {os.getloadavg()[0]:.1f})"
        )
        if "vip" in modes:
            report(vip_label, times, failures, baseline)
        if "local-proxy" in modes:
            report("local proxy (one API server stopped)", proxy_times, proxy_failures, proxy_baseline)
            print(f"{'':<38} worker Lease renewed during every outage: {all(renewed)}")
    finally:
        sb.down(log=log)


if __name__ == "__main__":
    main()
