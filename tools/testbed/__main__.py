"""CLI: python -m tools.testbed up|down|status|ssh|runner|artifacts.

Examples (as root, from the repository root)::

    python -m tools.testbed up --nodes 2           # sandbox "kbtb" on 10.213.0.0/24
    python -m tools.testbed up --nodes 3 --init    # + runners, hollow kubelets, kubeadm init on node1
    python -m tools.testbed status
    python -m tools.testbed ssh 1 -- hostname      # guarded SSH to node1
    python -m tools.testbed runner 1               # start the static-pod runner on node1
    python -m tools.testbed down                   # remove everything
    python -m tools.testbed up --nodes 2 --bare    # blank machines with private roots (issue 19)
    python -m tools.testbed up --nodes 3 --private-root  # provisioned, private roots, keepalived/haproxy (issue 21)
    python -m tools.testbed artifacts /srv/set     # air-gapped artifact set from the cached binaries

The sandbox's name and subnet default to ``$KUBEBOARD_TESTBED_NAME`` and
``$KUBEBOARD_TESTBED_SUBNET`` (else kbtb and 10.213.0.0/24): a walkthrough's commands
then read the same whatever sandbox they drive (the README's test-bed walkthrough is run
as written by a test, on a sandbox of its own).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from tools.testbed.binaries import BinariesMissing, find_binaries, selected_version
from tools.testbed.cluster import ControlPlane, new_bootstrap_token
from tools.testbed.guard import NotRoutedViaBridge
from tools.testbed.sandbox import Sandbox, SandboxError, known_sandboxes, load

DEFAULT_NAME = "kbtb"
DEFAULT_SUBNET = "10.213.0.0/24"


def default_name() -> str:
    return os.environ.get("KUBEBOARD_TESTBED_NAME") or DEFAULT_NAME


def default_subnet() -> str:
    return os.environ.get("KUBEBOARD_TESTBED_SUBNET") or DEFAULT_SUBNET


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.testbed", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--name", default=default_name(), help=f"sandbox name (default $KUBEBOARD_TESTBED_NAME, else {DEFAULT_NAME})"
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", parents=[common], help="create a sandbox (cleans a leftover of the same name)")
    up.add_argument("--nodes", type=int, default=1)
    up.add_argument(
        "--subnet", default=default_subnet(), help=f"default $KUBEBOARD_TESTBED_SUBNET, else {DEFAULT_SUBNET}"
    )
    up.add_argument(
        "--runner", action="store_true", help="start the static-pod runner (+ hollow kubelet) on every node"
    )
    up.add_argument("--init", action="store_true", help="also run `kubeadm init` on node1 (implies --runner)")
    up.add_argument(
        "--bare",
        action="store_true",
        help="blank machines (issue 19): a private root per node, no kubeadm/kubelet/kubectl/crictl/containerd, "
        "the systemctl test double; to be prepared (not with --runner/--init)",
    )
    up.add_argument(
        "--private-root",
        action="store_true",
        help="provisioned machines with a private root per node, the systemctl test double and the runner "
        "(hollow kubelet and init) started by up: for keepalived/haproxy as services (issue 21; not with "
        "--runner/--init)",
    )
    sub.add_parser("down", parents=[common], help="remove the sandbox completely")
    st = sub.add_parser("status", parents=[common], help="show sandboxes and leftovers")
    st.add_argument("--json", action="store_true")
    ssh = sub.add_parser("ssh", parents=[common], help="run a command on a node over guarded SSH")
    ssh.add_argument("node", type=int)
    ssh.add_argument("command", nargs=argparse.REMAINDER)
    rn = sub.add_parser("runner", parents=[common], help="start the static-pod runner on a node")
    rn.add_argument("node", type=int)
    sub.add_parser(
        "artifacts", add_help=False, help="write an air-gapped artifact set: artifacts DIR [--version vX.Y.Z]"
    )
    if (argv if argv is not None else sys.argv[1:])[:1] == ["artifacts"]:
        from tools.testbed import artifacts

        return artifacts.main((argv if argv is not None else sys.argv[1:])[1:])
    args = parser.parse_args(argv)

    try:
        if args.cmd == "up":
            if args.bare and (args.runner or args.init):
                raise SandboxError(
                    "--bare machines start blank: their runner is their init (started by up); prepare them, "
                    "then kubeadm init/join (no --runner/--init)"
                )
            if args.private_root and (args.runner or args.init or args.bare):
                raise SandboxError(
                    "--private-root machines get their runner (hollow kubelet and init) from up: drive "
                    "kubeadm init/join yourself or from the dashboard (no --runner/--init/--bare)"
                )
            bins = find_binaries() if (args.runner or args.init) else None
            sb = Sandbox(
                name=args.name, subnet=args.subnet, size=args.nodes, bare=args.bare, private_root=args.private_root
            ).up()
            if bins is not None:
                kubelet = os.access(bins / "kubemark", os.X_OK)
                for node in sb.nodes:
                    pid = node.start_runner(bins, kubelet=kubelet)
                    print(
                        f"testbed: runner on {node.name} pid {pid}"
                        + (" (with hollow kubelet)" if kubelet else " (no kubemark: no kubelet)")
                    )
            if args.init and bins is not None:
                cp = ControlPlane(
                    node=sb.node(1), bin_dir=bins, version=selected_version(), token=new_bootstrap_token()
                )
                print(cp.kubeadm_init())
                print(f"admin kubeconfig (host): {cp.admin_conf}")
            print(f"key: {sb.key}\nknown_hosts: {sb.known_hosts}")
            for node in sb.nodes:
                print(f"{node.name}: ssh -i {sb.key} -o UserKnownHostsFile={sb.known_hosts} root@{node.address}")
            return 0
        if args.cmd == "down":
            return 1 if load(args.name).down() else 0
        if args.cmd == "status":
            names = known_sandboxes()
            report = [load(n).status() for n in names]
            if args.json:
                print(json.dumps(report, indent=2))
            elif not report:
                print("no sandboxes")
            for r in report if not args.json else []:
                print(f"{r['name']}: subnet {r['subnet']} bridge {r['bridge']} state {r['state_dir']}")
                for n in r["nodes"]:  # type: ignore[union-attr]
                    print(f"  {n['name']} {n['address']} netns {n['netns']} {'up' if n['present'] else 'MISSING'}")
                print(f"  present: {'; '.join(r['leftovers']) or 'nothing'}")  # type: ignore[arg-type]
            return 0
        if args.cmd == "ssh":
            sb = load(args.name)
            if not 1 <= args.node <= len(sb.nodes):
                raise SandboxError(f"sandbox {args.name} has nodes 1..{len(sb.nodes)}")
            cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
            os.execvp("ssh", sb.node(args.node).ssh_command(" ".join(cmd)))
        if args.cmd == "runner":
            sb = load(args.name)
            print(sb.node(args.node).start_runner(find_binaries()))
            return 0
    except (SandboxError, NotRoutedViaBridge, BinariesMissing) as exc:
        print(f"testbed: error: {exc}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
