"""The upload-certs operation takes the CA material from Kubeboard's custody: the four
authorities with their keys, as the eight files of kubeadm's certsToTransfer."""

from __future__ import annotations

import pytest

from kubeadm import certkeys as kubeadm_certkeys
from kubeadm import pki
from tests.factories import make_cluster
from tests.support.kubeclusters import store_authorities
from tokens import certkeys

pytestmark = pytest.mark.django_db


def test_the_files_are_kubeadms_certs_to_transfer_and_survive_the_secret():
    cluster = make_cluster("c1")
    authorities = pki.generate_cluster_authorities("ECDSA-P256")
    store_authorities(cluster, authorities)
    assert certkeys.can_upload_certs(cluster)
    files = certkeys.ca_files(cluster)
    assert sorted(files) == sorted(kubeadm_certkeys.LOCAL_ETCD_FILES)
    assert files["ca.crt"] == authorities["ca"].cert_pem()
    assert files["sa.pub"] == authorities["sa"].public_key_pem()
    assert files["etcd/ca.key"] == authorities["etcd/ca"].key_pem()
    key = kubeadm_certkeys.generate_certificate_key()
    assert kubeadm_certkeys.decrypt_kubeadm_certs(kubeadm_certkeys.kubeadm_certs_secret(files, key), key) == files


def test_no_upload_without_every_key_in_custody():
    cluster = make_cluster("c1")
    authorities = pki.generate_cluster_authorities("ECDSA-P256")
    store_authorities(cluster, {name: pair for name, pair in authorities.items() if name != "front-proxy-ca"})
    assert not certkeys.can_upload_certs(cluster)
