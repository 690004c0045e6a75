"""Exception types for bad input.

Every message says which field was wrong, what was expected and what was
found, so a person can act on it. Messages never contain a secret: callers
pass ``secret=True`` (or use ``redact``) for token secrets, certificate keys
and private keys, and only a shape description is shown.
"""

from __future__ import annotations


class KubeadmError(Exception):
    """Base class for every error raised by the kubeadm package."""


def redact(value: object) -> str:
    """Describe a secret value without revealing it."""
    if value is None:
        return "nothing"
    if isinstance(value, (str, bytes)):
        return f"<redacted, {len(value)} characters>"
    return f"<redacted {type(value).__name__}>"


class ConfigError(KubeadmError):
    """A configuration field holds a value kubeadm would reject."""

    def __init__(self, field: str, expected: str, found: object, *, secret: bool = False, hint: str = "") -> None:
        self.field = field
        self.expected = expected
        # Only a description of a secret is ever stored on the exception.
        self.found = redact(found) if secret else found
        self.hint = hint
        super().__init__(self._message())

    def _message(self) -> str:
        found = self.found if isinstance(self.found, str) and self.found.startswith("<") else repr(self.found)
        message = f"{self.field}: expected {self.expected}, found {found}"
        if self.hint:
            message += f" ({self.hint})"
        return message


class UnsupportedVersionError(ConfigError):
    """A Kubernetes version is malformed or outside the supported window."""


class YAMLFormatError(ConfigError):
    """Text is not YAML, or a document is not a kubeadm object."""


class YAMLLimitError(YAMLFormatError):
    """YAML passes a reading limit (size, nesting, aliases, expanded values, number length)."""


class DurationError(ConfigError):
    """A Go duration string (e.g. "24h0m0s") cannot be parsed."""


class DurationRangeError(DurationError):
    """A duration is longer than Go's time.Duration holds (int64 nanoseconds, about 292 years)."""


class TokenFormatError(KubeadmError):
    """A bootstrap token does not match [a-z0-9]{6}.[a-z0-9]{16}.

    The message describes the shape only; it never echoes the token secret.
    """


class CertificateError(KubeadmError):
    """A certificate is malformed, mismatched or cannot be issued."""


class PrivateKeyError(KubeadmError):
    """A private key is malformed, unsupported or does not match its certificate."""


class PinError(KubeadmError):
    """A CA public-key pin is malformed or does not match the CA."""


class JWSError(KubeadmError):
    """A detached JWS is malformed or its signature does not verify."""


class CertificateKeyError(KubeadmError):
    """A certificate key (upload-certs AES key) is malformed or cannot decrypt."""


class KubeconfigError(KubeadmError):
    """A kubeconfig file is malformed or lacks a required entry."""
