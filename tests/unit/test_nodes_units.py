"""Pure parts of the machines app: output line splitting, keys, address and name validation."""

from __future__ import annotations

import subprocess

import pytest
from django.core.exceptions import ValidationError

from clusters.validators import validate_ignore_preflight_errors
from kubeadm.preflight import parse_check_list
from nodes.validators import (
    normalize_address,
    validate_address,
    validate_node_name,
    validate_ssh_user,
)
from remote import keys
from remote.ssh import LineSplitter, job_pid_file


def test_lines_split_across_chunks_and_crlf():
    splitter = LineSplitter(limit=100)
    assert splitter.feed(b"one\r\ntw") == ["one"]
    assert splitter.feed(b"o\nthree") == ["two"]
    assert splitter.close() == ["three"]
    assert splitter.close() == []


def test_invalid_utf8_is_replaced_and_split_characters_survive_chunking():
    splitter = LineSplitter(limit=100)
    euro = "€".encode()
    assert splitter.feed(b"\xff " + euro[:1]) == []
    assert splitter.feed(euro[1:] + b"\n") == ["\ufffd €"]


def test_long_line_keeps_its_start_and_counts_the_rest_over_many_chunks():
    splitter = LineSplitter(limit=10)
    lines = []
    for _ in range(100):
        lines += splitter.feed(b"x" * 1000)
    lines += splitter.feed(b"\nnext\n")
    assert lines == ["x" * 10 + " … [line cut: 99990 more bytes]", "next"]


def test_job_names_cannot_escape_the_jobs_directory():
    assert job_pid_file("join-worker.3") == "/run/kubeboard/jobs/join-worker.3.pid"
    for bad in ("../etc/passwd", "a b", "", "x;rm"):
        with pytest.raises(ValueError):
            job_pid_file(bad)


def test_generated_key_pair_fingerprint_is_what_ssh_keygen_prints(tmp_path):
    pair = keys.generate_key_pair("kubeboard@c1")
    assert pair.public_key.startswith("ssh-ed25519 ") and pair.public_key.endswith(" kubeboard@c1")
    public = tmp_path / "key.pub"
    public.write_text(pair.public_key + "\n")
    printed = subprocess.run(["ssh-keygen", "-lf", str(public)], capture_output=True, text=True, check=True).stdout
    assert printed.split()[1] == pair.fingerprint
    assert keys.load_private_key(pair.private_key).get_fingerprint("sha256") == pair.fingerprint


def test_pasted_private_keys_are_checked(tmp_path):
    pair = keys.generate_key_pair("x")
    with pytest.raises(keys.InvalidKey, match="This is a public key"):
        keys.load_private_key(pair.public_key)
    with pytest.raises(keys.InvalidKey, match="Not a private key"):
        keys.load_private_key("hello")
    with pytest.raises(keys.InvalidKey, match="Paste or upload"):
        keys.load_private_key("  ")
    with pytest.raises(keys.InvalidKey, match="could not be read"):
        keys.load_private_key("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----")
    encrypted = tmp_path / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "secret", "-f", str(encrypted)], check=True)
    with pytest.raises(keys.InvalidKey, match="encrypted: enter its passphrase"):
        keys.load_private_key(encrypted.read_text())
    with pytest.raises(keys.InvalidKey, match="passphrase does not decrypt"):
        keys.load_private_key(encrypted.read_text(), "wrong")
    assert keys.load_private_key(encrypted.read_text(), "secret").algorithm == b"ssh-ed25519"


@pytest.mark.parametrize("value", ["10.0.0.1", "fd00::1", "node-1.example.com", "localhost", "NODE1.example.com."])
def test_addresses_accepted(value):
    validate_address(value)


@pytest.mark.parametrize(
    "value, message",
    [
        ("10.0.0.256", "not a valid one"),
        ("root@10.0.0.1", "no user@"),
        ("10.0.0.1:22", "no user@, port"),
        ("ssh://node", "no user@"),
        ("-bad.example", "neither an IP address"),
        ("under_score.example", "neither an IP address"),
        ("", "Enter the machine's IP address"),
    ],
)
def test_addresses_refused_with_a_reason(value, message):
    with pytest.raises(ValidationError, match=message):
        validate_address(value)


def test_addresses_are_normalized():
    assert normalize_address(" Node1.Example.COM. ") == "node1.example.com"
    assert normalize_address("FD00:0:0::1") == "fd00::1"


def test_user_and_node_names():
    validate_ssh_user("ubuntu")
    validate_ssh_user("svc_kube-1")
    for bad in ("Root", "1user", "a b", "x" * 33, "user;id"):
        with pytest.raises(ValidationError, match="not a valid user name"):
            validate_ssh_user(bad)
    validate_node_name("cp-1.example")
    for bad in ("CP1", "-a", "a_b", "x" * 64):
        with pytest.raises(ValidationError, match="Kubernetes node name"):
            validate_node_name(bad)


def test_preflight_ignore_list_shape():
    assert parse_check_list("CRI, ImagePull\nPort-6443") == ["CRI", "ImagePull", "Port-6443"]
    validate_ignore_preflight_errors(["FileAvailable--etc-kubernetes-manifests-etcd.yaml", "NumCPU"])
    validate_ignore_preflight_errors(["all"])
    with pytest.raises(ValidationError, match="list it alone"):
        validate_ignore_preflight_errors(["all", "CRI"])
    with pytest.raises(ValidationError, match="Not a kubeadm preflight check name: 'rm -rf'"):
        validate_ignore_preflight_errors(["rm -rf"])
    with pytest.raises(ValidationError, match="Listed twice: CRI"):
        validate_ignore_preflight_errors(["CRI", "cri"])
