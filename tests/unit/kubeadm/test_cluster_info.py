"""The real cluster-info ConfigMap captured from kubeadm v1.37.2 on the test bed:
our kubeconfig readers accept it, and discovery.verify_cluster_info checks it as a
joining kubeadm does (signature for our token, CA matching our pin)."""

import json
from pathlib import Path

import pytest

from kubeadm import discovery, kubeconfig, pki, tokens
from kubeadm.errors import JWSError, KubeconfigError, PinError

REAL = Path(__file__).parent / "data" / "real-v1.37.2" / "cluster-info"


@pytest.fixture(scope="module")
def real():
    data = json.loads((REAL / "configmap.json").read_text())["data"]
    token = (REAL / "token.txt").read_text().strip()
    ca = pki.load_certificate((REAL / "ca.crt").read_bytes())
    return data, token, ca


def test_readers_accept_the_real_cluster_info_kubeconfig(real):
    data, _, ca = real
    config = kubeconfig.parse_kubeconfig(data["kubeconfig"])
    assert config["current-context"] == "" and config["contexts"] is None and "preferences" not in config
    assert kubeconfig.server_of(config) == "https://10.213.30.11:6443"
    assert kubeconfig.ca_certificates(config) == [ca]
    assert kubeconfig.client_certificate(config) is None


def test_we_render_cluster_info_byte_for_byte(real):
    data, _, ca = real
    assert kubeconfig.cluster_info_kubeconfig("https://10.213.30.11:6443", ca) == data["kubeconfig"]


def test_verify_cluster_info_passes_with_our_token_and_pin(real):
    data, token, ca = real
    discovery.verify_cluster_info(data, token, [discovery.ca_pin_hash(ca)])
    discovery.verify_cluster_info(data, tokens.parse_token(token), ["sha256:" + "0" * 64, discovery.ca_pin_hash(ca)])
    assert discovery.jws_signature_ids(data) == [token.split(".")[0]]


def test_wrong_pin_names_expected_and_actual(real):
    data, token, ca = real
    other = "sha256:" + "ab" * 32
    with pytest.raises(PinError) as err:
        discovery.verify_cluster_info(data, token, [other])
    assert other in str(err.value) and discovery.ca_pin_hash(ca) in str(err.value)


def test_unknown_token_id_says_which_signatures_exist(real):
    data, token, ca = real
    with pytest.raises(JWSError, match="unknown to the cluster or has expired") as err:
        discovery.verify_cluster_info(data, "zzzzzz.0123456789abcdef", [discovery.ca_pin_hash(ca)])
    assert repr(token.split(".")[0]) in str(err.value)


def test_wrong_secret_fails_the_signature_without_leaking_it(real):
    data, token, ca = real
    wrong = token.split(".")[0] + ".0123456789abcdef"
    with pytest.raises(JWSError, match="does not match") as err:
        discovery.verify_cluster_info(data, wrong, [discovery.ca_pin_hash(ca)])
    assert "0123456789abcdef" not in str(err.value) and token.split(".")[1] not in str(err.value)


def test_tampered_kubeconfig_fails_the_signature(real):
    data, token, ca = real
    tampered = dict(data, kubeconfig=data["kubeconfig"].replace("10.213.30.11", "10.213.30.66"))
    with pytest.raises(JWSError):
        discovery.verify_cluster_info(tampered, token, [discovery.ca_pin_hash(ca)])


def test_missing_kubeconfig_key(real):
    _, token, ca = real
    with pytest.raises(KubeconfigError, match="'kubeconfig' key"):
        discovery.verify_cluster_info({}, token, [discovery.ca_pin_hash(ca)])


def test_several_clusters_without_context_stay_ambiguous():
    config = {
        "kind": "Config",
        "current-context": "",
        "contexts": None,
        "clusters": [{"name": "a", "cluster": {}}, {"name": "b", "cluster": {}}],
    }
    with pytest.raises(KubeconfigError, match="exactly one cluster, found 2"):
        kubeconfig.server_of(config)


def test_replace_client_refuses_cluster_info(real):
    data, *_ = real
    config = kubeconfig.parse_kubeconfig(data["kubeconfig"])
    pair = pki.KeyPair(None, pki.generate_private_key("ECDSA-P256"))
    with pytest.raises(KubeconfigError, match="no users"):
        kubeconfig.replace_client(config, pair)
