"""``systemctl`` TEST DOUBLE for bare test-bed machines (issue 19).

systemd cannot be the init of a node sandbox (no PID namespace, the host's cgroups, no
dbus), yet preparing a machine and kubeadm itself drive services with ``systemctl``. Bare
nodes therefore get this double as ``/usr/bin/systemctl`` in their private root. It reads
real unit files (``/etc/systemd/system``, ``/run/systemd/system``, ``/usr/local/lib/systemd/system``,
``/lib/systemd/system``, with ``<unit>.d/*.conf`` drop-ins) and keeps systemd's on-disk state
where systemd keeps it (``enable`` links into ``<target>.wants``, ``mask`` links to
/dev/null), but it runs nothing itself: ``start``/``stop``/``restart`` hand the unit to the
node's runner (``runner.py --systemd``, the node's init), which runs ExecStart under its
supervision and reports back through files in ``/run/testbed/systemd``.

Supported, and nothing more (anything else exits 1 saying so): ``daemon-reload``,
``enable``/``disable`` [``--now``], ``start``/``stop``/``restart``/``try-restart``,
``is-active``, ``is-enabled``, ``is-failed``, ``mask``/``unmask`` [``--now``], ``status``,
``show -p`` [``--value``], ``list-units``/``list-unit-files`` [``--type``], ``reset-failed``, ``reload``,
``reload-or-restart``. Starting is supported for ``containerd.service``, ``kubelet.service`` (the
kubelet unit runs the hollow kubelet, see tools/README.md), ``keepalived.service`` and
``haproxy.service`` (the real Debian daemons, in the node's network namespace); other units can
be enabled, masked and queried. ``reload`` runs the unit's ExecReload lines with ``$MAINPID``
(haproxy's: a configuration check, then USR2 to its master process).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

STATE = Path("/run/testbed/systemd")
UNIT_DIRS = (
    Path("/etc/systemd/system"),
    Path("/run/systemd/system"),
    Path("/usr/local/lib/systemd/system"),
    Path("/lib/systemd/system"),
    Path("/usr/lib/systemd/system"),
)
ETC = UNIT_DIRS[0]
STARTABLE = ("containerd.service", "kubelet.service", "keepalived.service", "haproxy.service")
# Units whose ExecReload the runner runs (the hollow kubelet and containerd are never reloaded).
RELOADABLE = ("keepalived.service", "haproxy.service")
START_TIMEOUT = 90.0  # systemd's DefaultTimeoutStartSec
COMMANDS = (
    "daemon-reload",
    "enable",
    "disable",
    "start",
    "stop",
    "restart",
    "try-restart",
    "is-active",
    "is-enabled",
    "is-failed",
    "mask",
    "unmask",
    "status",
    "show",
    "list-units",
    "list-unit-files",
    "reset-failed",
    "reload",
    "reload-or-restart",
)


# systemctl's SubState for the ActiveState the runner reports.
SUB_STATE = {"active": "running", "activating": "auto-restart", "failed": "failed"}


def unit_name(name: str) -> str:
    return name if "." in name else f"{name}.service"


@dataclass
class Unit:
    name: str
    path: Path | None
    sections: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def get(self, section: str, key: str) -> list[str]:
        return self.sections.get(section, {}).get(key, [])

    def last(self, section: str, key: str, default: str = "") -> str:
        values = self.get(section, key)
        return values[-1] if values else default

    @property
    def description(self) -> str:
        return self.last("Unit", "Description", self.name)

    def environment(self) -> dict[str, str]:
        """Environment= then EnvironmentFile= (later files win), as systemd builds it."""
        env: dict[str, str] = {}
        for line in self.get("Service", "Environment"):
            for word in shlex.split(line):
                key, sep, value = word.partition("=")
                if sep:
                    env[key] = value
        for spec in self.get("Service", "EnvironmentFile"):
            optional = spec.startswith("-")
            path = Path(spec.lstrip("-"))
            try:
                text = path.read_text()
            except OSError:
                if optional:
                    continue
                raise
            for raw in text.splitlines():
                raw = raw.strip()
                if not raw or raw.startswith(("#", ";")):
                    continue
                key, sep, value = raw.partition("=")
                if sep:
                    words = shlex.split(value) if value.strip() else [""]
                    env[key.strip()] = " ".join(words)
        return env

    def command(self, key: str = "ExecStart", extra: dict[str, str] | None = None) -> list[list[str]]:
        """The unit's command lines for ``key``, variables expanded like systemd: ``$VAR`` alone
        splits into words, ``${VAR}`` stays one word. A leading ``-`` (failure ignored) is kept
        as the first element ``"-"``. ``extra``: variables systemd itself sets (``MAINPID``)."""
        env = {**self.environment(), **(extra or {})}
        lines = []
        for line in self.get("Service", key):
            line = line.strip()
            ignore = False
            while line[:1] in ("-", "@", "+", "!", ":"):
                ignore = ignore or line[0] == "-"
                line = line[1:]
            argv: list[str] = []
            for word in shlex.split(line):
                whole = re.fullmatch(r"\$(\w+)", word)
                if whole:
                    argv += env.get(whole.group(1), "").split()
                else:
                    argv.append(re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m.group(1) or m.group(2), ""), word))
            if argv:
                lines.append((["-"] if ignore else []) + argv)
        return lines


def _parse(text: str, sections: dict[str, dict[str, list[str]]]) -> None:
    section = ""
    pending = ""
    for raw in text.splitlines():
        line = pending + raw.strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            sections.setdefault(section, {})
            continue
        key, sep, value = line.partition("=")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        values = sections.setdefault(section, {}).setdefault(key, [])
        if value == "":
            values.clear()  # an empty assignment resets the list (ExecStart= in a drop-in)
        else:
            values.append(value)


def find_unit(name: str) -> Path | None:
    for d in UNIT_DIRS:
        p = d / name
        if p.exists() and os.path.realpath(p) != "/dev/null":
            return p
    return None


def load_unit(name: str) -> Unit:
    name = unit_name(name)
    path = find_unit(name)
    unit = Unit(name=name, path=path)
    if path is None:
        return unit
    _parse(path.read_text(), unit.sections)
    dropins: dict[str, Path] = {}
    for d in reversed(UNIT_DIRS):  # /etc last: a drop-in of the same name there wins
        dd = d / f"{name}.d"
        if dd.is_dir():
            for f in dd.glob("*.conf"):
                dropins[f.name] = f
    for fname in sorted(dropins):
        _parse(dropins[fname].read_text(), unit.sections)
    return unit


def masked(name: str) -> bool:
    p = ETC / name
    return p.is_symlink() and os.readlink(p) == "/dev/null"


def enabled_links(name: str) -> list[Path]:
    return sorted(p for p in ETC.glob(f"*.wants/{name}") if p.is_symlink() or p.exists())


def read_json(path: Path) -> dict[str, object]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def write_json(path: Path, data: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data))
    tmp.rename(path)  # atomic: the runner never reads half a file


def status_of(name: str) -> dict[str, object]:
    return read_json(STATE / f"{name}.status") or {"state": "inactive"}


def active_state(name: str) -> str:
    return str(status_of(name).get("state", "inactive"))


def _request(name: str, action: str, wait: bool = True) -> int:
    """Ask the runner to start/stop/restart ``name``; wait for its answer like systemctl
    waits for the job."""
    want_path = STATE / f"{name}.want"
    seq = int(read_json(want_path).get("seq", 0)) + 1  # type: ignore[call-overload]
    write_json(want_path, {"action": action, "seq": seq, "at": time.time()})
    if not wait:
        return 0
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        st = status_of(name)
        if int(st.get("seq", 0)) >= seq:  # type: ignore[call-overload]
            if action == "reload" and st.get("reload_failed"):
                print(
                    f"Job for {name} failed because the control process exited with error code.\n"
                    f"({st['reload_failed']}; the running process keeps its old configuration)",
                    file=sys.stderr,
                )
                return 1
            if st.get("state") == "failed":
                print(
                    f"Job for {name} failed because the control process exited with error code.\n"
                    f'See "systemctl status {name}" and the runner log for details.',
                    file=sys.stderr,
                )
                return 1
            return 0
        time.sleep(0.1)
    print(
        f"Job for {name} failed because a timeout was exceeded (no answer from the node's runner in "
        f"{START_TIMEOUT:.0f}s: is `runner.py --systemd` running in this node?).",
        file=sys.stderr,
    )
    return 1


def _link(link: Path, target: str) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target)
    print(f"Created symlink {link} \u2192 {target}.")


def cmd_start(names: list[str], action: str, no_block: bool) -> int:
    rc = 0
    for name in names:
        # try-restart: restart only the units that run (decided per unit, not by the first).
        if action == "try-restart" and active_state(name) not in ("active", "activating"):
            continue
        if masked(name):
            print(f"Failed to {action} {name}: Unit {name} is masked.", file=sys.stderr)
            rc = 1
            continue
        if find_unit(name) is None:
            print(f"Failed to {action} {name}: Unit {name} not found.", file=sys.stderr)
            rc = 5
            continue
        if name not in STARTABLE:
            print(
                f"systemctl test double: starting {name} is not supported on the test bed "
                f"(only {', '.join(STARTABLE)})",
                file=sys.stderr,
            )
            rc = 1
            continue
        rc = _request(name, "start" if action == "start" else "restart", wait=not no_block) or rc
    return rc


def cmd_reload(names: list[str], action: str, no_block: bool) -> int:
    """``reload``: the runner runs ExecReload with $MAINPID (systemd refuses a unit that is not
    active or has no ExecReload); ``reload-or-restart`` starts an inactive unit, restarts one
    without ExecReload."""
    rc = 0
    for name in names:
        unit = load_unit(name)
        if unit.path is None:
            print(f"Failed to {action} {name}: Unit {name} not found.", file=sys.stderr)
            rc = 5
            continue
        running = active_state(name) == "active"
        can_reload = bool(unit.get("Service", "ExecReload")) and name in RELOADABLE
        if action == "reload-or-restart" and not (running and can_reload):
            rc = cmd_start([name], "restart", no_block) or rc
            continue
        if not running:
            print(f"Failed to reload {name}: Unit {name} is not active.", file=sys.stderr)
            rc = 1
            continue
        if not can_reload:
            print(f"Failed to reload {name}: Job type reload is not applicable for unit {name}.", file=sys.stderr)
            rc = 1
            continue
        rc = _request(name, "reload", wait=not no_block) or rc
    return rc


def cmd_stop(names: list[str], no_block: bool) -> int:
    for name in names:
        if find_unit(name) is None and not (STATE / f"{name}.want").exists():
            print(f"Failed to stop {name}: Unit {name} not loaded.", file=sys.stderr)
            return 5
        if (STATE / f"{name}.want").exists():
            _request(name, "stop", wait=not no_block)
    return 0


def cmd_enable(names: list[str], now: bool, no_block: bool) -> int:
    for name in names:
        if masked(name):
            print(f"Failed to enable unit: Unit file {ETC / name} is masked.", file=sys.stderr)
            return 1
        unit = load_unit(name)
        if unit.path is None:
            print(f"Failed to enable unit: Unit file {name} does not exist.", file=sys.stderr)
            return 1
        for target in unit.get("Install", "WantedBy") + unit.get("Install", "RequiredBy"):
            for t in target.split():
                link = ETC / f"{t}.wants" / name
                if not (link.is_symlink() and os.readlink(link) == str(unit.path)):
                    _link(link, str(unit.path))
    return cmd_start(names, "start", no_block) if now else 0


def cmd_disable(names: list[str], now: bool, no_block: bool) -> int:
    for name in names:
        for link in enabled_links(name):
            link.unlink()
            print(f"Removed {link}.")
    return cmd_stop(names, no_block) if now else 0


def cmd_mask(names: list[str], now: bool, no_block: bool) -> int:
    for name in names:
        if not masked(name):
            _link(ETC / name, "/dev/null")
    return cmd_stop([n for n in names if (STATE / f"{n}.want").exists()], no_block) if now else 0


def cmd_unmask(names: list[str]) -> int:
    for name in names:
        if masked(name):
            (ETC / name).unlink()
            print(f"Removed {ETC / name}.")
    return 0


def enabled_state(name: str) -> str:
    if masked(name):
        return "masked"
    if enabled_links(name):
        return "enabled"
    unit = load_unit(name)
    if unit.path is None:
        return ""
    if not unit.get("Install", "WantedBy") and not unit.get("Install", "RequiredBy"):
        return "static"
    return "disabled"


def cmd_status(names: list[str]) -> int:
    rc = 0
    for name in names:
        unit = load_unit(name)
        if unit.path is None and not masked(name):
            print(f"Unit {name} could not be found.")
            print(f"     Loaded: not-found (Reason: Unit {name} not found.)")
            rc = max(rc, 4)
            continue
        st = status_of(name)
        state = str(st.get("state", "inactive"))
        loaded = "masked (Reason: Unit is masked.)" if masked(name) else f"loaded ({unit.path}; {enabled_state(name)})"
        print(f"\u25cf {name} - {unit.description}")
        print(f"     Loaded: {loaded}")
        since = st.get("since")
        when = f" since {time.ctime(float(since))}" if since else ""  # type: ignore[arg-type]
        sub = SUB_STATE.get(state, "dead")
        print(f"     Active: {state} ({sub}){when}")
        if st.get("pid"):
            print(f"   Main PID: {st['pid']}")
        if st.get("note"):
            print(f"       Note: {st['note']}")
        if state != "active":
            rc = max(rc, 3)
    return rc


def cmd_show(names: list[str], props: list[str], value_only: bool = False) -> int:
    for name in names:
        unit = load_unit(name)
        st = status_of(name)
        state = str(st.get("state", "inactive"))
        values = {
            "Id": name,
            "LoadState": "masked" if masked(name) else ("loaded" if unit.path else "not-found"),
            "ActiveState": state,
            "SubState": SUB_STATE.get(state, "dead"),
            "UnitFileState": enabled_state(name),
            "MainPID": str(st.get("pid") or 0),
            "FragmentPath": str(unit.path or ""),
            "Description": unit.description,
        }
        for key in props or list(values):
            print(values.get(key, "") if value_only else f"{key}={values.get(key, '')}")
    return 0


def known_units() -> list[str]:
    names = set()
    for d in UNIT_DIRS:
        if d.is_dir():
            names.update(p.name for p in d.iterdir() if "." in p.name and not p.name.endswith(".d"))
    return sorted(names)


def cmd_list(kind: str, unit_type: str) -> int:
    for name in known_units():
        if unit_type and not name.endswith("." + unit_type):
            continue
        if kind == "list-unit-files":
            print(f"{name} {enabled_state(name) or 'static'}")
        else:
            state = active_state(name)
            if state == "inactive":
                continue
            print(f"{name} loaded {state} {'running' if state == 'active' else state}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    flags = {a for a in args if a.startswith("-")}
    props: list[str] = []
    unit_type = ""
    words: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-p", "--property", "-t", "--type"):
            value = args[i + 1] if i + 1 < len(args) else ""
            if a in ("-p", "--property"):
                props.append(value)
            else:
                unit_type = value
            i += 2
            continue
        if a.startswith("--property="):
            props += a.split("=", 1)[1].split(",")
        elif a.startswith("--type="):
            unit_type = a.split("=", 1)[1]
        elif not a.startswith("-"):
            words.append(a)
        i += 1
    if not words:
        print(f"systemctl test double: give a command ({', '.join(COMMANDS)})", file=sys.stderr)
        return 1
    command, names = words[0], [unit_name(n) for n in words[1:]]
    now, no_block, quiet = "--now" in flags, "--no-block" in flags, bool(flags & {"-q", "--quiet"})
    if command not in COMMANDS:
        print(
            f"systemctl test double (Kubeboard test bed): '{command}' is not supported; supported: "
            f"{', '.join(COMMANDS)}",
            file=sys.stderr,
        )
        return 1
    if command in ("daemon-reload", "reset-failed"):
        # Units are read afresh at every start, so a reload has nothing to do; it is recorded.
        STATE.mkdir(parents=True, exist_ok=True)
        with open(STATE / "daemon-reload.log", "a") as fh:
            fh.write(f"{time.time()}\n")
        return 0
    if command == "list-units" or command == "list-unit-files":
        return cmd_list(command, unit_type)
    if not names:
        print(f"Too few arguments: systemctl {command} needs a unit.", file=sys.stderr)
        return 1
    if command in ("start", "restart", "try-restart"):
        return cmd_start(names, command, no_block)
    if command == "stop":
        return cmd_stop(names, no_block)
    if command in ("reload", "reload-or-restart"):
        return cmd_reload(names, command, no_block)
    if command == "enable":
        return cmd_enable(names, now, no_block)
    if command == "disable":
        return cmd_disable(names, now, no_block)
    if command == "mask":
        return cmd_mask(names, now, no_block)
    if command == "unmask":
        return cmd_unmask(names)
    if command == "is-active":
        states = [active_state(n) for n in names]
        if not quiet:
            print("\n".join(states))
        return 0 if any(s == "active" for s in states) else 3
    if command == "is-failed":
        states = [active_state(n) for n in names]
        if not quiet:
            print("\n".join(states))
        return 0 if any(s == "failed" for s in states) else 1
    if command == "is-enabled":
        states = [enabled_state(n) for n in names]
        for name, state in zip(names, states, strict=True):
            if not state:
                print(f"Failed to get unit file state for {name}: No such file or directory", file=sys.stderr)
            elif not quiet:
                print(state)
        return 0 if any(s in ("enabled", "static") for s in states) else 1
    if command == "status":
        return cmd_status(names)
    return cmd_show(names, [p for prop in props for p in prop.split(",") if p], "--value" in flags)


if __name__ == "__main__":
    sys.exit(main())
