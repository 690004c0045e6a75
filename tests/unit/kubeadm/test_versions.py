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


# --- skew rules (kubeadm.versions.deployable / kubelet_skew / kubectl_skew) ---------------

from kubeadm.versions import deployable, kubectl_skew, kubelet_skew  # noqa: E402


@pytest.mark.parametrize("kubeadm_version", ["v1.37.2", "v1.37.0", "1.37.9"])
def test_kubeadm_deploys_its_own_minor_and_one_older(kubeadm_version):
    assert deployable(kubeadm_version, "v1.37.2") is None
    assert deployable(kubeadm_version, "v1.36.3") is None


def test_kubeadm_refuses_newer_and_two_older_minors_with_what_to_install():
    assert deployable("v1.36.3", "v1.37.2") == (
        "kubeadm v1.36.3 is older than Kubernetes v1.37.2: install kubeadm 1.37 on the machine"
    )
    message = deployable("v1.37.2", "v1.35.0")
    assert "deploys only Kubernetes 1.36 and 1.37" in message and "needs kubeadm 1.35 or 1.36" in message
    assert "different major" in deployable("v2.0.0", "v1.37.0")


def test_kubelet_may_be_three_minors_older_never_newer():
    for kubelet in ("v1.37.2", "v1.37.0", "v1.36.1", "v1.35.0", "v1.34.5"):
        assert kubelet_skew(kubelet, "v1.37.2") is None
    assert "more than 3 minor versions older" in kubelet_skew("v1.33.9", "v1.37.2")
    assert "install kubelet 1.34 or newer" in kubelet_skew("v1.33.9", "v1.37.2")
    assert "newer than the control plane" in kubelet_skew("v1.38.0", "v1.37.2")
    # A newer patch of the same minor is fine: the rule is about minors.
    assert kubelet_skew("v1.37.5", "v1.37.2") is None


def test_kubectl_within_one_minor():
    assert kubectl_skew("v1.38.0", "v1.37.2") is None
    assert kubectl_skew("v1.36.0", "v1.37.2") is None
    assert "more than 1 minor version away" in kubectl_skew("v1.35.0", "v1.37.2")


def test_skew_rules_refuse_text_that_is_not_a_version():
    with pytest.raises(UnsupportedVersionError, match="kubeadm version"):
        deployable("unknown", "v1.37.2")


# --- upgrade_path ------------------------------------------------------------------------

from kubeadm.versions import upgrade_path  # noqa: E402


@pytest.mark.parametrize(
    ("current", "target"),
    [("v1.36.3", "v1.37.2"), ("v1.37.0", "v1.37.2"), ("1.35.9", "1.36.0"), ("v1.34.4", "v1.35.0")],
)
def test_upgrade_one_minor_or_a_patch(current, target):
    assert upgrade_path(current, target) is None


def test_upgrade_refusals_say_why_and_what_instead():
    assert upgrade_path("v1.35.2", "v1.37.2") == (
        "v1.35.2 to v1.37.2 skips a minor version; kubeadm upgrades one minor at a time: upgrade to 1.36, then 1.37"
    )
    assert "downgrades are not supported" in upgrade_path("v1.37.2", "v1.36.3")
    assert "downgrades are not supported" in upgrade_path("v1.37.2", "v1.37.1")
    assert "nothing to upgrade" in upgrade_path("v1.37.2", "v1.37.2")
    assert "outside the versions" in upgrade_path("v1.37.2", "v1.38.0")
    with pytest.raises(UnsupportedVersionError, match="target version"):
        upgrade_path("v1.37.2", "latest")
