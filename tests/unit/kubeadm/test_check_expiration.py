"""Parsing `kubeadm certs check-expiration` as the real v1.37.2 prints it on a node."""

import datetime
from pathlib import Path

import pytest

from kubeadm import certs
from kubeadm.errors import CertificateError

REAL = Path(__file__).parent / "data" / "real-v1.37.2"
UTC = datetime.UTC


def test_parses_the_live_control_plane_output():
    text = (REAL / "outputs" / "certs-check-expiration.txt").read_text().removesuffix("EXIT 0\n")
    rows, cas = certs.parse_check_expiration(text)
    assert [r.name for r in rows] == [
        "admin.conf",
        "apiserver",
        "apiserver-etcd-client",
        "apiserver-kubelet-client",
        "controller-manager.conf",
        "etcd-healthcheck-client",
        "etcd-peer",
        "etcd-server",
        "front-proxy-client",
        "scheduler.conf",
        "super-admin.conf",
    ]
    apiserver = rows[1]
    assert apiserver.expires == datetime.datetime(2027, 11, 27, 7, 15, tzinfo=UTC)
    assert apiserver.ca_name == "ca" and apiserver.externally_managed is False
    assert rows[2].ca_name == "etcd-ca" and rows[8].ca_name == "front-proxy-ca"
    assert [(c.name, c.expires) for c in cas] == [
        ("ca", datetime.datetime(2036, 11, 24, 7, 15, tzinfo=UTC)),
        ("etcd-ca", datetime.datetime(2036, 11, 24, 7, 15, tzinfo=UTC)),
        ("front-proxy-ca", datetime.datetime(2036, 11, 24, 7, 15, tzinfo=UTC)),
    ]


def test_parses_missing_rows():
    rows, cas = certs.parse_check_expiration((REAL / "check.txt").read_text())
    missing = [r.name for r in rows if r.missing]
    assert missing == ["admin.conf", "controller-manager.conf", "scheduler.conf", "super-admin.conf"]
    assert len(rows) == 11 and len(cas) == 3


def test_round_trip_with_our_formatter():
    now = datetime.datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
    rows = [
        certs.ExpirationRow("apiserver", "ca", datetime.datetime(2027, 1, 2, 3, 4, tzinfo=UTC), False),
        certs.ExpirationRow("etcd-peer", "etcd-ca", datetime.datetime(2026, 12, 1, 0, 0, tzinfo=UTC), True),
    ]
    cas = [certs.ExpirationRow("ca", "", datetime.datetime(2036, 1, 1, 0, 0, tzinfo=UTC), False)]
    assert certs.parse_check_expiration(certs.format_check_expiration(rows, cas, now)) == (rows, cas)


@pytest.mark.parametrize("text", ["", "error: something\n", "CERTIFICATE   EXPIRES\napiserver soon\n"])
def test_garbage_is_a_clear_error(text):
    with pytest.raises(CertificateError, match="check-expiration"):
        certs.parse_check_expiration(text)
