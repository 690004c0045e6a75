"""Certificates and configuration on the test bed, end to end (real kubeadm v1.37.2).

The cluster is created from an imported kubeadm v1beta4 file that asks for short-lived
certificates (certificateValidityPeriod 480h = 20 days) and an extra API server SAN; a bad
v1beta3 file is refused first, field by field. On the initialized control plane:

* the inventory reads every certificate and kubeadm's check-expiration, warns (fewer than 30
  days left) and finds no drift;
* the renewal policy ("renew when fewer than 30 days remain") starts, on its schedule, an
  inventory that starts the renewal: every leaf gets a new serial, the API server serves the new
  certificate (its serial over TLS) and kubeadm's check-expiration agrees with Kubeboard's view;
* a SAN added through the same flow reaches kubeadm-config, Kubeboard's configuration and the
  served certificate;
* the live kubeadm-config matches Kubeboard's rendered configuration, a change made behind
  Kubeboard's back is flagged as drift, and the export reads back as the imported settings.
"""

from __future__ import annotations

import datetime
import ssl

import pytest
from django.utils import timezone

import kube
from clusters.models import Cluster
from core.network import check_destination
from kubeadm import components, pki
from kubeadm import config as kubeadm_config
from kubeadm.errors import ConfigError
from operations.models import Operation
from tests.conftest import team_of
from tests.support.day2 import run
from tests.support.testbed_cluster import TESTBED_IGNORE_PREFLIGHT, add_machine, blank_machines
from workflows import certificates, config_io
from workflows.init import start_init
from workflows.models import CertificateReport, RenewalPolicy, StoredConfiguration

pytestmark = [pytest.mark.cluster, pytest.mark.e2e, pytest.mark.timeout(1200)]

BAD_V1BETA3 = """\
apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
kubernetesVersion: v1.37.2
controlPlaneEndpoint: 10.0.0.1:6443
networking:
  podSubnet: 10.96.0.0/16
  serviceSubnet: 10.96.0.0/12
apiServer:
  timeoutForControlPlane: 4m0s
  extraArgs:
    audit-log-maxage: "5"
  certSANs: ["not a name!"]
"""

GOOD_V1BETA4 = """\
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.37.2
controlPlaneEndpoint: {endpoint}
certificateValidityPeriod: 480h0m0s
encryptionAlgorithm: ECDSA-P256
networking:
  podSubnet: 10.244.0.0/16
apiServer:
  certSANs:
  - kubeboard.example
  extraArgs:
  - name: audit-log-maxage
    value: "5"
"""


def leaves(report: CertificateReport) -> dict[str, dict]:
    return {r["name"]: r for r in report.rows if r["kind"] in ("leaf", "kubeconfig") and r["name"] != "kubelet.conf"}


def served(address: str) -> pki.x509.Certificate:
    pem = ssl.get_server_certificate((check_destination(address, 6443), 6443))
    return pki.load_certificate(pem.encode())


def test_import_inventory_renewal_policy_san_and_drift(transactional_db, operator):
    with pytest.raises(ConfigError):
        config_io.parse_import("kind: [")
    bad = config_io.parse_import(BAD_V1BETA3)
    fields = {error.field for error in bad.errors}
    assert "networking.podSubnet" in fields, bad.errors  # overlaps the service subnet
    assert any(f.startswith("apiServer.certSANs") for f in fields), bad.errors
    assert "Migrated from kubeadm.k8s.io/v1beta3" in " ".join(bad.notes)

    with blank_machines("kbtbx4", "10.213.94.0/24", 1) as sb:
        address = sb.node(1).address
        text = GOOD_V1BETA4.format(endpoint=f"{address}:6443")
        result = config_io.parse_import(text)
        assert not result.errors, result.errors
        form_cluster = Cluster(name="certs", team=team_of(operator), ignore_preflight_errors=TESTBED_IGNORE_PREFLIGHT)
        run(config_io.import_cluster(form_cluster, result, text, user=operator))
        cluster = Cluster.objects.get(name="certs")
        assert cluster.control_plane_endpoint == f"{address}:6443" and cluster.encryption_algorithm == "ECDSA-P256"
        assert "certificateValidityPeriod: 480h0m0s" in cluster.kubeadm_config
        node = add_machine(cluster, sb, 1, user=operator, control_plane=True)
        run(start_init(cluster, node, user=operator))
        cluster = Cluster.objects.get(pk=cluster.pk)

        # --- inventory: short-lived certificates warn, nothing drifts --------------------------------
        run(certificates.start_inventory(cluster, user=operator))
        report = CertificateReport.objects.get(node=node)
        first = leaves(report)
        assert set(components.COMPONENT_OF_CERTIFICATE) <= set(first), sorted(first)
        for name, row in first.items():
            assert 19 < row["days_left"] <= 20, (name, row["days_left"])
            assert row["warning"] == "30", (name, row)
            assert row["custody"].startswith("signed by Kubeboard's"), (name, row["custody"])
            assert row["drift"] == [], (name, row["drift"])
            assert row["kubeadm_expires"][:16] == row["not_after"][:16]
        assert "kubeboard.example" in first["apiserver"]["dns"]
        cas = [r for r in report.rows if r["kind"] == "ca"]
        assert {r["custody"] for r in cas} == {"same as Kubeboard's"} and not any(r["warning"] for r in cas)
        assert served(address).serial_number == int(first["apiserver"]["serial"], 16)

        # --- the renewal policy renews on its schedule ---------------------------------------------
        RenewalPolicy.objects.create(cluster=cluster, enabled=True, renew_below_days=30, next_check_at=timezone.now())
        (check,) = certificates.due_renewal_checks()
        before = timezone.now()
        run(check)
        renewal = Operation.objects.get(cluster=cluster, kind=certificates.RENEW_KIND, created_at__gte=before)
        assert renewal.params["names"] == ["all"] and "policy" in renewal.params["reason"]
        run(renewal)
        after = leaves(CertificateReport.objects.get(node=node))
        for name in first:
            assert after[name]["serial"] != first[name]["serial"], f"{name} was not renewed"
            assert after[name]["not_before"] > first[name]["not_before"]
            assert after[name]["drift"] == []
            assert after[name]["kubeadm_expires"][:16] == after[name]["not_after"][:16]
        assert served(address).serial_number == int(after["apiserver"]["serial"], 16)
        assert certificates.due_renewal_checks() == []  # not due again before its next check

        # --- a SAN through the same flow --------------------------------------------------------------
        with pytest.raises(certificates.CertificatesRefused, match="neither an IP address nor a DNS name"):
            certificates.start_renewal(cluster, names=[], add_sans=["not a name!"], user=operator)
        with pytest.raises(certificates.CertificatesRefused, match="kubeadm cannot renew"):
            certificates.start_renewal(cluster, names=["kubelet.conf"], user=operator)
        run(
            certificates.start_renewal(
                cluster, names=[], add_sans=["api.kubeboard.test", "10.213.94.200"], user=operator
            )
        )
        dns, ips = pki.alt_names(served(address))
        assert "api.kubeboard.test" in dns and "10.213.94.200" in ips and "kubeboard.example" in dns
        live = kubeadm_config.parse_config(
            kube.config_map(cluster, "kube-system", "kubeadm-config")["ClusterConfiguration"]
        )
        assert live.cluster.api_server.cert_sans == ["kubeboard.example", "api.kubeboard.test", "10.213.94.200"]
        stored = kubeadm_config.parse_config(StoredConfiguration.objects.get(cluster=cluster).text).cluster
        assert stored.api_server.cert_sans == live.cluster.api_server.cert_sans

        # --- configuration in and out -------------------------------------------------------------
        view = config_io.live_view(cluster)
        assert view.error == "" and view.drift == [], view.drift
        assert view.kubelet_findings == []
        behind_our_back = live.cluster
        behind_our_back.certificate_validity_period = datetime.timedelta(hours=100)
        kube.patch_config_map(
            cluster, "kube-system", "kubeadm-config",
            {"ClusterConfiguration": kubeadm_config.render_cluster_config(behind_our_back)},
        )  # fmt: skip
        drift = config_io.live_view(cluster).drift
        assert [d["path"] for d in drift] == ["certificateValidityPeriod"], drift
        exported = kubeadm_config.parse_config(config_io.export_text(cluster))
        assert exported.init is not None and exported.cluster.certificate_validity_period == datetime.timedelta(
            hours=480
        )
        assert exported.cluster.api_server.cert_sans == ["kubeboard.example", "api.kubeboard.test", "10.213.94.200"]
