"""Secrets at rest: encrypted in the database, masked everywhere they could leak."""

import pytest
from cryptography.fernet import Fernet
from django.db import connection
from django.test import override_settings

from clusters.models import Cluster
from core import encryption
from core.encryption import MASK, SecretValue
from kubeadm.versions import DEFAULT_KUBERNETES_VERSION
from tests.support.processes import database_file_bytes
from tokens.models import BootstrapToken

SECRET = "0123456789abcdef"


@pytest.fixture
def cluster(db):
    return Cluster.objects.create(
        name="c1", kubernetes_version=DEFAULT_KUBERNETES_VERSION, control_plane_endpoint="10.0.0.1:6443"
    )


@pytest.mark.django_db
def test_secret_round_trips_and_is_masked(cluster):
    token = BootstrapToken.objects.create(cluster=cluster, token_id="abcdef", secret=SECRET)
    loaded = BootstrapToken.objects.get(pk=token.pk)
    assert isinstance(loaded.secret, SecretValue)
    assert loaded.secret.reveal() == SECRET
    assert str(loaded.secret) == MASK
    assert SECRET not in repr(loaded.secret)
    assert SECRET not in str(loaded)


@pytest.mark.django_db(transaction=True)
def test_database_file_holds_no_plaintext(cluster):
    BootstrapToken.objects.create(cluster=cluster, token_id="abcdef", secret=SECRET)
    raw = connection.cursor().execute("select secret from tokens_bootstraptoken").fetchone()[0]
    assert raw.startswith(encryption.PREFIX)
    assert SECRET not in raw
    if connection.vendor == "sqlite":
        assert SECRET.encode() not in database_file_bytes(connection.settings_dict["NAME"])


@pytest.mark.django_db
def test_key_rotation_reencrypts_under_new_key(cluster):
    from django.core.management import call_command

    token = BootstrapToken.objects.create(cluster=cluster, token_id="abcdef", secret=SECRET)
    old_cipher = BootstrapToken.objects.values_list("secret", flat=True).get(pk=token.pk).ciphertext
    current = (encryption.settings.ENCRYPTION_KEYS or encryption.settings.ENCRYPTION_KEY_FILE.read_text()).strip()
    new_key = Fernet.generate_key().decode()
    encryption.keyring.cache_clear()
    try:
        with override_settings(ENCRYPTION_KEYS=f"{new_key},{current}"):
            call_command("rotate_encryption_keys", stdout=open("/dev/null", "w"))
            stored = BootstrapToken.objects.get(pk=token.pk).secret
            assert stored.ciphertext != old_cipher
            assert stored.reveal() == SECRET
        encryption.keyring.cache_clear()
        with override_settings(ENCRYPTION_KEYS=new_key):
            assert BootstrapToken.objects.get(pk=token.pk).secret.reveal() == SECRET
    finally:
        encryption.keyring.cache_clear()


def test_wrong_key_is_a_clear_error():
    encryption.keyring.cache_clear()
    try:
        with override_settings(ENCRYPTION_KEYS=Fernet.generate_key().decode()):
            cipher = encryption.encrypt("x")
        encryption.keyring.cache_clear()
        with override_settings(ENCRYPTION_KEYS=Fernet.generate_key().decode()):
            with pytest.raises(encryption.DecryptionError, match="no configured encryption key"):
                encryption.decrypt(cipher)
    finally:
        encryption.keyring.cache_clear()


@pytest.mark.django_db
def test_admin_masks_secrets(cluster, make_user, client):
    token = BootstrapToken.objects.create(cluster=cluster, token_id="abcdef", secret=SECRET)
    client.force_login(make_user("root", superuser=True))
    for url in (f"/admin/tokens/bootstraptoken/{token.pk}/change/", "/admin/tokens/bootstraptoken/"):
        body = client.get(url).content.decode()
        assert SECRET not in body
    # the admin says a secret is set without showing it (core.admin_mixins)
    assert "set (hidden)" in client.get(f"/admin/tokens/bootstraptoken/{token.pk}/change/").content.decode()
