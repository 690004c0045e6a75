"""The machine list of bulk add: an address per line, or CSV rows ``name,address,user,port,role``.

Pasted or uploaded text is hostile input: it is bounded before it is split (``MAX_BYTES``,
``MAX_LINES``, ``MAX_LINE_CHARS``) and this parser raises only ``MachineListError``, every
problem with the line it is on, so a person fixes them all in one go. It only splits and
shapes lines; what a name, address or user may be is decided by ``nodes.forms.NodeForm``, the
form of the single Add machine (the bulk form runs it on each row).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass

# Enough for a rack or two in one paste; a bigger fleet is added in parts (or `manage.py node add`).
MAX_LINES = 200
MAX_BYTES = 64 * 1024
# A line longer than this cannot be a machine (a 253-character host name and the other columns fit).
MAX_LINE_CHARS = 512
# The columns, in the order a line without a header row gives them.
COLUMNS = ("name", "address", "user", "port", "role")
_PORT = re.compile(r"[0-9]{1,5}")
# What a header row may call a column (spreadsheets export "SSH port", "ssh_user" and the like).
_HEADER_ALIASES = {
    "name": "name",
    "node": "name",
    "address": "address",
    "host": "address",
    "ip": "address",
    "user": "user",
    "ssh user": "user",
    "ssh_user": "user",
    "port": "port",
    "ssh port": "port",
    "ssh_port": "port",
    "role": "role",
}
# Role words a person writes, to the Node.Role values.
ROLES = {
    "control-plane": "control-plane",
    "control plane": "control-plane",
    "controlplane": "control-plane",
    "worker": "worker",
}


class MachineListError(Exception):
    """What is wrong with the list: ``problems`` is ``[(line number or 0 for the whole list, message)]``."""

    def __init__(self, problems: list[tuple[int, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(describe(line, message) for line, message in problems))


def describe(line: int, message: str) -> str:
    return f"Line {line}: {message}" if line else message


@dataclass(frozen=True)
class MachineRow:
    """One machine as written; ``None`` where the line leaves a column to the form's default."""

    line: int
    name: str | None
    address: str
    user: str | None
    port: int | None
    role: str | None
    source: str  # the line as written (stripped), to quote it in a message

    @property
    def text(self) -> str:
        return self.source if len(self.source) <= 80 else self.source[:79] + "…"


def parse(text: str) -> list[MachineRow]:
    """The machines ``text`` lists (blank lines and ``#`` comments skipped), or every problem at once."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise MachineListError([(0, f"The list is larger than {MAX_BYTES // 1024} KiB; add the machines in parts.")])
    lines = text.splitlines()
    if len(lines) > MAX_LINES:
        raise MachineListError(
            [(0, f"The list has {len(lines)} lines; at most {MAX_LINES} at once: add the machines in parts.")]
        )
    rows: list[MachineRow] = []
    problems: list[tuple[int, str]] = []
    columns: tuple[str, ...] | None = None
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if len(line) > MAX_LINE_CHARS:
            problems.append((number, f"longer than {MAX_LINE_CHARS} characters: not a machine."))
            continue
        try:
            fields = [field.strip() for field in next(csv.reader([line], strict=True))]
        except csv.Error as exc:
            problems.append((number, f"not a CSV row ({exc})."))
            continue
        if columns is None and not rows and _is_header(fields):
            columns, problem = _header(fields)
            if problem:
                problems.append((number, problem))
            continue
        row, problem = _row(number, line, fields, columns)
        if problem:
            problems.append((number, problem))
        else:
            rows.append(row)
    if not rows and not problems:
        problems.append((0, "The list names no machine: write one address per line, or name,address,user,port,role."))
    if problems:
        raise MachineListError(sorted(problems))
    return rows


def _is_header(fields: list[str]) -> bool:
    return any(field.lower() in _HEADER_ALIASES for field in fields) and "address" in {
        _HEADER_ALIASES.get(field.lower()) for field in fields
    }


def _header(fields: list[str]) -> tuple[tuple[str, ...], str]:
    names = tuple(_HEADER_ALIASES.get(field.lower(), "") for field in fields)
    unknown = [field for field, name in zip(fields, names, strict=True) if not name]
    if unknown:
        return names, f"unknown column {unknown[0]!r} in the header; the columns are {', '.join(COLUMNS)}."
    twice = [name for name in COLUMNS if names.count(name) > 1]
    if twice:
        return names, f"the header names the column {twice[0]} twice."
    return names, ""


def _row(number: int, line: str, fields: list[str], columns: tuple[str, ...] | None) -> tuple[MachineRow | None, str]:
    if columns is None:
        # Without a header: a lone value is an address; otherwise the columns in COLUMNS' order.
        columns = ("address",) if len(fields) == 1 else COLUMNS
    if len(fields) > len(columns):
        return None, (
            f"{len(fields)} columns, at most {len(columns)} ({', '.join(columns)}); "
            "a password or private key is never part of the list."
        )
    values = dict(zip(columns, fields, strict=False))
    address = values.get("address", "")
    if not address:
        return None, "no address: every machine needs its IP address or DNS host name."
    port: int | None = None
    if values.get("port"):
        if not _PORT.fullmatch(values["port"]) or not 1 <= int(values["port"]) <= 65535:
            return None, f"port {values['port']!r} is not a number from 1 to 65535."
        port = int(values["port"])
    role: str | None = None
    if values.get("role"):
        role = ROLES.get(values["role"].lower())
        if role is None:
            return None, f"role {values['role']!r} is neither control-plane nor worker."
    row = MachineRow(
        line=number,
        name=values.get("name") or None,
        address=address,
        user=values.get("user") or None,
        port=port,
        role=role,
        source=line,
    )
    return row, ""


def duplicates(machines: list[tuple[int, str, str, int]]) -> list[tuple[int, str]]:
    """The same node name or machine (address and port) twice in ``[(line, name, address, port)]``,
    compared once the form has filled in the defaults and normalised the address."""
    problems: list[tuple[int, str]] = []
    seen_names: dict[str, int] = {}
    seen_machines: dict[tuple[str, int], int] = {}
    for line, name, address, port in machines:
        if name in seen_names:
            problems.append((line, f"the name {name} is already on line {seen_names[name]}."))
        else:
            seen_names[name] = line
        if (address, port) in seen_machines:
            problems.append((line, f"the machine {address}:{port} is already on line {seen_machines[address, port]}."))
        else:
            seen_machines[address, port] = line
    return problems
