"""YAML exactly as kubeadm writes it, and YAML reading.

kubeadm marshals an object to JSON, then converts it to YAML with
sigs.k8s.io/yaml (a go-yaml v2 emitter), see util/marshal.go. That gives:
map keys sorted with go-yaml's key order, lists at the parent's indentation,
2-space indent, ``{}`` for empty maps, and strings that would read back as
another type (``"0"``, ``"true"``, ``""``) double-quoted. We reproduce those
rules on top of PyYAML so rendered files compare byte for byte.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

import yaml

from kubeadm.errors import YAMLFormatError

# --- go-yaml v2 key order (sorter.go keyList.Less) -------------------------


def _go_key_less(a: str, b: str) -> bool:
    """go-yaml v2 string key order: letters by code point, non-letters before
    letters, and runs of digits compared as numbers."""
    ar, br = a, b
    for i in range(min(len(ar), len(br))):
        if ar[i] == br[i]:
            continue
        al, bl = ar[i].isalpha(), br[i].isalpha()
        if al and bl:
            return ar[i] < br[i]
        if al or bl:
            return bl
        an = bn = 0
        if ar[i] == "0" or br[i] == "0":
            j = i - 1
            while j >= 0 and ar[j].isdigit():
                if ar[j] != "0":
                    an = bn = 1
                    break
                j -= 1
        ai = i
        while ai < len(ar) and ar[ai].isdigit():
            an = an * 10 + int(ar[ai])
            ai += 1
        bi = i
        while bi < len(br) and br[bi].isdigit():
            bn = bn * 10 + int(br[bi])
            bi += 1
        if an != bn:
            return an < bn
        if ai != bi:
            return ai < bi
        return ar[i] < br[i]
    return len(ar) < len(br)


def go_sorted_keys(keys: list[str]) -> list[str]:
    """Sort map keys the way go-yaml v2 does when marshalling a map."""
    import functools

    def cmp(x: str, y: str) -> int:
        if _go_key_less(x, y):
            return -1
        if _go_key_less(y, x):
            return 1
        return 0

    return sorted(keys, key=functools.cmp_to_key(cmp))


# --- which strings go-yaml v2 must quote ------------------------------------

# go-yaml v2 resolve.go: these plain scalars are not strings (YAML 1.1 set).
_GO_SPECIAL = {
    "~",
    "null",
    "Null",
    "NULL",
    "y",
    "Y",
    "yes",
    "Yes",
    "YES",
    "on",
    "On",
    "ON",
    "true",
    "True",
    "TRUE",
    "n",
    "N",
    "no",
    "No",
    "NO",
    "off",
    "Off",
    "OFF",
    "false",
    "False",
    "FALSE",
    ".nan",
    ".NaN",
    ".NAN",
    ".inf",
    ".Inf",
    ".INF",
    "+.inf",
    "+.Inf",
    "+.INF",
    "-.inf",
    "-.Inf",
    "-.INF",
    "<<",
}
_GO_INT_RE = re.compile(r"^[-+]?(0b[01_]+|0x[0-9a-fA-F_]+|0[0-7_]*|[1-9][0-9_]*|0)$")
_GO_FLOAT_RE = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_GO_BASE60_RE = re.compile(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$")
_GO_TIMESTAMP_RE = re.compile(
    r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}"
    r"(?:(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?"
    r"(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?)?$"
)


def go_would_quote(s: str) -> bool:
    """True when go-yaml v2 writes this string double-quoted because a plain
    scalar would read back as null, bool, number or timestamp."""
    if s == "" or s in _GO_SPECIAL:
        return True
    if _GO_INT_RE.match(s) or _GO_FLOAT_RE.match(s) or _GO_BASE60_RE.match(s):
        return True
    return bool(_GO_TIMESTAMP_RE.match(s))


class _GoDumper(yaml.SafeDumper):
    """PyYAML dumper tuned to the go-yaml v2 output style."""

    def ignore_aliases(self, data: Any) -> bool:  # go-yaml never writes anchors
        return True


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    if go_would_quote(data):
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style='"')
    if "\n" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


def _represent_dict(dumper: yaml.SafeDumper, data: dict) -> yaml.Node:
    keys = go_sorted_keys([str(k) for k in data])
    return dumper.represent_mapping("tag:yaml.org,2002:map", [(k, data[k]) for k in keys])


_GoDumper.add_representer(str, _represent_str)
_GoDumper.add_representer(dict, _represent_dict)


def dump(obj: Any) -> str:
    """Render one object (dict/list/str/int/bool/None) as kubeadm would."""
    return yaml.dump(
        obj, Dumper=_GoDumper, default_flow_style=False, sort_keys=False, allow_unicode=True, width=80, indent=2
    )


def dump_documents(objs: list[Any]) -> str:
    """Render several objects as one multi-document stream joined by ``---``."""
    return "---\n".join(dump(o) for o in objs)


# --- reading ----------------------------------------------------------------


def _normalize(value: Any) -> Any:
    """Undo PyYAML conversions kubeadm would not make (timestamps)."""
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.UTC)
        return value.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _normalize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalize(v) for v in value]
    return value


def load_documents(text: str, *, source: str = "config") -> list[Any]:
    """Parse a multi-document YAML stream; empty documents are skipped.

    Raises YAMLFormatError naming the line and column of a syntax error.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise YAMLFormatError(source, "UTF-8 text", f"undecodable byte at offset {exc.start}") from None
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        problem = getattr(exc, "problem", None) or "syntax error"
        raise YAMLFormatError(source, "valid YAML", f"{problem} at {where}") from None
    return [_normalize(d) for d in docs if d is not None]


def load(text: str, *, source: str = "document") -> Any:
    """Parse a single YAML document (None for an empty text)."""
    docs = load_documents(text, source=source)
    if len(docs) > 1:
        raise YAMLFormatError(source, "one YAML document", f"{len(docs)} documents")
    return docs[0] if docs else None
