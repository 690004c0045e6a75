import pytest

from kubeadm.errors import ConfigError, UnsupportedVersionError
from kubeadm.versions import DEFAULT_KUBERNETES_VERSION, SUPPORTED_VERSIONS, parse_version


def test_default_version_is_supported():
    major, minor, _ = parse_version(DEFAULT_KUBERNETES_VERSION)
    assert f"{major}.{minor}" in SUPPORTED_VERSIONS


def test_accepts_with_and_without_v():
    minor = SUPPORTED_VERSIONS[-1]
    assert parse_version(f"v{minor}.2") == parse_version(f"{minor}.2") == (1, int(minor.split(".")[1]), 2)


@pytest.mark.parametrize("bad", ["1.34", "v1.x.0", "latest", "", "1.34.2.1", "stable-1"])
def test_malformed(bad):
    with pytest.raises(UnsupportedVersionError) as err:
        parse_version(bad)
    assert err.value.field == "kubernetesVersion"
    assert isinstance(err.value, ConfigError)
    assert "v1." in str(err.value)


def test_unsupported_minor_names_the_window():
    with pytest.raises(UnsupportedVersionError) as err:
        parse_version("v1.20.0")
    assert SUPPORTED_VERSIONS[0] in str(err.value) and "v1.20.0" in str(err.value)
