"""kube/ and clusters/apiaccess.py without a network: which credentials a cluster gets, and kubeconfigs refused with a reason."""

from __future__ import annotations

import base64
import datetime

import pytest
import yaml
from cryptography import x509

import kube
from clusters import apiaccess
from clusters.models import Cluster
from kubeadm import kubeconfig as kubeconfig_files
from kubeadm import pki
from tests.factories import make_cluster
from tests.support.kubeclusters import store_authorities, stored_column


@pytest.fixture(scope="module")
def ca() -> pki.KeyPair:
    return pki.generate_ca("kubernetes", "ECDSA-P256")


def admin_kubeconfig(ca: pki.KeyPair, server: str = "https://10.0.0.10:6443", **user_override) -> dict:
    client = kubeconfig_files.issue_client(ca, "kubernetes-admin", ("kubeadm:cluster-admins",), algorithm="ECDSA-P256")
    config = kubeconfig_files.build_kubeconfig(server, "kubernetes", "kubernetes-admin", ca.cert, client=client)
    config["users"][0]["user"].update(user_override)
    return config


def dump(config: dict) -> str:
    return yaml.safe_dump(config)


@pytest.mark.django_db
def test_created_cluster_gets_a_fresh_short_lived_certificate_from_its_ca(ca, make_user):
    cluster = make_cluster("c1", control_plane_endpoint="10.0.0.10")
    store_authorities(cluster, {"ca": ca})
    user = make_user("olga", role="operator")
    first = apiaccess.credentials(cluster, user=user)
    second = apiaccess.credentials(cluster, user=user)
    assert first.server == "https://10.0.0.10:6443", "kubeadm's default port when the endpoint has none"
    cert = pki.load_certificate(first.client_cert_pem)
    assert pki.common_name(cert) == "kubeboard:olga"
    assert pki.organizations(cert) == ["kubeadm:cluster-admins"], "an RBAC subject, not system:masters"
    assert pki.extended_key_usages(cert) == ["clientAuth"]
    pki.verify_signed_by(cert, ca.cert)
    lifetime = cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(minutes=10) < lifetime <= apiaccess.CLIENT_CERT_TTL
    assert first.client_key_pem != second.client_key_pem, "every client has its own key"
    assert "PRIVATE" not in repr(first) and "BEGIN" not in repr(first)


@pytest.mark.django_db
def test_a_cluster_without_ca_key_or_kubeconfig_says_what_to_do():
    cluster = make_cluster("bare")
    with pytest.raises(kube.ClusterNotConnectable, match="holds no CA key.*adopt it"):
        apiaccess.credentials(cluster)


@pytest.mark.django_db
def test_adopted_cluster_uses_its_stored_kubeconfig(ca):
    text = dump(admin_kubeconfig(ca, server="https://10.0.0.20:6443"))
    cluster = make_cluster("adopted", origin=Cluster.Origin.ADOPTED, admin_kubeconfig=text)
    creds = apiaccess.credentials(Cluster.objects.get(pk=cluster.pk))
    assert creds.server == "https://10.0.0.20:6443"
    assert pki.common_name(pki.load_certificate(creds.client_cert_pem)) == "kubernetes-admin"
    assert "client-key-data" not in stored_column(cluster), "stored encrypted"
    assert stored_column(cluster).startswith("fernet:")


def test_token_kubeconfig_is_accepted(ca):
    config = admin_kubeconfig(ca)
    config["users"][0]["user"] = {"token": "abc.def"}
    creds = kube.credentials_from_kubeconfig(dump(config))
    assert creds.token == "abc.def" and not creds.client_cert_pem
    assert "abc.def" not in repr(creds)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c: c.update(kind="Pod"), "not a kubeconfig"),
        (lambda c: c.update(contexts=[]), "has no contexts"),
        (lambda c: c.update({"current-context": "other"}), "current-context 'other' is not one of"),
        (lambda c: c["clusters"][0]["cluster"].update(server="http://10.0.0.1:8080"), "must be an https:// URL"),
        (lambda c: c["clusters"][0]["cluster"].update({"insecure-skip-tls-verify": True}), "skips TLS verification"),
        (lambda c: c["clusters"][0]["cluster"].pop("certificate-authority-data"), "no certificate-authority-data"),
        (
            lambda c: c["clusters"][0]["cluster"].update({"certificate-authority-data": "bm90IGEgY2VydA=="}),
            "not a PEM certificate",
        ),
        (lambda c: c["users"][0].update(user={"exec": {"command": "aws"}}), "exec credential plugin"),
        (
            lambda c: c["users"][0].update(user={"client-certificate": "/x.crt", "client-key": "/x.key"}),
            "file path.*kubectl config view --raw --minify --flatten",
        ),
        (lambda c: c["users"][0]["user"].pop("client-key-data"), "only one of client-certificate-data"),
        (lambda c: c["users"][0].update(user={}), "no credentials"),
    ],
)
def test_unusable_kubeconfigs_are_refused_with_the_reason(ca, mutate, message):
    config = admin_kubeconfig(ca)
    mutate(config)
    with pytest.raises(kube.KubeconfigRejected, match=message):
        kube.credentials_from_kubeconfig(dump(config))


def test_mismatched_key_is_refused_without_echoing_it(ca):
    other = pki.issue_certificate(ca, "someone", algorithm="ECDSA-P256")
    config = admin_kubeconfig(ca)
    key_b64 = base64.b64encode(other.key_pem()).decode()
    config["users"][0]["user"]["client-key-data"] = key_b64
    with pytest.raises(kube.KubeconfigRejected, match="not a matching certificate and private key") as info:
        kube.credentials_from_kubeconfig(dump(config))
    assert key_b64 not in str(info.value)


@pytest.mark.django_db
def test_guard_refuses_before_any_connection(ca):
    # 192.0.2.1 (TEST-NET-1) is not on a test-bed bridge: the guard refuses it, nothing is sent.
    cluster = make_cluster("far", control_plane_endpoint="192.0.2.1:6443")
    store_authorities(cluster, {"ca": ca})
    with pytest.raises(kube.ClusterUnreachable, match="refused by the network guard") as info:
        kube.readyz(cluster)
    assert info.value.retryable and info.value.hint


@pytest.mark.django_db
def test_admin_kubeconfig_has_its_own_certificate_and_is_audited(ca, make_user):
    from audit.models import AuditEvent

    cluster = make_cluster("c2", control_plane_endpoint="10.0.0.10:6443")
    store_authorities(cluster, {"ca": ca})
    admin = make_user("ada", role="admin")
    text = apiaccess.issue_admin_kubeconfig(cluster, user=admin, ttl=datetime.timedelta(hours=1))
    config = kubeconfig_files.parse_kubeconfig(text)
    cert = kubeconfig_files.client_certificate(config)
    assert pki.common_name(cert) == "kubeboard:ada"
    assert cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC) <= datetime.timedelta(hours=1)
    assert kubeconfig_files.server_of(config) == "https://10.0.0.10:6443"
    event = AuditEvent.objects.get(action="cluster.admin_kubeconfig_issued")
    assert event.actor == admin and event.details["serial"] == str(cert.serial_number)
    assert "PRIVATE" not in str(event.details)
    with pytest.raises(ValueError, match="at most"):
        apiaccess.issue_admin_kubeconfig(cluster, user=admin, ttl=datetime.timedelta(days=30))
    assert isinstance(cert, x509.Certificate)
