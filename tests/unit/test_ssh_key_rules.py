"""Which SSH private keys Kubeboard takes: RSA below 2048 bits and DSA are refused with the reason,
and a key both pasted and uploaded is refused as ambiguous, on the machine form and in
``manage.py node add --key-file`` alike."""

from __future__ import annotations

import asyncssh
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from nodes.models import Node
from tests.conftest import team_of
from tests.factories import make_cluster

pytestmark = pytest.mark.django_db

MACHINE = {"name": "cp1", "address": "10.0.0.11", "ssh_port": "22", "ssh_user": "root", "role": "control-plane"}


def private_key(algorithm: str, fmt: str = "openssh", **options) -> str:
    return asyncssh.generate_private_key(algorithm, **options).export_private_key(fmt).decode()


WEAK = [
    pytest.param(private_key("ssh-rsa", key_size=1024), "This RSA key has 1024 bits", id="rsa-1024-openssh"),
    pytest.param(private_key("ssh-rsa", "pkcs1-pem", key_size=1024), "has 1024 bits", id="rsa-1024-pem"),
    pytest.param(private_key("ssh-rsa", "pkcs8-pem", key_size=1536), "has 1536 bits", id="rsa-1536-pkcs8"),
    pytest.param(private_key("ssh-dss"), "This is a DSA key", id="dsa"),
]
STRONG = [
    pytest.param(private_key("ssh-rsa", key_size=2048), id="rsa-2048"),
    pytest.param(private_key("ssh-ed25519"), id="ed25519"),
    pytest.param(private_key("ecdsa-sha2-nistp256"), id="ecdsa-p256"),
]


@pytest.fixture
def cluster(operator):
    return make_cluster("c1", team=team_of(operator))


def post_key(user, cluster, **data):
    client = Client()
    client.force_login(user)
    return client.post(reverse("nodes:add", args=[cluster.name]), {**MACHINE, "credential": "private-key", **data})


@pytest.mark.parametrize(("key", "reason"), WEAK)
def test_weak_keys_are_refused_with_the_reason(operator, cluster, key, reason):
    for data in ({"private_key": key}, {"private_key_file": SimpleUploadedFile("id_rsa", key.encode())}):
        response = post_key(operator, cluster, **data)
        assert response.status_code == 400
        message = " ".join(response.context["form"].errors["private_key"])
        assert reason in message and "ssh-keygen -t ed25519" in message, message
    assert "at least 2048" in message or "DSA" in message
    assert not Node.objects.exists()


@pytest.mark.parametrize("key", STRONG)
def test_keys_of_2048_bits_and_more_are_taken(operator, cluster, key):
    response = post_key(operator, cluster, private_key=key)
    assert response.status_code == 302, response.context["form"].errors
    assert Node.objects.get().ssh_private_key.reveal().strip() == key.strip()


def test_a_key_pasted_and_uploaded_at_once_is_ambiguous(operator, cluster):
    pasted, uploaded = private_key("ssh-ed25519"), private_key("ssh-ed25519")
    for upload in (uploaded, pasted):  # even the same key twice: the person meant one of them
        response = post_key(
            operator, cluster, private_key=pasted, private_key_file=SimpleUploadedFile("id_ed25519", upload.encode())
        )
        assert response.status_code == 400
        errors = response.context["form"].errors
        assert list(errors) == ["private_key"], errors
        assert "paste the key or upload its file, not both" in errors["private_key"][0]
    assert not Node.objects.exists()


@pytest.mark.parametrize(("key", "reason"), WEAK)
def test_node_add_refuses_a_weak_key_file(cluster, tmp_path, key, reason):
    path = tmp_path / "id_key"
    path.write_text(key)
    with pytest.raises(CommandError) as refused:
        call_command("node", "add", cluster.name, "cp1", "--address", "10.0.0.11", "--key-file", str(path))
    assert reason in str(refused.value) and "--key-file" in str(refused.value)
    assert key.splitlines()[1] not in str(refused.value)
    assert not Node.objects.exists()


def test_node_add_takes_a_strong_key_file(cluster, tmp_path, capsys):
    path = tmp_path / "id_rsa"
    path.write_text(private_key("ssh-rsa", key_size=3072))
    call_command("node", "add", cluster.name, "cp1", "--address", "10.0.0.11", "--key-file", str(path))
    assert Node.objects.get().credential == Node.Credential.PRIVATE_KEY
