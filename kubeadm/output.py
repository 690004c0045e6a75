"""Reading kubeadm's output: one line in, a typed line out (level, source, text).

kubeadm prints ``[certs] Generating "ca" certificate and key``-style lines (the bracket names
the phase or step that speaks), indented ``[WARNING Name]:`` / ``[ERROR Name]:`` lines from
preflight, ``error execution phase <phase>: …`` when a phase fails, and klog lines
(``W1127 07:00:00.123456   12345 checks.go:1080] text``) from its libraries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEBUG, INFO, WARNING, ERROR = "debug", "info", "warning", "error"

_KLOG = re.compile(r"^([IWEF])(\d{4}) (\d{2}:\d{2}:\d{2}\.\d+)\s+\d+ ([\w.-]+:\d+)\] ?(.*)$")
_KLOG_LEVEL = {"I": INFO, "W": WARNING, "E": ERROR, "F": ERROR}
_CHECK = re.compile(r"^\s*\[(WARNING|ERROR) ([^\]]+)\]: ?(.*)$")
_PREFIX = re.compile(r"^\[([a-z][a-z0-9-]*(?: [a-z0-9-]+)?)\] ?(.*)$")
_PHASE_ERROR = re.compile(r"^error(?: execution phase| running phase)? ?([\w/-]*): ?(.*)$")


@dataclass(frozen=True)
class OutputLine:
    level: str
    source: str  # the bracketed prefix ("certs", "preflight"), "klog", "check", or ""
    text: str
    check: str = ""  # preflight check name for [WARNING X]/[ERROR X] lines
    location: str = ""  # klog's file:line


def parse_line(line: str) -> OutputLine:
    """Classify one line of kubeadm output (already decoded, without its newline)."""
    stripped = line.rstrip()
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
        return OutputLine(ERROR, match.group(1) or "", stripped)
    match = _PREFIX.match(stripped)
    if match:
        source, text = match.groups()
        level = WARNING if text.upper().startswith("WARNING") else INFO
        return OutputLine(level, source, text)
    return OutputLine(INFO, "", stripped)
