"""Public material one click away: the CA certificates (PEM), the CA-pin hash and the rendered
kubeadm configuration are copyable and downloadable by anyone who sees the cluster; private keys
never appear in the page or a download."""

from __future__ import annotations

import pytest
from cryptography import x509

from clusters import kubeadm_config
from clusters.identity import store_authority
from kubeadm import discovery, pki
from tests.conftest import team_of
from tests.factories import make_cluster

pytestmark = pytest.mark.django_db


@pytest.fixture
def cluster(make_user):
    viewer = make_user("vera", role="viewer")
    cluster = make_cluster("public", team=team_of(viewer), encryption_algorithm="ECDSA-P256")
    authorities = pki.generate_cluster_authorities("ECDSA-P256")
    for name, pair in authorities.items():
        store_authority(cluster, name, pair)
    cluster.ca_pin_hash = discovery.ca_pin_hash(authorities["ca"].cert)
    cluster.kubeadm_config = kubeadm_config.render(cluster)
    cluster.save()
    return {"cluster": cluster, "viewer": viewer, "keys": [p.key_pem().decode() for p in authorities.values()]}


def test_a_viewer_downloads_each_ca_certificate_the_pin_and_the_configuration(client, cluster):
    client.force_login(cluster["viewer"])
    page = client.get("/clusters/public/").content.decode()
    for slug in ("ca", "front-proxy-ca", "etcd-ca"):
        assert f'href="/clusters/public/ca/{slug}.crt" download' in page
        response = client.get(f"/clusters/public/ca/{slug}.crt")
        assert response.status_code == 200
        assert response["Content-Disposition"] == f'attachment; filename="public-{slug}.crt"'
        x509.load_pem_x509_certificate(response.content)  # a real PEM certificate
    assert 'data-copy="#ca-pin-hash"' in page and 'data-copy="#pem-ca"' in page
    pin = client.get("/clusters/public/ca-pin.txt")
    assert pin.content.decode().strip() == cluster["cluster"].ca_pin_hash
    config = client.get("/clusters/public/kubeadm-config.yaml")
    assert config["Content-Disposition"] == 'attachment; filename="public-kubeadm-config.yaml"'
    assert "kind: ClusterConfiguration" in config.content.decode()


def test_no_private_key_in_the_page_or_any_download(client, cluster):
    client.force_login(cluster["viewer"])
    bodies = [
        client.get(url).content.decode()
        for url in (
            "/clusters/public/",
            "/clusters/public/ca/ca.crt",
            "/clusters/public/ca-pin.txt",
            "/clusters/public/kubeadm-config.yaml",
        )
    ]
    for body in bodies:
        assert "PRIVATE KEY" not in body
        assert not any(key.strip().splitlines()[1] in body for key in cluster["keys"])
    assert client.get("/clusters/public/ca/sa.crt").status_code == 404, "the service-account key has no certificate"


def test_nothing_to_download_before_the_identity_exists(client, make_user):
    viewer = make_user("vic", role="viewer")
    make_cluster("fresh", team=team_of(viewer))
    client.force_login(viewer)
    for url in ("/clusters/fresh/ca/ca.crt", "/clusters/fresh/ca-pin.txt", "/clusters/fresh/kubeadm-config.yaml"):
        assert client.get(url).status_code == 404
