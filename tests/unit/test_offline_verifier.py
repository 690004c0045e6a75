"""The auditor's offline verifier (audit/offline_verifier.py) stands alone: run as a file by a
Python that can import the standard library and ``cryptography`` and nothing else (no Django,
no database), it checks a JSON Lines export and the checkpoint files."""

from __future__ import annotations

import base64
import json
import subprocess
import sysconfig
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import call_command

from audit import keys
from audit.checkpoints import _message, create_checkpoint
from audit.services import record

pytestmark = pytest.mark.django_db(transaction=True)

SCRIPT = Path(__file__).resolve().parents[2] / "audit" / "offline_verifier.py"


@pytest.fixture(scope="module")
def crypto_only(tmp_path_factory) -> Path:
    """A Python of its own (a virtualenv beside no other) whose site-packages hold
    ``cryptography`` and what it needs, and no Django: the auditor's machine."""
    import venv

    home = tmp_path_factory.mktemp("auditor") / "venv"
    venv.EnvBuilder(with_pip=False, symlinks=True).create(home)
    site = Path(sysconfig.get_paths()["purelib"])
    target = next((home / "lib").glob("python3*/site-packages"))
    for name in ["cryptography", "cffi", "pycparser", *[p.name for p in site.glob("_cffi_backend*")]]:
        if (site / name).exists():
            (target / name).symlink_to(site / name)
    return home / "bin" / "python"


def run(python: Path, *args: str) -> subprocess.CompletedProcess:
    # -I: isolated (no PYTHONPATH, no user site, not the script's directory): only the standard
    # library and that virtualenv's site-packages.
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    return subprocess.run([str(python), "-I", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def auditor_kit(tmp_path, audit_checkpoint_dir) -> dict:
    """An export of the whole trail, the HMAC keys and the checkpoint public key, as handed over."""
    for n in range(6):
        record("test.record", details={"n": n, "text": "ünïcode"})
    create_checkpoint()
    record("audit.checkpoint_created", details={"seq": 6})
    record("test.after", details={"n": 7})
    export = tmp_path / "trail.jsonl"
    call_command("audit_export", "-o", str(export))
    ring = keys.keyring()
    keys_file = tmp_path / "hmac.keys"
    keys_file.write_text(",".join(f"{key_id}:{secret.decode()}" for key_id, secret in ring.secrets.items()))
    public = tmp_path / "checkpoint.pub"
    with open(public, "w") as out:
        call_command("audit_checkpoint", "--public-key", stdout=out)
    return {"export": export, "keys": keys_file, "public": public, "checkpoints": audit_checkpoint_dir}


def args_of(kit: dict, export: Path | None = None) -> list[str]:
    return [
        str(export or kit["export"]),
        "--keys-file",
        str(kit["keys"]),
        "--public-key",
        str(kit["public"]),
        "--checkpoints",
        str(kit["checkpoints"]),
    ]


def test_the_auditors_python_has_no_django(crypto_only):
    probe = subprocess.run([str(crypto_only), "-I", "-c", "import django"], capture_output=True, text=True)
    assert probe.returncode != 0 and "No module named 'django'" in probe.stderr


def test_a_good_export_verifies_offline(crypto_only, auditor_kit):
    result = run(crypto_only, *args_of(auditor_kit))
    assert result.returncode == 0, result.stderr
    assert "audit export intact: 8 record(s) (8 keyed)" in result.stdout
    assert "checked against the checkpoint at record 8" in result.stdout  # the newest: after the last append


def test_a_tampered_export_fails_naming_the_record(crypto_only, auditor_kit, tmp_path):
    lines = auditor_kit["export"].read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    target = next(row for row in rows if row["seq"] == 3)
    target["actor"] = "mallory"
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = run(crypto_only, *args_of(auditor_kit, tampered))
    assert result.returncode == 1
    assert "first broken: record #3: its content does not match its keyed hash" in result.stderr


def test_an_export_missing_its_newest_records_fails(crypto_only, auditor_kit, tmp_path):
    rows = [json.loads(line) for line in auditor_kit["export"].read_text().splitlines()]
    cut = tmp_path / "cut.jsonl"
    cut.write_text("".join(json.dumps(row) + "\n" for row in rows if row["seq"] <= 6))
    result = run(crypto_only, *args_of(auditor_kit, cut))
    assert result.returncode == 1 and "covers 8 records but the export ends at 6" in result.stderr


def test_a_checkpoint_signed_by_another_key_is_refused(crypto_only, auditor_kit):
    attacker = Ed25519PrivateKey.generate()
    data = {"kubeboard_audit_checkpoint": 1, "seq": 2, "head": "0" * 64, "created": "2026-01-01T00:00:00+00:00"}
    data["public_key"] = keys.public_key_text(attacker.public_key())
    data["signature"] = base64.b64encode(attacker.sign(_message(2, "0" * 64, data["created"]))).decode()
    (auditor_kit["checkpoints"] / "forged.json").write_text(json.dumps(data))
    result = run(crypto_only, *args_of(auditor_kit))
    assert result.returncode == 1 and "signed by another key than the one given" in result.stderr


def test_unreadable_input_is_named(crypto_only, auditor_kit, tmp_path):
    (tmp_path / "junk.jsonl").write_text('{"seq": 1}\n')
    result = run(crypto_only, *args_of(auditor_kit, tmp_path / "junk.jsonl"))
    assert result.returncode == 2 and "junk.jsonl:1 lacks created" in result.stderr
