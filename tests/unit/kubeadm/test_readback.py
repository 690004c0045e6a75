"""The read-back command (kubeadm.readback) run by a real shell over a directory laid out as
kubeadm leaves /etc/kubernetes: every certificate comes back, each kubeconfig's client
certificate and never a key; and the certificate facts the read-back rows rest on."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

from kubeadm import kubeconfig, pki, readback


def _layout(root: Path) -> dict[str, pki.KeyPair]:
    ca = pki.generate_ca("kubernetes", "ECDSA-P256")
    etcd_ca = pki.generate_ca("etcd-ca", "ECDSA-P256")
    apiserver = pki.issue_certificate(ca, "kube-apiserver", algorithm="ECDSA-P256")
    admin = pki.issue_certificate(ca, "kubernetes-admin", algorithm="ECDSA-P256")
    kubelet = pki.issue_certificate(ca, "system:node:node1", algorithm="ECDSA-P256")
    (root / "pki" / "etcd").mkdir(parents=True)
    (root / "manifests").mkdir()
    (root / "pki" / "ca.crt").write_bytes(ca.cert_pem())
    (root / "pki" / "ca.key").write_bytes(ca.key_pem())
    (root / "pki" / "apiserver.crt").write_bytes(apiserver.cert_pem())
    (root / "pki" / "etcd" / "ca.crt").write_bytes(etcd_ca.cert_pem())
    # admin.conf embeds its client certificate and key, as kubeadm writes it.
    admin_conf = kubeconfig.build_kubeconfig(
        "https://10.0.0.1:6443", "kubernetes", "kubernetes-admin", ca.cert, client=admin
    )
    (root / "admin.conf").write_text(kubeconfig.render_kubeconfig(admin_conf))
    # kubelet.conf points at the rotated pair, one file holding certificate and key.
    pem = root / "kubelet-client-current.pem"
    pem.write_bytes(kubelet.cert_pem() + kubelet.key_pem())
    (root / "kubelet.conf").write_text(
        f"apiVersion: v1\nkind: Config\nusers:\n- name: default-auth\n  user:\n"
        f"    client-certificate: {pem}\n    client-key: {pem}\n"
    )
    (root / "manifests" / "kube-apiserver.yaml").write_text("apiVersion: v1\nkind: Pod\n")
    return {"ca": ca, "etcd/ca": etcd_ca, "apiserver": apiserver, "admin": admin, "kubelet": kubelet}


def _run(command: str) -> list[str]:
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, check=True)
    return result.stdout.splitlines()


def test_every_certificate_and_kubeconfig_client_comes_back_without_a_key(tmp_path):
    root = tmp_path / "kubernetes"
    made = _layout(root)
    fake_kubeadm = tmp_path / "kubeadm"
    fake_kubeadm.write_text('#!/bin/sh\necho "CERTIFICATE   EXPIRES"\nexit 3\n')
    fake_kubeadm.chmod(0o755)

    lines = _run(
        readback.read_command(check_expiration=True, manifests=True, root=str(root), kubeadm=str(fake_kubeadm))
    )
    assert not any("PRIVATE KEY" in line for line in lines)
    sections = readback.parse_sections(lines)
    assert [(s.kind, s.path) for s in sections] == [
        ("check-expiration", ""),
        ("cert", f"{root}/pki/apiserver.crt"),
        ("cert", f"{root}/pki/ca.crt"),
        ("cert", f"{root}/pki/etcd/ca.crt"),
        ("kubeconfig", f"{root}/admin.conf"),
        ("kubeconfig", f"{root}/kubelet.conf"),
        ("manifest", f"{root}/manifests/kube-apiserver.yaml"),
    ]
    by_path = {s.path: s.text for s in sections}
    assert sections[0].text == "CERTIFICATE   EXPIRES\n"  # the exit marker is not part of it
    assert by_path[f"{root}/pki/ca.crt"] == made["ca"].cert_pem().decode()
    assert by_path[f"{root}/admin.conf"] == made["admin"].cert_pem().decode()
    assert by_path[f"{root}/kubelet.conf"] == made["kubelet"].cert_pem().decode()
    assert by_path[f"{root}/manifests/kube-apiserver.yaml"] == "apiVersion: v1\nkind: Pod\n"


def test_without_options_only_certificates_and_kubeconfigs(tmp_path):
    root = tmp_path / "kubernetes"
    _layout(root)
    kinds = {s.kind for s in readback.parse_sections(_run(readback.read_command(root=str(root))))}
    assert kinds == {"cert", "kubeconfig"}


def test_the_default_command_reads_etc_kubernetes():
    command = readback.read_command(manifests=True)
    assert "find /etc/kubernetes/pki -name '*.crt'" in command
    assert "p=/etc/kubernetes/$f" in command and "find /etc/kubernetes/manifests" in command
    assert "check-expiration" not in command


def test_ca_and_signer_among_held_cas():
    ca = pki.generate_ca("kubernetes", "ECDSA-P256")
    other = pki.generate_ca("kubernetes", "RSA-2048")
    leaf = pki.issue_certificate(ca, "kube-apiserver", algorithm="ECDSA-P256")
    assert pki.is_ca(ca.cert) and not pki.is_ca(leaf.cert)
    assert pki.signer_among(leaf.cert, {"front-proxy-ca": other.cert, "ca": ca.cert}) == "ca"
    assert pki.signer_among(leaf.cert, {"ca": other.cert}) is None
    assert pki.signer_among(leaf.cert, {}) is None


def test_certificate_rows_have_one_set_of_keys_and_name_custody():
    ca = pki.generate_ca("kubernetes", "ECDSA-P256")
    etcd_ca = pki.generate_ca("etcd-ca", "ECDSA-P256")
    stranger = pki.generate_ca("kubernetes", "ECDSA-P256")
    server = pki.issue_certificate(etcd_ca, "node1", algorithm="ECDSA-P256", dns_names=["node1"])
    now = datetime.now(UTC)

    def row(path, pair, held, source="cert"):
        return readback.certificate_row(source, path, pair.cert_pem().decode(), held, now)

    held = {"ca": ca.cert, "etcd/ca": etcd_ca.cert}
    leaf = row("/etc/kubernetes/pki/etcd/server.crt", server, held)
    assert leaf["name"] == "etcd-server" and leaf["kind"] == "leaf" and leaf["subject"] == "node1"
    assert leaf["custody"] == "signed by Kubeboard's etcd/ca" and leaf["ca"] == "etcd/ca" and leaf["drift"] == []
    assert 364 < leaf["days_left"] <= 365 and leaf["dns"] == ["node1"]
    assert {"path", "source", "issuer", "serial", "not_before", "not_after", "ips", "fingerprint"} <= set(leaf)
    assert row("/etc/kubernetes/pki/etcd/ca.crt", etcd_ca, held)["custody"] == "same as Kubeboard's"
    differing = row("/etc/kubernetes/pki/ca.crt", stranger, held)
    assert differing["custody"] == "DIFFERENT from Kubeboard's" and differing["drift"]
    assert row("/etc/kubernetes/pki/front-proxy-ca.crt", stranger, held)["custody"] == "not held by Kubeboard"
    foreign = row("/etc/kubernetes/pki/etcd/server.crt", server, {"ca": ca.cert})
    assert foreign["custody"] == "NOT signed by a CA Kubeboard holds" and foreign["drift"]
    assert row("/etc/kubernetes/admin.conf", server, held, "kubeconfig")["kind"] == "kubeconfig"
    broken = readback.certificate_row("cert", "/etc/kubernetes/pki/ca.crt", "garbage", held, now)
    assert broken["kind"] == "unreadable" and broken["error"].startswith("not a PEM certificate")
