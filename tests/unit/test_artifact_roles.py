"""Which files of an artifact set a machine's role needs (kubeadm.artifacts): a worker is sent no
control-plane image (kubeadm pulls those only at init and join --control-plane); everything else,
and any archive whose images are not known, goes to every machine."""

from __future__ import annotations

from kubeadm import artifacts

SET = {
    "bin/kubeadm": [],
    "systemd/kubelet.service": [],
    "images/kube-apiserver.tar": ["registry.k8s.io/kube-apiserver:v1.37.2"],
    "images/kube-controller-manager.tar": ["registry.k8s.io/kube-controller-manager:v1.37.2"],
    "images/kube-scheduler.tar": ["registry.k8s.io/kube-scheduler:v1.37.2"],
    "images/etcd.tar": ["registry.k8s.io/etcd:3.6.5-0"],
    "images/coredns.tar": ["registry.k8s.io/coredns/coredns:v1.12.4"],
    "images/kube-proxy.tar": ["registry.k8s.io/kube-proxy:v1.37.2"],
    "images/pause.tar": ["registry.k8s.io/pause:3.10.2"],
    "images/unknown.tar": [],
}
CONTROL_PLANE_ARCHIVES = [
    "images/etcd.tar",
    "images/kube-apiserver.tar",
    "images/kube-controller-manager.tar",
    "images/kube-scheduler.tar",
]


def test_a_worker_needs_everything_but_the_control_plane_images() -> None:
    needed, left_out = artifacts.for_role(SET, control_plane=False)
    assert left_out == CONTROL_PLANE_ARCHIVES
    assert needed == sorted(set(SET) - set(CONTROL_PLANE_ARCHIVES))
    assert {"images/kube-proxy.tar", "images/pause.tar", "images/coredns.tar", "images/unknown.tar"} <= set(needed)
    assert artifacts.left_out_images(SET, left_out) == list(artifacts.CONTROL_PLANE_IMAGES)


def test_a_control_plane_needs_the_whole_set() -> None:
    needed, left_out = artifacts.for_role(SET, control_plane=True)
    assert needed == sorted(SET) and left_out == []


def test_the_image_name_ignores_registry_port_path_tag_and_digest() -> None:
    assert artifacts.image_component("registry.k8s.io/kube-apiserver:v1.37.2") == "kube-apiserver"
    assert artifacts.image_component("mirror.local:5000/k8s/etcd:3.6.5-0") == "etcd"
    assert artifacts.image_component("etcd@sha256:" + "a" * 64) == "etcd"
    assert artifacts.image_component("registry.k8s.io/coredns/coredns:v1.12.4") == "coredns"


def test_an_archive_is_left_out_only_if_every_image_in_it_is_a_control_plane_one() -> None:
    both = ["registry.k8s.io/etcd:3.6.5-0", "registry.k8s.io/pause:3.10.2"]
    assert not artifacts.control_plane_only("images/mixed.tar", both)
    assert not artifacts.control_plane_only("images/unknown.tar", [])
    assert not artifacts.control_plane_only("bin/etcd", ["registry.k8s.io/etcd:3.6.5-0"])
    # A look-alike name is not kubeadm's image.
    assert not artifacts.control_plane_only("images/x.tar", ["example.com/etcd-backup:1"])
    assert artifacts.control_plane_only("images/etcd.tar", ["example.com/mirror/etcd:3.6.5-0"])
