"""Issue 20: a custom pod network manifest, uploaded or downloaded from an https URL with its
SHA-256 — the bounded download (a real HTTPS server on 127.0.0.1 with its own CA), the refusals
on the forms (naming the document and line, before anything is stored or applied), what is kept
and audited, and what the pod-network operation is started with."""

from __future__ import annotations

import hashlib
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from addons import manifests
from audit.models import AuditEvent
from clusters import pod_network
from clusters.models import Cluster, PodNetworkManifest
from core.download import DownloadError, fetch
from nodes.models import Node
from operations.models import Operation
from tests.conftest import team_of
from tests.factories import CLUSTER_FORM
from tests.support.https_server import Route, https_server
from tests.unit.test_pod_network_choice import running  # noqa: F401 (the same running cluster fixture)
from workflows import network
from workflows.network import PodNetworkRefused, start_pod_network

CNI = (
    b"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: my-cni\n---\n"
    b"apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: my-cni\n  namespace: my-cni\n"
    b"spec:\n  selector:\n    matchLabels: {app: my-cni}\n  template:\n    metadata:\n      labels: {app: my-cni}\n"
    b"    spec:\n      containers:\n      - name: cni\n        image: quay.io/me/cni:v1\n"
)
CNI_SHA = hashlib.sha256(CNI).hexdigest()
# Document 2 starts on line 5; its line 7 opens a flow sequence that never closes.
BROKEN = b"apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: x\n  b: [\n"


@pytest.fixture
def served(tmp_path, monkeypatch):
    with https_server(tmp_path, {"/cni.yaml": Route(CNI), "/broken.yaml": Route(BROKEN)}) as server:
        # OpenSSL's defaults read this at each context: the operator's way to trust a private CA.
        monkeypatch.setenv("SSL_CERT_FILE", str(server.ca_file))
        yield server


# --- the download --------------------------------------------------------------------------------


def test_a_download_is_verified_tls_and_follows_https_redirects(served):
    served.routes["/latest"] = Route(status=302, headers={"Location": "/cni.yaml", "Content-Length": "0"})
    assert fetch(served.url("/latest"), max_bytes=1 << 20, timeout=10) == CNI
    assert served.requests == ["/latest", "/cni.yaml"]


def test_a_download_stops_at_its_size_bound_whether_or_not_the_server_says_the_length(served):
    served.routes["/said"] = Route(b"#" * 5000)
    served.routes["/unsaid"] = Route(b"#" * 5000, drip_seconds=0.001)  # no Content-Length: read until the bound
    with pytest.raises(DownloadError, match=r"/said is 5000 bytes; at most 4 KiB"):
        fetch(served.url("/said"), max_bytes=4096, timeout=10)
    with pytest.raises(DownloadError, match=r"/unsaid is larger than 4 KiB"):
        fetch(served.url("/unsaid"), max_bytes=4096, timeout=10)


def test_a_download_stops_at_its_time_bound(served):
    served.routes["/slow"] = Route(b"#" * 20 * 1024, drip_seconds=0.3)
    with pytest.raises(DownloadError, match=r"/slow: not downloaded within 1 s"):
        fetch(served.url("/slow"), max_bytes=1 << 20, timeout=1)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1/cni.yaml", "is not an https:// URL; Kubeboard downloads only over TLS"),
        ("https://user:secret@127.0.0.1/cni.yaml", "the URL carries a user name or password"),
        # A sandbox-range address: the connection guard refuses it before any packet is sent.
        ("https://10.213.251.1/cni.yaml", "refused by the network guard"),
    ],
)
def test_a_download_is_refused_before_any_connection(url, message):
    with pytest.raises(DownloadError, match=re.escape(message)) as caught:
        fetch(url, max_bytes=1 << 20, timeout=5)
    assert "secret" not in str(caught.value)


def test_a_download_names_an_untrusted_certificate_and_an_http_error(tmp_path, served, monkeypatch):
    with pytest.raises(DownloadError, match=r"/nothing answered HTTP 404"):
        fetch(served.url("/nothing"), max_bytes=1 << 20, timeout=5)
    served.routes["/away"] = Route(status=301, headers={"Location": "http://127.0.0.1/x", "Content-Length": "0"})
    with pytest.raises(DownloadError, match=r"redirected to http://127.0.0.1/x is not an https:// URL"):
        fetch(served.url("/away"), max_bytes=1 << 20, timeout=5)
    other = tmp_path / "other-ca.pem"
    other.write_bytes(b"")
    monkeypatch.setenv("SSL_CERT_FILE", str(other))  # the system's CAs only: the test CA is unknown
    with pytest.raises(DownloadError, match=r"certificate is not trusted .*SSL_CERT_FILE"):
        fetch(served.url("/cni.yaml"), max_bytes=1 << 20, timeout=5)


# --- the new-cluster form ------------------------------------------------------------------------

pytestmark_db = pytest.mark.django_db(transaction=True)


def create(client, user, files=None, **changes):
    data = dict(CLUSTER_FORM, name="net1", team=team_of(user).pk, pod_network="custom") | changes
    client.force_login(user)
    return client.post("/clusters/new/", data | (files or {}))


def field_errors(response, field: str) -> list[str]:
    html = response.content.decode().replace("&#x27;", "'").replace("&quot;", '"')
    return re.findall(rf'<p class="error" id="error-{field}">(.*?)</p>', html, re.S)


@pytestmark_db
def test_an_uploaded_manifest_is_kept_with_its_sha256_and_audited(client, operator):
    upload = SimpleUploadedFile("my-cni.yaml", CNI, "application/yaml")
    response = create(client, operator, {"manifest_file": upload}, pod_network_registry="registry.local:5000")
    assert response.status_code == 302, response.content.decode()[:3000]
    cluster = Cluster.objects.get(name="net1")
    assert (cluster.pod_network, cluster.pod_network_version) == ("custom", "sha256:" + CNI_SHA[:16])
    assert cluster.pod_network_label == "Custom manifest sha256:" + CNI_SHA[:16]
    stored = PodNetworkManifest.objects.get(cluster=cluster)
    assert (stored.text.encode(), stored.sha256, stored.source, stored.object_count) == (
        CNI,
        CNI_SHA,
        "my-cni.yaml",
        2,
    )
    record = AuditEvent.objects.get(action="cluster.created")
    assert record.details["pod_network_manifest"] == {"source": "my-cni.yaml", "sha256": CNI_SHA, "objects": 2}
    # Images are the one substitution: moved to the registry, nothing else touched.
    objects = manifests.render_custom(stored.text.encode(), cluster.pod_network_registry)
    assert manifests.images(objects[1]) == ["registry.local:5000/me/cni:v1"]
    assert objects[0] == manifests.parse(CNI)[0]


@pytestmark_db
def test_init_applies_the_kept_manifest_only_while_its_bytes_are_the_ones_checked(client, operator):
    """What init's pod-network phase and the operation render: the kept bytes, images moved, and
    a stored text that no longer has the SHA-256 the choice was made with is refused."""
    upload = SimpleUploadedFile("my-cni.yaml", CNI)
    assert create(client, operator, {"manifest_file": upload}, pod_network_registry="r.local").status_code == 302
    cluster = Cluster.objects.get(name="net1")
    choice = network.cluster_choice(cluster)
    assert choice == manifests.Choice("custom", f"sha256:{CNI_SHA[:16]}", "r.local", CNI_SHA)
    assert network.label_of(choice) == f"Custom manifest sha256:{CNI_SHA[:16]}"
    objects = network.render(cluster, choice)
    assert [manifests.describe(o) for o in objects] == ["Namespace my-cni", "DaemonSet my-cni/my-cni"]
    assert manifests.images(objects[1]) == ["r.local/me/cni:v1"]
    PodNetworkManifest.objects.filter(cluster=cluster).update(text=CNI.decode() + "# edited\n")
    with pytest.raises(manifests.ManifestError, match=f"my-cni.yaml has SHA-256 .*, not the {CNI_SHA} given"):
        network.render(cluster, choice)


@pytestmark_db
@pytest.mark.parametrize(
    ("upload", "sha256", "field", "message"),
    [
        (BROKEN, "", "manifest_file", "broken.yaml: document 2 (from line 5), line 7: "),
        (
            b"apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n# the config\napiVersion: v1\nkind: ConfigMap\n",
            "",
            "manifest_file",
            "broken.yaml: document 2 (from line 5), line 6: ConfigMap without metadata.name",
        ),
        (CNI, "0" * 64, "manifest_file", f"broken.yaml has SHA-256 {CNI_SHA}, not the {'0' * 64} given"),
        (b"\x00" * (manifests.MAX_MANIFEST_BYTES + 1), "", "manifest_file", "at most 4096 KiB"),
    ],
)
def test_a_bad_upload_is_refused_naming_the_document_and_line_and_nothing_is_kept(
    client, operator, upload, sha256, field, message
):
    files = {"manifest_file": SimpleUploadedFile("broken.yaml", upload)}
    response = create(client, operator, files, manifest_sha256=sha256)
    assert response.status_code == 400
    errors = field_errors(response, field)
    assert len(errors) == 1 and message in errors[0], errors
    assert not Cluster.objects.exists() and not PodNetworkManifest.objects.exists()


@pytestmark_db
def test_a_file_or_url_without_the_custom_choice_is_refused(client, operator):
    response = create(client, operator, pod_network="flannel v0.28.9", manifest_url="https://example.test/x.yaml")
    assert field_errors(response, "pod_network") == ["choose Custom manifest to apply the file or URL given"]


# --- the cluster page: a URL with its SHA-256 ----------------------------------------------------


def said(response) -> str:
    return " ".join(str(m) for m in response.wsgi_request._messages)


@pytestmark_db
def test_a_url_with_a_wrong_checksum_or_broken_yaml_is_refused_before_anything(client, running, operator, served):  # noqa: F811
    client.force_login(operator)
    url = f"/clusters/{running.name}/pod-network-settings/"
    data = {"pod_network": "custom", "manifest_url": served.url("/cni.yaml"), "manifest_sha256": "1" * 64}
    response = client.post(url, data)
    assert response.status_code == 302
    assert f"{served.url('/cni.yaml')} has SHA-256 {CNI_SHA}, not the {'1' * 64} given: nothing was applied" in said(
        response
    )
    broken = hashlib.sha256(BROKEN).hexdigest()
    response = client.post(url, data | {"manifest_url": served.url("/broken.yaml"), "manifest_sha256": broken})
    assert f"{served.url('/broken.yaml')}: document 2 (from line 5), line 7" in said(response)
    running.refresh_from_db()
    assert running.pod_network == "" and not PodNetworkManifest.objects.exists()
    assert not AuditEvent.objects.filter(action="cluster.pod_network_changed").exists()
    assert not Operation.objects.filter(kind="pod-network").exists()


@pytestmark_db
def test_a_url_manifest_is_kept_shown_and_started_with_its_sha256(client, running, operator, served):  # noqa: F811
    client.force_login(operator)
    url = f"/clusters/{running.name}/pod-network-settings/"
    # A pre-signed URL: its query is a credential, kept nowhere.
    served.routes["/cni.yaml?signature=s3cr3t"] = Route(CNI)
    signed = served.url("/cni.yaml?signature=s3cr3t")
    data = {"pod_network": "custom", "manifest_url": signed, "manifest_sha256": CNI_SHA.upper()}
    assert client.post(url, data).status_code == 302
    running.refresh_from_db()
    stored = PodNetworkManifest.objects.get(cluster=running)
    assert (stored.sha256, stored.source) == (CNI_SHA, served.url("/cni.yaml?…"))
    record = AuditEvent.objects.get(action="cluster.pod_network_changed")
    assert record.details["pod_network_manifest"]["sha256"] == CNI_SHA
    assert "text" not in str(record.details) and "my-cni" not in str(record.details)
    assert "s3cr3t" not in str(record.details)

    html = client.get(f"/clusters/{running.name}/").content.decode()
    assert f"<code>{served.url('/cni.yaml?…')}</code>, 2 objects, SHA-256 <code>{CNI_SHA}</code>" in html
    assert "s3cr3t" not in html
    assert '<option value="custom" selected>' in html
    assert f"Install Custom manifest sha256:{CNI_SHA[:16]}" in html

    # Saving again without a new file or URL keeps the stored manifest (a registry change, say).
    assert client.post(url, {"pod_network": "custom", "pod_network_registry": "registry.local:5000"}).status_code == 302
    assert PodNetworkManifest.objects.get(cluster=running).sha256 == CNI_SHA

    response = client.post(f"/clusters/{running.name}/pod-network/")
    operation = Operation.objects.get(kind="pod-network")
    assert response.url == operation.get_absolute_url()
    assert operation.params == {
        "network": "custom",
        "version": f"sha256:{CNI_SHA[:16]}",
        "image_registry": "registry.local:5000",
        "sha256": CNI_SHA,
    }


@pytestmark_db
def test_custom_without_a_stored_manifest_is_refused(running):  # noqa: F811
    Cluster.objects.filter(pk=running.pk).update(pod_network="custom")
    with pytest.raises(PodNetworkRefused, match="no custom manifest is stored for this cluster"):
        start_pod_network(Cluster.objects.get(pk=running.pk), "custom")


@pytestmark_db
def test_the_start_checks_the_same_addresses_as_the_forms(running):  # noqa: F811
    """One check (clusters.pod_network.cluster_fit_problems): the control-plane endpoint counts
    at the start too, not only the machines' addresses."""
    Node.objects.filter(cluster=running).update(address="10.1.0.11")
    Cluster.objects.filter(pk=running.pk).update(pod_subnet="10.0.0.0/16")  # holds the endpoint 10.0.0.10
    cluster = Cluster.objects.get(pk=running.pk)
    problems = pod_network.cluster_fit_problems(cluster, "flannel")
    assert problems == ["the pod subnet 10.0.0.0/16 holds the machine address 10.0.0.10"]
    with pytest.raises(PodNetworkRefused, match=re.escape(problems[0])):
        start_pod_network(cluster, "flannel")
