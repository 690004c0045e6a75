"""Reading kubeadm's output: one line in, a typed line out (level, source, text).

kubeadm prints ``[certs] Generating "ca" certificate and key``-style lines (the bracket names
the phase or step that speaks), indented ``[WARNING Name]:`` / ``[ERROR Name]:`` lines from
preflight, ``error execution phase <phase>: …`` when a phase fails, and klog lines
(``W1127 07:00:00.123456   12345 checks.go:1080] text``) from its libraries. The etcd client
inside kubeadm (etcd-join, check-etcd, upgrades) logs JSON lines
(``{"level":"warn","logger":"etcd-client","msg":"retrying of unary invoker failed",...,"error":"..."}``,
seen on v1.37.2). preflight's system verification prints ANSI-coloured lines
(``\x1b[0;37mKERNEL_VERSION\x1b[0m: ...``); their escapes are dropped here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

DEBUG, INFO, WARNING, ERROR = "debug", "info", "warning", "error"

_KLOG = re.compile(r"^([IWEF])(\d{4}) (\d{2}:\d{2}:\d{2}\.\d+)\s+\d+ ([\w.-]+:\d+)\] ?(.*)$")
_KLOG_LEVEL = {"I": INFO, "W": WARNING, "E": ERROR, "F": ERROR}
_CHECK = re.compile(r"^\s*\[(WARNING|ERROR) ([^\]]+)\]: ?(.*)$")
_PREFIX = re.compile(r"^\[([a-z][a-z0-9-]*(?: [a-z0-9-]+)?)\] ?(.*)$")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_JSON_LEVEL = {
    "debug": DEBUG,
    "info": INFO,
    "warn": WARNING,
    "warning": WARNING,
    "error": ERROR,
    "dpanic": ERROR,
    "panic": ERROR,
    "fatal": ERROR,
}
_PHASE_ERROR = re.compile(r"^error(?: execution phase| running phase)? ?([\w/-]*): ?(.*)$")


@dataclass(frozen=True)
class OutputLine:
    level: str
    source: str  # the bracketed prefix ("certs", "preflight"), "klog", "check", or ""
    text: str
    check: str = ""  # preflight check name for [WARNING X]/[ERROR X] lines
    location: str = ""  # klog's file:line
    # kubeadm's closing "error execution phase <phase>: …" line: it restates the failure the
    # lines before it gave ("preflight checks failed" after the [ERROR X] lines), so it is not
    # one more error when errors are counted (unless nothing before it said what failed).
    summary: bool = False


def parse_line(line: str) -> OutputLine:
    """Classify one line of kubeadm output (already decoded, without its newline)."""
    stripped = _ANSI.sub("", line).rstrip()
    if stripped.startswith("{") and stripped.endswith("}"):
        parsed = _json_line(stripped)
        if parsed is not None:
            return parsed
    match = _KLOG.match(stripped)
    if match:
        letter, _, _, location, text = match.groups()
        return OutputLine(_KLOG_LEVEL[letter], "klog", text, location=location)
    match = _CHECK.match(stripped)
    if match:
        kind, name, text = match.groups()
        return OutputLine(ERROR if kind == "ERROR" else WARNING, "preflight", text, check=name)
    match = _PHASE_ERROR.match(stripped)
    if match and stripped.startswith("error"):
        return OutputLine(ERROR, match.group(1) or "", stripped, summary="execution phase" in stripped)
    match = _PREFIX.match(stripped)
    if match:
        source, text = match.groups()
        level = WARNING if text.upper().startswith("WARNING") else INFO
        return OutputLine(level, source, text)
    return OutputLine(INFO, "", stripped)


def _json_line(text: str) -> OutputLine | None:
    """A zap JSON log line (etcd client): level, logger as source, "msg: error" as text."""
    try:
        record = json.loads(text)
    except ValueError:
        return None
    if not isinstance(record, dict) or "msg" not in record:
        return None
    level = _JSON_LEVEL.get(str(record.get("level", "info")).lower(), INFO)
    message = str(record["msg"])
    if record.get("error"):
        message += f": {record['error']}"
    return OutputLine(level, str(record.get("logger") or "json"), message, location=str(record.get("caller", "")))
