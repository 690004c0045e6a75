"""What a machine's address, SSH user and name may look like (its preflight ignore list: kubeadm.preflight)."""

from __future__ import annotations

import ipaddress
import re

from django.core.exceptions import ValidationError

from kubeadm.netutil import is_dns1123_subdomain

# RFC 1123 host names: dot-separated labels of letters, digits and '-', not starting or ending with '-'.
_HOST_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
# What useradd accepts by default on Debian/RHEL (NAME_REGEX), plus the trailing '$' of machine accounts.
_SSH_USER = re.compile(r"^[a-z_][a-z0-9_.-]{0,30}\$?$")


def normalize_address(value: str) -> str:
    """IP addresses in canonical form, host names lower-case without a trailing dot."""
    value = value.strip()
    try:
        return str(ipaddress.ip_address(value.strip("[]")))
    except ValueError:
        return value.rstrip(".").lower()


def validate_address(value: str) -> None:
    value = value.strip()
    try:
        ipaddress.ip_address(value.strip("[]"))
        return
    except ValueError:
        pass
    name = value.rstrip(".")
    if not name:
        raise ValidationError("Enter the machine's IP address or DNS host name.", code="address")
    if "://" in name or "/" in name or "@" in name or ":" in name:
        raise ValidationError(
            f"{value!r} is not an address: enter only the IP address or host name "
            "(no user@, port, scheme or path; the SSH port and user have their own fields).",
            code="address",
        )
    labels = name.split(".")
    if len(name) > 253 or not all(_HOST_LABEL.match(label) for label in labels):
        raise ValidationError(
            f"{value!r} is neither an IP address nor a valid DNS host name (letters, digits and '-' in "
            "dot-separated labels of at most 63 characters, not starting or ending with '-').",
            code="address",
        )
    if labels[-1].isdigit():
        raise ValidationError(
            f"{value!r} looks like an IP address but is not a valid one (four numbers 0-255 for IPv4).",
            code="address",
        )


def validate_ssh_user(value: str) -> None:
    if not _SSH_USER.match(value):
        raise ValidationError(
            f"{value!r} is not a valid user name: use lower-case letters, digits, '_', '.' and '-', "
            "starting with a letter or '_', at most 32 characters.",
            code="ssh_user",
        )


def validate_node_name(value: str) -> None:
    if len(value) > 63 or not is_dns1123_subdomain(value):
        raise ValidationError(
            "Use lower-case letters, digits, '-' and '.', starting and ending with a letter or digit, "
            "at most 63 characters (it becomes the Kubernetes node name).",
            code="node_name",
        )
