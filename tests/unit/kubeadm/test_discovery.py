"""CA-pin hash against kubeadm's pubkeypin_test.go vector."""

from pathlib import Path

import pytest
from cryptography import x509

from kubeadm.discovery import ca_pin_hash, parse_pin, verify_pins
from kubeadm.errors import PinError
from kubeadm.pki import generate_ca

DATA = Path(__file__).parent / "data"
EXPECTED = "sha256:345959acb2c3b2feb87d281961c893f62a314207ef02599f1cc4a5fb255480b3"


@pytest.fixture(scope="module")
def test_cert():
    return x509.load_pem_x509_certificate((DATA / "pubkeypin-test.crt").read_bytes())


def test_pin_hash_matches_kubeadm_vector(test_cert):
    assert ca_pin_hash(test_cert) == EXPECTED


def test_verify_accepts_matching_pin_in_any_case(test_cert):
    verify_pins(test_cert, [EXPECTED])
    verify_pins(test_cert, ["sha256:" + "0" * 64, EXPECTED.upper().replace("SHA256", "sha256")])


def test_verify_rejects_other_ca(test_cert):
    other = generate_ca("kubernetes", "ECDSA-P256").cert
    with pytest.raises(PinError, match="none of the public keys") as err:
        verify_pins(other, [EXPECTED])
    assert ca_pin_hash(other) in str(err.value)


@pytest.mark.parametrize(
    ("pin", "match"),
    [
        ("345959acb2c3b2feb87d281961c893f62a314207ef02599f1cc4a5fb255480b3", "sha256:"),
        ("md5:345959acb2c3b2feb87d281961c893f6", "unknown type"),
        ("sha256:345959", "64 hexadecimal"),
        ("sha256:" + "z" * 64, "64 hexadecimal"),
    ],
)
def test_malformed_pins(pin, match):
    with pytest.raises(PinError, match=match):
        parse_pin(pin)


def test_empty_pin_list_is_an_error(test_cert):
    with pytest.raises(PinError, match="at least one"):
        verify_pins(test_cert, [])
