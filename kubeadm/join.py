"""The join commands kubeadm prints (cmd/kubeadm/app/cmd/util/join.go).

Template (joinCommandTemplate), reproduced byte for byte:

    kubeadm join {{.ControlPlaneHostPort}} --token {{.Token}} \\
        {{range $h := .CAPubKeyPins}}--discovery-token-ca-cert-hash {{$h}} {{end}}{{if .ControlPlane}}\\
        --control-plane {{if .CertificateKey}}--certificate-key {{.CertificateKey}}{{end}}{{end}}

Note the trailing space after each hash, and the backslash-newline-4-spaces.
The result contains the token (and certificate key): show it only to people
allowed to join nodes, and never log it.
"""

from __future__ import annotations

from kubeadm.certkeys import decode_certificate_key
from kubeadm.discovery import parse_pin
from kubeadm.tokens import BootstrapTokenString, parse_token

WITHHELD = "<value withheld>"


def _endpoint(server_or_endpoint: str) -> str:
    """admin.conf's server with "https://" removed, as kubeadm does."""
    return server_or_endpoint.removeprefix("https://")


def join_command(
    endpoint: str,
    token: BootstrapTokenString | str,
    pins: list[str],
    *,
    control_plane: bool = False,
    certificate_key: str = "",
    withhold_token: bool = False,
    withhold_certificate_key: bool = False,
) -> str:
    """The join line for a worker, or with control_plane=True for a control-plane node."""
    token_text = (
        WITHHELD if withhold_token else str(token if isinstance(token, BootstrapTokenString) else parse_token(token))
    )
    normalized = [parse_pin(p) for p in pins]
    text = f"kubeadm join {_endpoint(endpoint)} --token {token_text} \\\n    "
    text += "".join(f"--discovery-token-ca-cert-hash {pin} " for pin in normalized)
    if control_plane:
        text += "\\\n    --control-plane "
        if certificate_key:
            if not withhold_certificate_key:
                decode_certificate_key(certificate_key)
            key_text = WITHHELD if withhold_certificate_key else certificate_key
            text += f"--certificate-key {key_text}"
    return text


def worker_join_command(endpoint: str, token: BootstrapTokenString | str, pins: list[str]) -> str:
    return join_command(endpoint, token, pins)


def control_plane_join_command(
    endpoint: str, token: BootstrapTokenString | str, pins: list[str], certificate_key: str = ""
) -> str:
    return join_command(endpoint, token, pins, control_plane=True, certificate_key=certificate_key)


def one_line(command: str) -> str:
    """The join line as ``kubeadm token create --print-join-command`` prints it: the template
    above without its line continuations (compared with the real v1.37.2 in
    tests/e2e/test_tokens_cluster.py)."""
    return command.replace("\\\n    ", "")
