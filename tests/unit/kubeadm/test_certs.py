"""The full certificate tree, compared with what the real kubeadm v1.37.2 wrote."""

import datetime
import stat
from pathlib import Path

import pytest
from cryptography import x509

from kubeadm import certs, pki
from kubeadm.config import default_cluster_configuration, default_init_configuration, parse_config
from kubeadm.errors import CertificateError

REAL = Path(__file__).parent / "data" / "real-v1.37.2"
NOW = datetime.datetime(2026, 11, 26, 23, 42, 2, tzinfo=datetime.UTC)


@pytest.fixture(scope="module")
def real_config():
    parsed = parse_config((REAL / "cfg.yaml").read_text())
    cluster = default_cluster_configuration()
    # cfg.yaml sets only a few fields; fill the rest with kubeadm's defaults.
    for name in ("kubernetes_version", "control_plane_endpoint", "encryption_algorithm", "api_server"):
        setattr(cluster, name, getattr(parsed.cluster, name))
    init = default_init_configuration(advertise_address="192.168.0.101", node_name="cp1")
    return init, cluster


@pytest.fixture(scope="module")
def ours(real_config):
    init, cluster = real_config
    return certs.generate_pki_tree(init, cluster, now=NOW)


@pytest.fixture(scope="module")
def real():
    return certs.load_pki(REAL / "pki")


def _shape(cert: x509.Certificate) -> dict:
    return {
        "subject": [(a.oid.dotted_string, a.value, a._type) for a in cert.subject],
        "issuer": cert.issuer.rfc4514_string(),
        "extensions": [(e.oid.dotted_string, e.critical) for e in cert.extensions],
        "eku": pki.extended_key_usages(cert),
        "sans": pki.alt_names(cert),
        "key_usage": cert.extensions.get_extension_for_class(x509.KeyUsage).value,
        "basic": cert.extensions.get_extension_for_class(x509.BasicConstraints).value,
        "sig": cert.signature_algorithm_oid,
        "key": pki.algorithm_of(cert.public_key()),
        "lifetime": cert.not_valid_after_utc - cert.not_valid_before_utc,
    }


def test_tree_has_kubeadm_file_names(ours, real):
    assert (
        set(ours)
        == set(real)
        == {
            "ca",
            "apiserver",
            "apiserver-kubelet-client",
            "front-proxy-ca",
            "front-proxy-client",
            "etcd/ca",
            "etcd/server",
            "etcd/peer",
            "etcd/healthcheck-client",
            "apiserver-etcd-client",
            "sa",
        }
    )
    assert set(certs.pki_files(ours)) == {str(p.relative_to(REAL / "pki")) for p in (REAL / "pki").rglob("*.*")}


@pytest.mark.parametrize(
    "base",
    [
        "ca",
        "apiserver",
        "apiserver-kubelet-client",
        "front-proxy-ca",
        "front-proxy-client",
        "etcd/ca",
        "etcd/server",
        "etcd/peer",
        "etcd/healthcheck-client",
        "apiserver-etcd-client",
    ],
)
def test_each_certificate_matches_the_real_one(ours, real, base):
    assert _shape(ours[base].cert) == _shape(real[base].cert)


def test_validity_and_chain(ours):
    for base, pair in ours.items():
        if pair.cert is None:
            continue
        assert pair.cert.not_valid_before_utc == NOW - datetime.timedelta(minutes=5)
        issuer = ours[certs.spec(base).ca_base_name] if base not in certs.CA_SPECS else pair
        pki.verify_signed_by(pair.cert, issuer.cert)
    assert ours["apiserver"].cert.not_valid_after_utc == NOW + datetime.timedelta(hours=8760)


def test_external_etcd_has_no_etcd_files():
    cluster = default_cluster_configuration()
    from kubeadm.config import Etcd, ExternalEtcd

    cluster.etcd = Etcd(external=ExternalEtcd(endpoints=["https://10.0.0.5:2379"]))
    cluster.encryption_algorithm = "ECDSA-P256"
    tree = certs.generate_pki_tree(default_init_configuration(), cluster)
    assert not any(k.startswith("etcd") or k == "apiserver-etcd-client" for k in tree)


def test_write_and_load_round_trip(tmp_path, ours):
    certs.write_pki(ours, tmp_path)
    assert stat.S_IMODE((tmp_path / "ca.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "ca.crt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "sa.pub").stat().st_mode) == 0o600
    loaded = certs.load_pki(tmp_path)
    assert {k: v.cert for k, v in loaded.items()} == {k: v.cert for k, v in ours.items()}
    (tmp_path / "front-proxy-ca.key").unlink()
    external = certs.load_pki(tmp_path)
    assert isinstance(external["front-proxy-ca"], x509.Certificate)


def test_check_expiration_text_matches_kubeadm(real):
    rows, cas = certs.check_expiration(real)
    text = certs.format_check_expiration(
        rows, cas, now=datetime.datetime(2026, 11, 26, 23, 42, 40, tzinfo=datetime.UTC)
    )
    assert text == (REAL / "check.txt").read_text()


def test_check_expiration_marks_expired_and_external(ours):
    tree = dict(ours)
    tree["ca"] = tree["ca"].cert  # key gone: external CA
    rows, cas = certs.check_expiration(tree)
    later = NOW + datetime.timedelta(days=400)
    text = certs.format_check_expiration(rows, cas, now=later)
    assert "<invalid>" in text
    row = next(r for r in rows if r.name == "apiserver")
    assert row.externally_managed and not row.missing


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "<invalid>"),
        (-1, "0s"),
        (59, "59s"),
        (3599, "59m"),
        (86399, "23h"),
        (86400 * 364, "364d"),
        (86400 * 3650, "10y"),
    ],
)
def test_short_human_duration(seconds, text):
    assert certs.short_human_duration(datetime.timedelta(seconds=seconds)) == text


def test_renewal_keeps_identity_and_changes_key(real):
    later = NOW + datetime.timedelta(days=300)
    renewed = certs.renew_leaves(real, ["apiserver", "etcd-peer"], now=later)
    assert set(renewed) == {"apiserver", "etcd/peer"}
    for base, pair in renewed.items():
        old = real[base].cert
        assert _shape(pair.cert) == _shape(old)
        assert pair.cert.public_key() != old.public_key()
        assert pair.cert.not_valid_after_utc == later + datetime.timedelta(hours=8760)
        pki.verify_signed_by(pair.cert, real[certs.spec(base).ca_base_name].cert)


def test_renewal_needs_the_ca_key(real):
    tree = dict(real)
    tree["ca"] = tree["ca"].cert
    with pytest.raises(CertificateError, match="externally managed"):
        certs.renew_leaves(tree, ["apiserver"])
