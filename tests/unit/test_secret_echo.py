"""No form sends back a submitted secret (private keys, passphrases, passwords, kubeconfigs, tokens).

Every form that takes one is submitted with each kind of mistake; the page that answers must not
contain the secret nor any distinctive piece of it (a line of a PEM body, a token's secret half,
a slice of a base64 value), raw or HTML-escaped, and must tell the person, next to the field, to
supply it again. Django test client against the real views, templates and database.
"""

from __future__ import annotations

import re

import asyncssh
import pytest
import yaml
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from clusters.models import Cluster
from kubeadm import kubeconfig as kubeconfig_files
from kubeadm import pki
from nodes.models import Node
from remote import keys
from tests.conftest import team_of
from tests.factories import make_cluster
from tokens.models import BootstrapToken

pytestmark = pytest.mark.django_db

KEY = keys.generate_key_pair("echo-test").private_key
ENCRYPTED_KEY = (
    asyncssh.generate_private_key("ssh-ed25519")
    .export_private_key("openssh", passphrase="Correct-Horse-Battery-9")
    .decode()
)
RSA_1024 = asyncssh.generate_private_key("ssh-rsa", key_size=1024).export_private_key("pkcs1-pem").decode()
PASSPHRASE = "Wrong-Passphrase-Kx93q"
PASSWORD = "Pw-Zq8xv-Secret-Tm4w"
TOKEN = "qwe123.zx8vb7nm6lk5jh4g"
KUBE_TOKEN = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LXNlcnZpY2UtYWNjb3VudA.k8sBearerSignaturePart42"
CERTIFICATE_KEY = "9f" * 32

MACHINE = {"name": "cp1", "address": "10.0.0.11", "ssh_port": "22", "ssh_user": "root", "role": "control-plane"}


def fragments(secret: str) -> set[str]:
    """The secret and the pieces that would give it away."""
    found = {secret.strip()}
    for line in secret.splitlines():
        line = line.strip()
        if len(line) >= 12 and "PRIVATE KEY" not in line and not line.startswith(("Proc-Type", "DEK-Info")):
            found.add(line)
    for piece in list(found):
        found.update(piece[i : i + 24] for i in range(0, len(piece) - 23, 24))
    if re.fullmatch(r"[a-z0-9]{6}\.[a-z0-9]{16}", secret):
        found.add(secret.split(".")[1])  # the id is public; the other half is the secret
    return found


def assert_not_echoed(response, *secrets: str) -> None:
    body = response.content.decode()
    for secret in secrets:
        for piece in fragments(secret):
            assert piece not in body and escape(piece) not in body, f"{piece[:30]}… was sent back"


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


# --- machines ------------------------------------------------------------------------------


@pytest.fixture
def cluster(operator):
    return make_cluster("c1", team=team_of(operator))


KEY_MISTAKES = [
    ({"address": "10.0.0.300"}, "address"),
    ({"address": "root@node1"}, "address"),
    ({"ssh_port": "0"}, "ssh_port"),
    ({"ssh_port": "70000"}, "ssh_port"),
    ({"ssh_user": "Root User"}, "ssh_user"),
    ({"name": "CP_1"}, "name"),
    ({"name": "taken"}, "name"),
    ({"address": "10.0.0.99"}, "address"),  # the machine of node "taken"
    ({"role": "queen"}, "role"),
    ({"ignore_preflight_errors": "all, CRI"}, "ignore_preflight_errors"),
    ({"ignore_preflight_errors": "Port-6443; rm"}, "ignore_preflight_errors"),
    ({"credential": ""}, "credential"),
]


@pytest.mark.parametrize(("mistake", "field"), KEY_MISTAKES)
def test_machine_form_never_returns_the_pasted_key(operator, cluster, mistake, field):
    Node.objects.create(cluster=cluster, name="taken", address="10.0.0.99")
    data = {**MACHINE, "credential": "private-key", "private_key": KEY, **mistake}
    response = client_for(operator).post(reverse("nodes:add", args=[cluster.name]), data)
    assert response.status_code == 400 and field in response.context["form"].errors
    assert_not_echoed(response, KEY)
    assert 'id="resupply-private_key"' in response.content.decode()
    assert "paste it again" in response.content.decode()
    assert Node.objects.count() == 1


@pytest.mark.parametrize(
    ("key", "passphrase", "field"),
    [
        (ENCRYPTED_KEY, PASSPHRASE, "passphrase"),  # the wrong passphrase
        (ENCRYPTED_KEY, "", "passphrase"),  # none given
        (RSA_1024, "", "private_key"),  # too weak
        (KEY, PASSPHRASE, "address"),  # a passphrase for nothing, and a bad address
    ],
)
def test_machine_form_never_returns_a_key_or_its_passphrase(operator, cluster, key, passphrase, field):
    data = {**MACHINE, "credential": "private-key", "private_key": key, "passphrase": passphrase}
    if field == "address":
        data["address"] = "10.0.0.300"
    response = client_for(operator).post(reverse("nodes:add", args=[cluster.name]), data)
    assert response.status_code == 400 and field in response.context["form"].errors
    assert_not_echoed(response, key, *([passphrase] if passphrase else []))
    body = response.content.decode()
    assert 'id="resupply-private_key"' in body
    assert ('id="resupply-passphrase"' in body) == bool(passphrase)
    assert not Node.objects.exists()


def test_machine_form_never_returns_an_uploaded_key(operator, cluster):
    upload = SimpleUploadedFile("id_ed25519", KEY.encode())
    data = {**MACHINE, "address": "10.0.0.300", "credential": "private-key", "private_key_file": upload}
    response = client_for(operator).post(reverse("nodes:add", args=[cluster.name]), data)
    assert response.status_code == 400
    assert_not_echoed(response, KEY)
    assert "choose it again" in response.content.decode()


def test_a_pasted_and_uploaded_key_is_refused_and_neither_returned(operator, cluster):
    other = keys.generate_key_pair("other").private_key
    data = {
        **MACHINE,
        "credential": "private-key",
        "private_key": KEY,
        "private_key_file": SimpleUploadedFile("id_ed25519", other.encode()),
    }
    response = client_for(operator).post(reverse("nodes:add", args=[cluster.name]), data)
    assert response.status_code == 400 and "not both" in " ".join(response.context["form"].errors["private_key"])
    assert_not_echoed(response, KEY, other)


@pytest.mark.parametrize(("mistake", "field"), KEY_MISTAKES[:6])
def test_machine_form_never_returns_the_password(operator, cluster, mistake, field):
    data = {**MACHINE, "credential": "password", "password": PASSWORD, **mistake}
    response = client_for(operator).post(reverse("nodes:add", args=[cluster.name]), data)
    assert response.status_code == 400 and field in response.context["form"].errors
    assert_not_echoed(response, PASSWORD)
    body = response.content.decode()
    assert 'id="resupply-password"' in body and "type it again" in body


def test_machine_edit_never_returns_a_new_key_or_password(operator, cluster):
    node = Node.objects.create(cluster=cluster, name="cp1", address="10.0.0.11")
    url = reverse("nodes:edit", args=[cluster.name, node.name])
    for secret in ({"credential": "private-key", "private_key": KEY}, {"credential": "password", "password": PASSWORD}):
        response = client_for(operator).post(url, {**MACHINE, "ssh_user": "Root User", **secret})
        assert response.status_code == 400
        assert_not_echoed(response, KEY, PASSWORD)
    node.refresh_from_db()
    assert node.credential == "cluster-key" and not node.ssh_private_key and not node.ssh_password


# --- adoption --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> pki.KeyPair:
    return pki.generate_ca("kubernetes", "ECDSA-P256")


def kubeconfig(ca, *, server: str = "https://192.0.2.1:6443", token: bool = True, **cluster_extra) -> str:
    client = None if token else kubeconfig_files.issue_client(ca, "kubernetes-admin", (), algorithm="ECDSA-P256")
    config = kubeconfig_files.build_kubeconfig(
        server, "kubernetes", "kubernetes-admin", ca.cert, client=client, token=KUBE_TOKEN if token else None
    )
    config["clusters"][0]["cluster"].update(cluster_extra)
    return yaml.safe_dump(config)


def kubeconfig_secrets(text: str) -> list[str]:
    user = yaml.safe_load(text)["users"][0]["user"]
    return [value for name, value in user.items() if name in ("token", "client-key-data")]


@pytest.fixture
def team_admin(make_user):
    return make_user("ada", team="platform", role="admin")


ADOPT_MISTAKES = [
    ({"name": "Bad_Name"}, "name"),
    ({"name": "existing"}, "name"),
    ({"team": ""}, "team"),
    ({"team": "other"}, "team"),
    ({"server": "http://192.0.2.1:6443"}, "kubeconfig_text"),  # refused: not https
    ({"insecure-skip-tls-verify": True}, "kubeconfig_text"),
    ({}, "kubeconfig_text"),  # the API server cannot be reached (the network guard)
    ({"broken": True}, "kubeconfig_text"),
    ({"huge": True}, "kubeconfig_text"),
]


@pytest.mark.parametrize("token", [True, False], ids=["token", "client-key"])
@pytest.mark.parametrize(("mistake", "field"), ADOPT_MISTAKES)
def test_adopt_form_never_returns_the_kubeconfig(make_user, team_admin, ca, token, mistake, field):
    make_cluster("existing", team=team_of(team_admin))
    other_team = team_of(make_user("otto", team="other", role="admin"))
    mistake = dict(mistake)
    server = mistake.pop("server", "https://192.0.2.1:6443")
    broken, huge = mistake.pop("broken", False), mistake.pop("huge", False)
    team = {"": "", "other": other_team.pk}.get(mistake.pop("team", None), team_of(team_admin).pk)
    text = kubeconfig(ca, server=server, token=token, **{k: v for k, v in mistake.items() if k != "name"})
    secrets = kubeconfig_secrets(text)
    if broken:
        text += "\n  users: [unclosed\n"
    if huge:
        text += "#" * (300 * 1024)
    data = {"name": mistake.get("name", "adopted"), "team": team, "kubeconfig_text": text}
    response = client_for(team_admin).post(reverse("adopt-cluster"), data)
    assert response.status_code == 400 and field in response.context["form"].errors, response.context["form"].errors
    assert_not_echoed(response, *secrets)
    assert 'id="resupply-kubeconfig_text"' in response.content.decode()
    assert not Cluster.objects.filter(name="adopted").exists()


def test_adopt_form_never_returns_an_uploaded_or_doubled_kubeconfig(team_admin, ca):
    text = kubeconfig(ca)
    url = reverse("adopt-cluster")
    for data in (
        {"name": "Bad_Name", "kubeconfig_file": SimpleUploadedFile("admin.conf", text.encode())},
        {"name": "adopted", "kubeconfig_text": text, "kubeconfig_file": SimpleUploadedFile("a.conf", text.encode())},
    ):
        response = client_for(team_admin).post(url, {"team": team_of(team_admin).pk, **data})
        assert response.status_code == 400
        assert_not_echoed(response, KUBE_TOKEN)
        assert "again" in response.content.decode()


@pytest.mark.parametrize("server", ["http://kube:s3cretPassw0rd@192.0.2.1:6443", "https://kube:s3cretPassw0rd@[::1"])
def test_adopt_refusal_never_repeats_a_password_in_the_server_url(team_admin, ca, server):
    text = kubeconfig(ca, server=server)
    data = {"name": "adopted", "team": team_of(team_admin).pk, "kubeconfig_text": text}
    response = client_for(team_admin).post(reverse("adopt-cluster"), data)
    assert response.status_code == 400
    assert "server" in str(response.context["form"].errors["kubeconfig_text"])
    assert_not_echoed(response, "s3cretPassw0rd")


# --- tokens ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mistake",
    [
        {"ttl": "banana"},
        {"ttl": "8d"},
        {"ttl": "0"},
        {"ttl": "1h", "expires_at": "2099-01-01T00:00"},
        {"expires_at": "2001-01-01T00:00"},
        {"expires_at": "not a date"},
        {"usages": ["bogus"]},
        {"groups": "system:nodes"},
        {"description": "x" * 300},
        {"token": "QWE123.zx8vb7nm6lk5jh4g"},
        {"token": "qwe123.zx8vb7nm6lk5jh4"},
        {"token": TOKEN + "x"},
        {"duplicate": True},
    ],
)
def test_token_form_never_returns_the_token(operator, cluster, mistake):
    mistake = dict(mistake)
    if mistake.pop("duplicate", False):
        BootstrapToken.objects.create(cluster=cluster, token_id="qwe123", secret="a" * 16)
    data = {"token": TOKEN, "usages": ["signing", "authentication"], "groups": "", **mistake}
    response = client_for(operator).post(reverse("tokens:create", args=[cluster.name]), data)
    assert response.status_code == 400
    assert_not_echoed(response, TOKEN, data["token"])
    assert 'id="resupply-token"' in response.content.decode()
    assert not BootstrapToken.objects.filter(secret="zx8vb7nm6lk5jh4g").exists()


# --- a kubeadm file with secrets -------------------------------------------------------------

CONFIG_WITH_SECRETS = f"""\
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
bootstrapTokens:
- token: {TOKEN}
certificateKey: {CERTIFICATE_KEY}
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.37.2
controlPlaneEndpoint: 10.0.0.10:6443
networking:
  podSubnet: 10.244.0.0/16
"""


@pytest.mark.parametrize(
    "mistake",
    [{"name": "Bad_Name"}, {"team": ""}, {"text": CONFIG_WITH_SECRETS + "bogus: 1\n"}],
    ids=["name", "team", "unknown-field"],
)
def test_import_form_never_returns_a_file_that_holds_a_token(operator, mistake):
    data = {"name": "imported", "team": team_of(operator).pk, "text": CONFIG_WITH_SECRETS, **mistake}
    response = client_for(operator).post(reverse("import-cluster"), data)
    assert response.status_code == 400
    assert_not_echoed(response, TOKEN, CERTIFICATE_KEY)
    assert 'id="resupply-text"' in response.content.decode()
    assert not Cluster.objects.filter(name="imported").exists()


# --- passwords (Django's own forms: kept write-only) ------------------------------------------


def test_login_and_admin_password_forms_never_return_the_password(make_user):
    user = make_user("lena", role="viewer")
    response = Client().post(reverse("login"), {"username": user.username, "password": PASSWORD})
    assert response.status_code == 200 and b"password didn't match" in response.content
    assert_not_echoed(response, PASSWORD)
    root = client_for(make_user("root", team=None, superuser=True))
    add = root.post(reverse("admin:auth_user_add"), {"username": "new", "password1": PASSWORD, "password2": "x"})
    assert add.status_code == 200 and add.context["adminform"].form.errors
    assert_not_echoed(add, PASSWORD)
    change = root.post(
        reverse("admin:auth_user_password_change", args=[user.pk]), {"password1": PASSWORD, "password2": "y"}
    )
    assert change.status_code == 200
    assert_not_echoed(change, PASSWORD)
