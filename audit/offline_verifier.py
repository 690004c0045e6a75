#!/usr/bin/env python3
"""Check a Kubeboard audit export offline, on another machine: one file, the standard library
and ``cryptography`` only (no Django, no database).

    python3 offline_verifier.py EXPORT.jsonl --keys-file audit-hmac.keys \\
        --public-key audit-checkpoint.pub --checkpoints CHECKPOINT_DIR_OR_FILES...

EXPORT.jsonl: ``manage.py audit_export -o EXPORT.jsonl`` (every record: no filter, no --as).
--keys-file: the HMAC keys as in KUBEBOARD_AUDIT_KEYS (``id:secret,...``), or the generated
``audit-hmac.key``; KUBEBOARD_AUDIT_KEYS in the environment works too.
--public-key: the installation's checkpoint public key: a PEM public or private key file, or
the base64 raw key that ``manage.py audit_checkpoint`` prints the fingerprint of.
--checkpoints: the checkpoint directory's ``checkpoints-*.jsonl`` files, or exported checkpoint
JSON files, or directories holding them.

Checks every record's HMAC and link, the numbering from 1, that unkeyed records exist only as
the prefix the upgrade sealed with a keyed ``audit.chain_upgraded`` record, that every
checkpoint is signed by the given public key and matches the record at its position, and that
the export does not end before the newest checkpoint. Exit 0: intact; 1: not intact (the first
broken record is named); 2: the input could not be read.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import sys
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

GENESIS = "0" * 64
UPGRADE_ACTION = "audit.chain_upgraded"
FIELDS = (
    "seq",
    "created",
    "actor_id",
    "actor",
    "action",
    "outcome",
    "object_type",
    "object_id",
    "object",
    "cluster_id",
    "cluster",
    "team_id",
    "details",
    "changes",
    "correlation_id",
    "source",
    "source_address",
    "user_agent",
    "key_id",
    "prev_hash",
    "hash",
)


class InputError(Exception):
    """An input file cannot be used (exit 2)."""


def canonical_json(data) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def content(record: dict) -> bytes:
    """What the record's HMAC covers (audit.models.event_content), from the export's names."""
    return canonical_json(
        {
            "v": 2,
            "seq": record["seq"],
            "created": record["created"],
            "actor_id": record["actor_id"],
            "actor": record["actor"],
            "action": record["action"],
            "outcome": record["outcome"],
            "object_type": record["object_type"],
            "object_id": record["object_id"],
            "object_repr": record["object"],
            "cluster_id": record["cluster_id"],
            "cluster": record["cluster"],
            "team_id": record["team_id"],
            "details": record["details"],
            "changes": record["changes"],
            "request_id": record["correlation_id"],
            "source": record["source"],
            "source_address": record["source_address"],
            "user_agent": record["user_agent"],
            "key_id": record["key_id"],
            "prev": record["prev_hash"],
        }
    )


def legacy_hash(record: dict) -> str:
    """The plain SHA-256 of a record from before keyed records (audit.models.legacy_hash)."""
    return hashlib.sha256(
        canonical_json(
            {
                "created": record["created"],
                "actor": record["actor"],
                "action": record["action"],
                "object_type": record["object_type"],
                "object_id": record["object_id"],
                "object_repr": record["object"],
                "cluster": record["cluster"],
                "details": record["details"],
                "prev": record["prev_hash"],
            }
        )
    ).hexdigest()


def checkpoint_message(seq: int, head: str, created: str) -> bytes:
    return canonical_json({"kubeboard_audit_checkpoint": 1, "seq": seq, "head": head, "created": created})


# --- inputs --------------------------------------------------------------------------------


def parse_keys(raw: str) -> dict[str, bytes]:
    keys: dict[str, bytes] = {}
    for number, item in enumerate((part.strip() for part in raw.split(",") if part.strip()), start=1):
        key_id, sep, secret = item.partition(":")
        if not sep or not key_id or not secret:
            raise InputError(f"HMAC key #{number} is not id:secret")  # never echo a secret
        keys[key_id] = secret.encode()
    if not keys:
        raise InputError("no HMAC key given (--keys-file or KUBEBOARD_AUDIT_KEYS)")
    return keys


def load_public_key(value: str) -> Ed25519PublicKey:
    path = Path(value)
    if path.is_file():
        data = path.read_bytes()
        try:
            if b"PRIVATE KEY" in data:
                key = serialization.load_pem_private_key(data, password=None)
                key = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
            elif b"PUBLIC KEY" in data:
                key = serialization.load_pem_public_key(data)
            else:
                key = Ed25519PublicKey.from_public_bytes(base64.b64decode(data.strip()))
        except ValueError as exc:
            raise InputError(f"{path} holds no Ed25519 key ({exc})") from exc
    else:
        try:
            key = Ed25519PublicKey.from_public_bytes(base64.b64decode(value, validate=True))
        except ValueError as exc:
            raise InputError(f"--public-key {value[:20]!r} is neither a file nor a base64 Ed25519 public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise InputError(f"{value}: the checkpoint key must be Ed25519, not {type(key).__name__}")
    return key


def public_key_text(key: Ed25519PublicKey) -> str:
    return base64.b64encode(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()


def read_export(path: str) -> list[dict]:
    handle = sys.stdin if path == "-" else None
    try:
        text = handle.read() if handle else Path(path).read_text()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{number} is not JSON ({exc.msg})") from exc
        missing = [name for name in FIELDS if not isinstance(record, dict) or name not in record]
        if missing:
            raise InputError(
                f"{path}:{number} lacks {', '.join(missing)} (export with a Kubeboard that writes them: "
                "manage.py audit_export)"
            )
        if not isinstance(record["seq"], int):
            raise InputError(f"{path}:{number}: seq is not a number")
        records.append(record)
    return records


def checkpoint_files(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for value in paths:
        path = Path(value)
        if path.is_dir():
            files += sorted(path.glob("checkpoints-*.jsonl")) + sorted(path.glob("*.json"))
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(f"no checkpoint file or directory {path}")
    return files


def read_checkpoints(files: list[Path]) -> list[tuple[str, dict]]:
    found = []
    for path in files:
        try:
            text = path.read_text()
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
        if path.suffix == ".json":
            try:
                found.append((str(path), json.loads(text)))
            except json.JSONDecodeError as exc:
                raise InputError(f"{path} is not JSON ({exc.msg})") from exc
            continue
        lines = text.splitlines()
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                found.append((f"{path}:{number}", json.loads(line)))
            except json.JSONDecodeError:
                if number < len(lines):  # only the last line may have been cut short by a crash
                    raise InputError(f"{path}:{number} is not JSON") from None
    return found


# --- the check -----------------------------------------------------------------------------


def verify(
    records: list[dict], keys: dict[str, bytes], public: Ed25519PublicKey, checkpoints: list[tuple[str, dict]]
) -> tuple[list[tuple[int | None, str]], list[str], dict]:
    """(breaks as (seq or None, reason), notes, summary)."""
    breaks: list[tuple[int | None, str]] = []
    notes: list[str] = []
    records = sorted(records, key=lambda r: r["seq"])
    by_seq: dict[int, dict] = {}
    for record in records:
        if record["seq"] in by_seq:
            breaks.append((record["seq"], "record number appears twice in the export"))
        by_seq[record["seq"]] = record

    previous, expected, keyed, legacy, seen_keyed = GENESIS, 1, 0, 0, False
    first_legacy = None
    for record in records:
        seq = record["seq"]
        if seq != expected:
            breaks.append((seq, f"expected record number {expected} here, found {seq} (records are missing)"))
        if record["prev_hash"] != previous:
            breaks.append((seq, "its link to the previous record does not match (removed, replaced or reordered)"))
        if record["key_id"]:
            if first_legacy is not None and not seen_keyed:
                details = record["details"] if isinstance(record["details"], dict) else {}
                sealed = (
                    record["action"] == UPGRADE_ACTION
                    and record["source"] == "migration"
                    and details.get("legacy_records") == legacy
                    and details.get("legacy_head") == previous == record["prev_hash"]
                )
                if not sealed:
                    breaks.append((seq, f"the unkeyed records before it are not sealed by a keyed {UPGRADE_ACTION}"))
            seen_keyed = True
            keyed += 1
            secret = keys.get(record["key_id"])
            if secret is None:
                breaks.append((seq, f"signed with key id {record['key_id']!r}, which was not given"))
            elif not hmac.compare_digest(hmac.new(secret, content(record), hashlib.sha256).hexdigest(), record["hash"]):
                breaks.append((seq, "its content does not match its keyed hash (the record was edited)"))
        else:
            legacy += 1
            first_legacy = first_legacy or record
            if seen_keyed:
                breaks.append((seq, "an unkeyed record after keyed ones"))
            elif legacy_hash(record) != record["hash"]:
                breaks.append((seq, "its content does not match its hash (the record was edited)"))
        previous, expected = record["hash"], seq + 1
    last_seq = records[-1]["seq"] if records else 0
    if first_legacy is not None and not seen_keyed:
        breaks.append((first_legacy["seq"], f"unkeyed records with no keyed {UPGRADE_ACTION} record sealing them"))

    newest = None
    trusted = public_key_text(public)
    for where, data in checkpoints:
        try:
            seq, head, created = data["seq"], data["head"], data["created"]
            if data.get("public_key") != trusted:
                breaks.append((None, f"checkpoint {where} is signed by another key than the one given"))
                continue
            public.verify(base64.b64decode(data["signature"]), checkpoint_message(seq, head, created))
        except InvalidSignature:
            breaks.append((None, f"checkpoint {where} has a bad signature"))
            continue
        except (KeyError, TypeError, ValueError):
            breaks.append((None, f"checkpoint {where} is malformed"))
            continue
        if seq > last_seq:
            breaks.append((None, f"checkpoint {where} covers {seq} records but the export ends at {last_seq}"))
        elif seq and by_seq.get(seq, {}).get("hash") != head:
            breaks.append((seq, f"it differs from checkpoint {where}, which signed this position with another record"))
        if newest is None or seq > newest[1]["seq"]:
            newest = (where, data)
    if newest is None:
        notes.append("no checkpoint given: records cut off at the end would go unnoticed")
    summary = {"records": len(records), "keyed": keyed, "legacy": legacy, "last_seq": last_seq, "newest": newest}
    return breaks, notes, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("export", help="the JSON Lines export (manage.py audit_export), or - for standard input")
    parser.add_argument("--keys-file", help="file with the HMAC keys (id:secret,...); else KUBEBOARD_AUDIT_KEYS")
    parser.add_argument("--public-key", required=True, help="the checkpoint public key: PEM file or base64")
    parser.add_argument("--checkpoints", nargs="*", default=[], help="checkpoint files or directories")
    args = parser.parse_args(argv)
    try:
        if args.keys_file:
            try:
                raw = Path(args.keys_file).read_text()
            except OSError as exc:
                raise InputError(f"cannot read {args.keys_file}: {exc.strerror or exc}") from exc
        else:
            raw = os.environ.get("KUBEBOARD_AUDIT_KEYS", "")
        keys = parse_keys(raw)
        public = load_public_key(args.public_key)
        records = read_export(args.export)
        checkpoints = read_checkpoints(checkpoint_files(args.checkpoints))
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    breaks, notes, summary = verify(records, keys, public, checkpoints)
    for note in notes:
        print(f"note: {note}")
    if breaks:
        first = min(breaks, key=lambda b: (b[0] is None, b[0] or 0))
        for seq, reason in [first] + [b for b in breaks if b is not first]:
            label = f"record #{seq}" if seq is not None else "the export"
            prefix = "first broken" if (seq, reason) == first else "also"
            print(f"{prefix}: {label}: {reason}", file=sys.stderr)
        where = f"record #{first[0]}" if first[0] is not None else "the export"
        print(f"audit export NOT intact: {len(breaks)} problem(s); first: {where}", file=sys.stderr)
        return 1
    line = f"audit export intact: {summary['records']} record(s) ({summary['keyed']} keyed"
    line += f", {summary['legacy']} from before keys, sealed)" if summary["legacy"] else ")"
    if summary["newest"]:
        where, data = summary["newest"]
        line += f"; checked against the checkpoint at record {data['seq']} of {data['created']} ({where})"
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
