"""The machine check's reading of a machine's answers (nodes.checks.analyse), without a machine."""

from __future__ import annotations

from nodes.checks import analyse, listening_ports

TCP = [
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
    "   0: 0100007F:2A02 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0",
    "   1: 00000000:1922 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0",
    # An established connection from port 2379 is not a listener.
    "   2: 0100007F:094B 0100007F:D0E1 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0 100 0 0 10 0",
    "  sl  local_address                         remote_address                        st",
    "   0: 00000000000000000000000000000000:7918 00000000000000000000000000000000:0000 0A 0 0",
]


def script_output(*, kubeadm="v1.37.2", kubelet=None, kubectl="Client Version: v1.37.2", files=(), tcp=TCP):
    lines = [
        "@@os Reading the operating system",
        'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"',
        "ID=debian",
        'VERSION_ID="12"',
        "@@kernel",
        "6.1.0-18-amd64",
        "@@arch",
        "x86_64",
        "@@path Looking for kubeadm, kubelet and kubectl",
        "/opt/k8s/bin:/usr/bin:/bin",
        "@@which kubeadm",
        *(["/opt/k8s/bin/kubeadm"] if kubeadm else []),
        "@@which kubelet",
        *(["/usr/bin/kubelet"] if kubelet else []),
        "@@which kubectl",
        *(["/opt/k8s/bin/kubectl"] if kubectl else []),
        "@@version kubeadm",
        *([kubeadm] if kubeadm else []),
        "@@version kubelet",
        *([f"Kubernetes {kubelet}"] if kubelet else []),
        "@@version kubectl",
        *([kubectl, "Kustomize Version: v5.8.1"] if kubectl else []),
        "@@etc Listing /etc/kubernetes",
        "exists",
        *files,
        "@@etc-count",
        str(len(files)),
        "@@tcp Checking the ports kubeadm needs",
        *tcp,
        "@@end",
    ]
    return lines


def test_listening_ports_reads_ipv4_and_ipv6_listeners_only():
    assert listening_ports(TCP) == {0x2A02, 0x1922, 0x7918}  # 10754, 6434, 31000


def test_blank_machine_with_matching_kubeadm():
    report = analyse(script_output(kubelet="v1.36.1", tcp=[]), role="control-plane", kubernetes_version="v1.37.2")
    assert report["os"] == {"pretty_name": "Debian GNU/Linux 12 (bookworm)", "id": "debian", "version_id": "12"}
    assert (report["kernel"], report["architecture"]) == ("6.1.0-18-amd64", "x86_64")
    assert report["binaries"]["kubeadm"] == {"path": "/opt/k8s/bin/kubeadm", "version": "v1.37.2", "skew": None}
    assert report["binaries"]["kubelet"]["version"] == "v1.36.1"
    assert report["binaries"]["kubectl"]["version"] == "v1.37.2"
    assert report["etc_kubernetes"] == {"exists": True, "files": [], "count": 0, "populated": False}
    assert report["ports"]["checked"] == [2379, 2380, 6443, 10250, 10257, 10259]
    assert report["ports"]["in_use"] == []
    assert report["problems"] == [] and report["complete"]


def test_problems_named_precisely():
    files = ["/etc/kubernetes/admin.conf", "/etc/kubernetes/manifests/etcd.yaml"]
    tcp = TCP[:1] + ["   0: 00000000:192B 00000000:0000 0A 0 0 0 0 0 0", "   1: 00000000:280A 00000000:0000 0A 0 0"]
    report = analyse(
        script_output(kubeadm="v1.36.3", kubelet="v1.38.0", files=files, tcp=tcp),
        role="control-plane",
        kubernetes_version="v1.37.2",
    )
    problems = report["problems"]
    assert "kubeadm v1.36.3 is older than Kubernetes v1.37.2: install kubeadm 1.37 on the machine" in problems
    assert any("kubelet v1.38.0 is newer than the control plane" in p for p in problems)
    assert any(p.startswith("/etc/kubernetes is not empty (2 files: /etc/kubernetes/admin.conf") for p in problems)
    assert "port 6443 (kube-apiserver) is already in use on the machine" in problems
    assert "port 10250 (kubelet) is already in use on the machine" in problems


def test_missing_kubeadm_names_the_path_searched_and_kubelet_can_be_ignored():
    report = analyse(
        script_output(kubeadm=None, kubelet=None, tcp=[]),
        role="worker",
        kubernetes_version="v1.37.2",
        ignored=["KubeletVersion"],
    )
    assert report["problems"] == ["kubeadm not found on the machine (PATH searched: /opt/k8s/bin:/usr/bin:/bin)"]
    assert any("kubelet not found" in w for w in report["warnings"])
    assert report["ports"]["checked"] == [10250]


def test_workers_warn_about_nodeport_listeners_and_joined_machines_only_warn():
    report = analyse(script_output(kubelet="v1.37.2"), role="worker", kubernetes_version="v1.37.2", joined=True)
    assert report["problems"] == []
    assert any("NodePort range 30000-32767 are in use: 31000" in w for w in report["warnings"])


def test_a_script_cut_short_is_reported():
    lines = script_output()[:12]
    report = analyse(lines, role="worker", kubernetes_version="v1.37.2")
    assert not report["complete"]
    assert "the check script stopped early; the report is incomplete" in report["problems"]
