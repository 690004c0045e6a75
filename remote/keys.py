"""SSH keys: the per-cluster Ed25519 key pair, pasted private keys, host key fingerprints.

Fingerprints are written exactly as ``ssh-keygen -l`` prints them: ``SHA256:`` and the
unpadded base64 of the SHA-256 of the key blob, so a person can compare them with what the
machine's own ``ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`` shows.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncssh


class InvalidKey(ValueError):
    """A key could not be read; the message says why in words a person can act on."""


@dataclass(frozen=True)
class KeyPair:
    private_key: str  # the OpenSSH private key file format (asyncssh export)
    public_key: str  # one authorized_keys line
    fingerprint: str


def generate_key_pair(comment: str) -> KeyPair:
    key = asyncssh.generate_private_key("ssh-ed25519", comment=comment)
    return KeyPair(
        private_key=key.export_private_key("openssh").decode(),
        public_key=key.export_public_key("openssh").decode().strip(),
        fingerprint=key.get_fingerprint("sha256"),
    )


def load_private_key(text: str, passphrase: str | None = None) -> asyncssh.SSHKey:
    """Parse a private key a person pasted or uploaded; raises ``InvalidKey`` with the reason."""
    text = (text or "").strip()
    if not text:
        raise InvalidKey("Paste or upload the private key.")
    if text.startswith(("ssh-", "ecdsa-", "sk-")) or "PUBLIC KEY" in text.splitlines()[0]:
        raise InvalidKey(
            "This is a public key. Kubeboard needs the private key (the file without .pub, "
            "such as ~/.ssh/id_ed25519); the public key goes on the machine."
        )
    if "PRIVATE KEY" not in text:
        raise InvalidKey(
            "Not a private key: expected the whole private key file (OpenSSH, RSA, EC or PKCS#8 PEM), "
            "such as ~/.ssh/id_ed25519."
        )
    try:
        return asyncssh.import_private_key(text + "\n", passphrase or None)
    except asyncssh.KeyEncryptionError as exc:
        if passphrase:
            raise InvalidKey("The passphrase does not decrypt this private key.") from exc
        raise InvalidKey("This private key is encrypted: enter its passphrase.") from exc
    except (asyncssh.KeyImportError, ValueError) as exc:
        message = str(exc)
        if "passphrase" in message.lower():
            raise InvalidKey("This private key is encrypted: enter its passphrase.") from exc
        raise InvalidKey(f"The private key could not be read ({message}); paste the whole file.") from exc


MIN_RSA_BITS = 2048


def check_key_strength(key: asyncssh.SSHKey) -> None:
    """Refuse a key too weak to log in to a cluster's machines with (``InvalidKey`` says why)."""
    algorithm = key.get_algorithm()
    if algorithm == "ssh-dss":
        raise InvalidKey(
            "This is a DSA key: DSA keys are 1024 bits, too weak, and OpenSSH no longer accepts them. "
            "Create a new key (ssh-keygen -t ed25519) and use that one."
        )
    if algorithm == "ssh-rsa":
        bits = key.pyca_key.key_size
        if bits < MIN_RSA_BITS:
            raise InvalidKey(
                f"This RSA key has {bits} bits; Kubeboard needs at least {MIN_RSA_BITS} (shorter RSA keys can be "
                "broken). Create a new key (ssh-keygen -t ed25519, or -t rsa -b 4096) and use that one."
            )


def load_new_private_key(text: str, passphrase: str | None = None) -> asyncssh.SSHKey:
    """A private key a person gives Kubeboard to store: readable (``load_private_key``) and strong enough."""
    key = load_private_key(text, passphrase)
    check_key_strength(key)
    return key


def host_key_line(key: asyncssh.SSHKey) -> str:
    """How a host key is stored: ``<algorithm> <base64>`` (no comment, so equal keys compare equal)."""
    algorithm, blob = key.export_public_key("openssh").decode().split()[:2]
    return f"{algorithm} {blob}"


def import_public_key(line: str) -> asyncssh.SSHKey:
    try:
        return asyncssh.import_public_key(line.strip())
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise InvalidKey(f"Not an SSH public key: {exc}") from exc


def fingerprint(key_or_line: asyncssh.SSHKey | str) -> str:
    key = import_public_key(key_or_line) if isinstance(key_or_line, str) else key_or_line
    return key.get_fingerprint("sha256")
