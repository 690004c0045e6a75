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
from dataclasses import dataclass
from typing import Any

import yaml

from kubeadm.errors import YAMLFormatError, YAMLLimitError

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
#
# Everything read here may come from a user (a kubeadm config to import, a kubeconfig to adopt, a
# manifest), so reading is bounded before PyYAML builds a single Python object: one pass over the
# parser's events (a loop, not recursion) counts nesting, aliases and the nodes the document
# would have once every alias is expanded, and refuses a recursive alias. Only a document within
# every limit is composed and constructed. Without this, 342 bytes of nested aliases expand to
# 9**9 nodes, ``a: &a {b: *a}`` recurses forever and ``[[[...]]]`` overflows the Python stack.


@dataclass(frozen=True)
class YAMLLimits:
    """How much YAML one read may take. The defaults fit any kubeadm config, kubeconfig or
    Kubernetes manifest many times over."""

    max_bytes: int = 1024 * 1024
    max_depth: int = 100
    max_aliases: int = 100
    # Nodes (mappings, sequences, scalars) with every alias expanded, over all documents. A kubeadm
    # config has a few hundred, a kubeconfig a few dozen; reading (and kubeadm's re-rendering, in
    # pure Python) costs about 0.1 ms a node, so this also bounds a request's time.
    max_nodes: int = 10_000
    # An int or float scalar longer than this is no number kubeadm or Kubernetes could hold
    # (Python's int() refuses more than 4300 digits with a ValueError, and base-60 ints are slow).
    max_number_chars: int = 100


DEFAULT_LIMITS = YAMLLimits()

# libyaml's parser when PyYAML has it: the limit pass then costs ~1 µs an event instead of ~30.
_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"


def _where(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "unknown position"


def _check_limits(text: str, source: str, limits: YAMLLimits) -> None:
    """Walk the event stream once and raise YAMLLimitError at the first limit passed."""
    loader = _BaseLoader(text)
    try:
        # Per open collection: its anchor and the expanded node count when it started.
        stack: list[tuple[str | None, int]] = []
        anchors: dict[str, int] = {}  # finished anchor -> its expanded size in nodes
        expanded = aliases = 0
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                if len(stack) >= limits.max_depth:
                    raise YAMLLimitError(
                        source,
                        f"at most {limits.max_depth} levels of nesting",
                        f"deeper nesting at {_where(event.start_mark)}",
                    )
                stack.append((event.anchor, expanded))
                expanded += 1
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                anchor, start = stack.pop()
                if anchor is not None:
                    anchors[anchor] = expanded - start
            elif isinstance(event, yaml.ScalarEvent):
                _check_number(loader, event, source, limits)
                expanded += 1
                if event.anchor is not None:
                    anchors[event.anchor] = 1
            elif isinstance(event, yaml.AliasEvent):
                aliases += 1
                if aliases > limits.max_aliases:
                    raise YAMLLimitError(
                        source,
                        f"at most {limits.max_aliases} aliases (*name)",
                        f"more at {_where(event.start_mark)}",
                    )
                if any(anchor == event.anchor for anchor, _ in stack) and event.anchor not in anchors:
                    raise YAMLLimitError(
                        source,
                        "aliases to finished nodes",
                        f"*{event.anchor} inside &{event.anchor} itself (a recursive alias) at "
                        f"{_where(event.start_mark)}",
                    )
                # An undefined alias counts as one node; composing it reports the error.
                expanded += anchors.get(event.anchor, 1)
            elif isinstance(event, yaml.DocumentEndEvent):
                anchors.clear()  # anchors do not cross documents
            if expanded > limits.max_nodes:
                raise YAMLLimitError(
                    source,
                    f"at most {limits.max_nodes} values with every alias expanded",
                    f"more at {_where(event.start_mark)}",
                )
    finally:
        loader.dispose()


def _check_number(loader: Any, event: yaml.ScalarEvent, source: str, limits: YAMLLimits) -> None:
    if len(event.value) <= limits.max_number_chars:
        return
    tag = event.tag
    if tag is None or tag == "!":
        tag = loader.resolve(yaml.ScalarNode, event.value, event.implicit)
    if tag in (_INT_TAG, _FLOAT_TAG):
        raise YAMLLimitError(
            source,
            f"numbers of at most {limits.max_number_chars} characters",
            f"a number of {len(event.value)} characters at {_where(event.start_mark)}",
        )


class _BoundedLoader(_BaseLoader):
    """The safe loader whose value errors (``!!int x``, ``2020-02-30``, ``!!bool maybe``) are YAML
    errors with a position, not ValueError or KeyError escaping from PyYAML's constructors."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except yaml.YAMLError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError, IndexError):
            # The value itself is not quoted back: a kubeconfig's scalars may be credentials.
            tag = node.tag.rsplit(":", 1)[-1]
            raise yaml.constructor.ConstructorError(
                None, None, f"a value that is not a valid {tag}", node.start_mark
            ) from None


def _normalize(value: Any, source: str) -> Any:
    """Undo PyYAML conversions kubeadm would not make (timestamps)."""
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.UTC)
        try:
            return value.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        except (OverflowError, ValueError):
            raise YAMLFormatError(source, "a timestamp between the years 1 and 9999 in UTC", str(value)) from None
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _normalize(v, source) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalize(v, source) for v in value]
    return value


def load_documents(text: str | bytes, *, source: str = "config", limits: YAMLLimits = DEFAULT_LIMITS) -> list[Any]:
    """Parse a multi-document YAML stream; empty documents are skipped.

    Raises YAMLFormatError naming the line and column of a syntax error, and YAMLLimitError
    (a YAMLFormatError) naming the limit when the text is too large, too deep, has too many
    aliases or expands to too many values.
    """
    if isinstance(text, str):
        try:
            text = text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise YAMLFormatError(source, "UTF-8 text", f"a lone surrogate at character {exc.start}") from None
    if len(text) > limits.max_bytes:
        raise YAMLLimitError(source, f"at most {limits.max_bytes // 1024} KiB of YAML", f"{len(text)} bytes")
    try:
        text = text.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YAMLFormatError(source, "UTF-8 text", f"undecodable byte at offset {exc.start}") from None
    try:
        _check_limits(text, source, limits)
        docs = list(yaml.load_all(text, Loader=_BoundedLoader))
    except yaml.reader.ReaderError as exc:
        raise YAMLFormatError(
            source, "YAML text", f"character #x{exc.character:04x} at character {exc.position}: {exc.reason}"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or "syntax error"
        if "maximum nesting depth" in problem:  # libyaml's own guard, met before ours in a flow
            raise YAMLLimitError(
                source, f"at most {limits.max_depth} levels of nesting", f"deeper nesting at {_where(mark)}"
            ) from None
        raise YAMLFormatError(source, "valid YAML", f"{problem} at {_where(mark)}") from None
    return [_normalize(d, source) for d in docs if d is not None]


def load(text: str | bytes, *, source: str = "document", limits: YAMLLimits = DEFAULT_LIMITS) -> Any:
    """Parse a single YAML document (None for an empty text)."""
    docs = load_documents(text, source=source, limits=limits)
    if len(docs) > 1:
        raise YAMLFormatError(source, "one YAML document", f"{len(docs)} documents")
    return docs[0] if docs else None
