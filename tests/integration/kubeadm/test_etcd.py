"""A real etcd (Debian etcd-server) serving with our etcd certificates, with
client-certificate auth, and etcdctl checking health with our client certs."""

import json
import os
import signal
import subprocess
import time

import pytest

from kubeadm import certs, pki
from kubeadm.config import default_cluster_configuration, default_init_configuration

from ._support import free_port, require_binary

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", params=["RSA-2048", "ECDSA-P256"])
def etcd(request, tmp_path_factory):
    etcd_bin, etcdctl_bin = require_binary("etcd"), require_binary("etcdctl")
    init = default_init_configuration(advertise_address="192.0.2.10", node_name="etcd-node")
    cluster = default_cluster_configuration()
    cluster.encryption_algorithm = request.param
    tree = certs.generate_pki_tree(init, cluster)
    root = tmp_path_factory.mktemp(f"etcd-{request.param}")
    certs.write_pki(tree, root / "pki")
    pki_dir = root / "pki" / "etcd"
    client_port, peer_port, metrics_port = free_port(), free_port(), free_port()
    client_url, peer_url = f"https://127.0.0.1:{client_port}", f"https://127.0.0.1:{peer_port}"
    # The flags kubeadm's etcd.yaml uses, on loopback ports of our own.
    command = [
        etcd_bin,
        "--name=etcd-node",
        f"--data-dir={root / 'data'}",
        f"--listen-client-urls={client_url}",
        f"--advertise-client-urls={client_url}",
        f"--listen-peer-urls={peer_url}",
        f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster=etcd-node={peer_url}",
        f"--listen-metrics-urls=http://127.0.0.1:{metrics_port}",
        f"--cert-file={pki_dir / 'server.crt'}",
        f"--key-file={pki_dir / 'server.key'}",
        "--client-cert-auth=true",
        f"--trusted-ca-file={pki_dir / 'ca.crt'}",
        f"--peer-cert-file={pki_dir / 'peer.crt'}",
        f"--peer-key-file={pki_dir / 'peer.key'}",
        "--peer-client-cert-auth=true",
        f"--peer-trusted-ca-file={pki_dir / 'ca.crt'}",
        "--snapshot-count=10000",
    ]
    log = open(root / "etcd.log", "wb")  # noqa: SIM115 - closed in teardown
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    ctl = [etcdctl_bin, f"--endpoints={client_url}", f"--cacert={pki_dir / 'ca.crt'}", "--dial-timeout=2s"]
    deadline = time.monotonic() + 30
    while True:
        probe = subprocess.run(
            ctl
            + [
                f"--cert={pki_dir / 'healthcheck-client.crt'}",
                f"--key={pki_dir / 'healthcheck-client.key'}",
                "endpoint",
                "health",
            ],
            capture_output=True,
            timeout=30,
            check=False,
            env={**os.environ, "ETCDCTL_API": "3"},
        )
        if probe.returncode == 0 or process.poll() is not None or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    if process.poll() is not None:
        log.close()
        pytest.fail("etcd exited: " + (root / "etcd.log").read_text()[-2000:])
    yield {"ctl": ctl, "pki": pki_dir, "root": root, "tree": tree}
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)
    log.close()


def _etcdctl(etcd, cert: str, key: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        etcd["ctl"] + [f"--cert={cert}", f"--key={key}", *args],
        capture_output=True,
        timeout=30,
        check=False,
        env={**os.environ, "ETCDCTL_API": "3"},
    )


def test_endpoint_health_with_healthcheck_client_cert(etcd):
    result = _etcdctl(
        etcd,
        etcd["pki"] / "healthcheck-client.crt",
        etcd["pki"] / "healthcheck-client.key",
        "-w",
        "json",
        "endpoint",
        "health",
    )
    assert result.returncode == 0, result.stderr.decode()
    health = json.loads(result.stdout)
    assert health[0]["health"] is True


def test_apiserver_etcd_client_can_write_and_read(etcd):
    pki_root = etcd["pki"].parent
    cert, key = pki_root / "apiserver-etcd-client.crt", pki_root / "apiserver-etcd-client.key"
    assert _etcdctl(etcd, cert, key, "put", "/kubeboard/probe", "ok").returncode == 0
    got = _etcdctl(etcd, cert, key, "get", "/kubeboard/probe", "--print-value-only")
    assert got.stdout.decode().strip() == "ok"


def test_client_cert_from_another_ca_is_refused(etcd, tmp_path):
    other_ca = pki.generate_ca("etcd-ca", "ECDSA-P256")
    stranger = pki.issue_certificate(other_ca, "intruder", algorithm="ECDSA-P256")
    (tmp_path / "c.crt").write_bytes(stranger.cert_pem())
    (tmp_path / "c.key").write_bytes(stranger.key_pem())
    result = _etcdctl(etcd, tmp_path / "c.crt", tmp_path / "c.key", "endpoint", "health")
    assert result.returncode != 0
