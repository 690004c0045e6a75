"""Hostile input against a running Kubeboard (one real daphne process for the whole corpus).

The attack inputs of issue 15 and a corpus of malformed inputs go to every route of
``config.urls`` (walked, so a new route is covered: its URL arguments come from the permission
matrix's world), every form found on the pages (each field in turn, each upload, raw and broken
bodies), every admin route and the websocket. A person's mistake or an attacker's garbage must
get an answer, never a server error:

- no HTTP 5xx, no websocket close 1011 (or a dropped connection);
- no request slower than ``SLOW_SECONDS``;
- the web process's resident memory grows by less than ``MEMORY_BUDGET`` over the whole run
  (its peak, VmHWM, against its size after a warm-up pass over every page).

A failure names the input, the route and the URL. The address space of the web process is
capped for the run, so a regression (an alias bomb expanding) fails this test instead of
swapping the CI machine to death.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import resource
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
import requests
import websockets
from django.urls import Resolver404, resolve, reverse

from tests import permission_matrix as pm
from tests.conftest import session_cookie
from tests.support.web import logged_in_session
from tests.unit.test_permission_matrix import ADMIN_ROUTES, SITE_ROUTES

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.timeout(900)]

SLOW_SECONDS = 5.0
MEMORY_BUDGET = 100 * 1024 * 1024
# The web process may reserve this much address space beyond its size at start: far more than
# any honest request needs, far less than an expanding YAML bomb takes.
ADDRESS_SPACE_HEADROOM = 2 * 1024**3

# --- the attack inputs of issue 15 ("Why") ---------------------------------------------------------


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """A few hundred bytes of YAML that name 9**9 scalars once every alias is expanded."""
    lines = [f"a0: &a0 [{','.join(['x'] * width)}]"]
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [{','.join([f'*a{level - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


DEEP_LIST = "[" * 10_000 + "]" * 10_000
SELF_ALIAS = "a: &a {b: *a}\n"
HUGE_INT_YAML = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nx: " + "9" * 100_000 + "\n"
BAD_IPV6_KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: https://[::1
    certificate-authority-data: AAAA
users:
- name: u
  user:
    token: abcdef.0123456789abcdef
contexts:
- name: c
  context: {cluster: c, user: u}
current-context: c
"""
YAML_ATTACKS: list[tuple[str, str]] = [
    ("YAML alias bomb (9 levels x 9 aliases)", alias_bomb()),
    ("YAML 10,000-deep nested list", DEEP_LIST),
    ("YAML self-referencing alias", SELF_ALIAS),
    ("YAML 100,000-digit integer", HUGE_INT_YAML),
    ("kubeconfig with server https://[::1", BAD_IPV6_KUBECONFIG),
    ("YAML 10,000-deep nested mapping", "{a: " * 10_000 + "1" + "}" * 10_000),
    ("YAML python object tag", "!!python/object/apply:os.system ['true']\n"),
    ("YAML multi-document with a bad anchor", "---\na: *nowhere\n---\nb: 1\n"),
    ("YAML tab indentation and a bad scalar", "kind:\n\t- ]]]\n"),
]
DURATION_ATTACKS = ["999999999999999h", "99999999999999999999d", "1e309s", "-5m", "P99999999999Y", "5" * 5000 + "s"]

# --- malformed values for every field -----------------------------------------------------------------

TEXT_VALUES: list[tuple[str, str | bytes]] = [
    ("NUL byte", "a\x00b"),
    ("overlong string (20,000 characters)", "x" * 20_000),
    ("5,000-digit number (beyond Python's int parsing limit)", "9" * 5_000),
    ("integer beyond 64 bits", str(2**64)),
    ("negative number", "-1"),
    ("float overflow", "1e999"),
    ("invalid UTF-8", b"\xff\xfe\xc3("),
    ("UTF-8 lone surrogate", b"\xed\xa0\x80"),
    ("control characters and bidi overrides", "\x01\x1b[31m\x7f\u202e\u200b"),
    ("invalid URL", "https://[::1"),
    ("path traversal", "../../../../etc/passwd"),
    ("markup", "<script>alert(1)</script>'\""),
    ("duration overflow", "999999999999999h"),
    ("whitespace only", " \t\n "),
]
PER_FIELD = 3  # values per field when one field at a time is hostile
# Uploaded files: oversize, not text, and strange names.
UPLOADS: list[tuple[str, str, bytes]] = [
    ("oversize upload (6 MiB)", "big.yaml", b"a: " + b"x" * (6 * 1024 * 1024) + b"\n"),
    ("upload of invalid UTF-8", "bin.yaml", b"\xff\xfe\x00\x01" * 256),
    ("upload of NUL bytes", "nul.yaml", b"\x00" * 4096),
    ("empty upload", "empty.yaml", b""),
    ("upload named with traversal and NUL", "../../etc/passwd\x00.pem", b"a: 1\n"),
    ("upload with a 5,000-character name", "n" * 5000 + ".yaml", b"a: 1\n"),
]
PATH_SEGMENTS: list[tuple[str, str]] = [
    ("NUL byte in the path", "%00"),
    ("invalid UTF-8 in the path", "%FF%FE"),
    ("overlong path segment", "x" * 3000),
    ("encoded traversal in the path", "..%2F..%2Fetc%2Fpasswd"),
    ("unicode in the path", "%C3%A9t%C3%A9"),
    ("integer beyond 64 bits in the path", "9" * 30),
]
# Every query parameter the pages read, all set to one hostile (already encoded) value...
QUERY_VALUES: list[tuple[str, str]] = [
    ("NUL bytes in every query parameter", "%00"),
    ("invalid UTF-8 in every query parameter", "%FF%FE"),
    ("numbers beyond 64 bits in every query parameter", "9" * 40),
    ("negative numbers in every query parameter", "-1"),
    ("overlong value in every query parameter", "q" * 500),
]
# ...and whole query strings.
RAW_QUERIES: list[tuple[str, str]] = [
    ("invalid UTF-8 as a query parameter name", "%FF%FE=1&%00=2"),
    ("1,500 query parameters", "&".join(f"p{i}=1" for i in range(1500))),
    ("bad dates and lists where one value is expected", "since=2026-13-45&until=%00&node=a&node=b&before=1&after=1"),
]
# Parameters the pages read from the query string (history filters, upgrade target, admin lists).
QUERY_NAMES = [
    "cluster", "actor", "action", "object", "node", "since", "until", "outcome", "q", "correlation",
    "before", "after", "target", "kubelet", "next", "o", "p", "e", "all", "_popup", "_to_field",
]  # fmt: skip

# Raw request bodies: the parser itself under attack.
BOUNDARY = "kubeboardfuzz"
RAW_BODIES: list[tuple[str, str, bytes]] = [
    ("urlencoded body of invalid UTF-8", "application/x-www-form-urlencoded", b"\xff\xfe=\xff&a=%FF%00"),
    ("multipart without a boundary", "multipart/form-data", b"--x\r\n\r\n"),
    ("multipart with a truncated part", f"multipart/form-data; boundary={BOUNDARY}",
     f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="name"\r\n\r\nabc'.encode()),
    ("multipart of garbage", f"multipart/form-data; boundary={BOUNDARY}", b"\x00\xff" * 2000),
    ("multipart part without a name", f"multipart/form-data; boundary={BOUNDARY}",
     f"--{BOUNDARY}\r\nContent-Disposition: form-data\r\n\r\nx\r\n--{BOUNDARY}--\r\n".encode()),
    ("JSON body", "application/json", b'{"name": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"),
    ("3 MiB urlencoded body", "application/x-www-form-urlencoded", b"a=" + b"x" * (3 * 1024 * 1024)),
    ("2,000 form fields", "application/x-www-form-urlencoded", "&".join(f"f{i}=1" for i in range(2000)).encode()),
]  # fmt: skip

# Website frames and connections.
WS_FRAMES: list[tuple[str, str | bytes, bool]] = [  # (label, payload, as a text frame)
    ("websocket frame that is not JSON", "not json", True),
    ("websocket empty frame", "", True),
    ("websocket JSON array", "[]", True),
    ("websocket JSON null", "null", True),
    ("websocket 100,000-deep JSON array", "[" * 100_000 + "]" * 100_000, True),
    ("websocket 50,000-deep JSON object", '{"a":' * 50_000 + "1" + "}" * 50_000, True),
    ("websocket 100,000-digit number", '{"type": "ping", "n": ' + "9" * 100_000 + "}", True),
    ("websocket JSON with a NUL character", '{"type": "ping\\u0000"}', True),
    # Refused by daphne's websocket layer before Kubeboard sees it: it drops the connection.
    ("websocket text frame of invalid UTF-8", b"\xff\xfe\xfd", True),
    ("websocket binary frame", b"\x00\x01\x02", False),
    ("websocket 900 KiB frame", '{"type": "' + "p" * 900 * 1024 + '"}', True),
    ("websocket ping with a type that is not a string", '{"type": ["ping"]}', True),
]
WS_QUERIES: list[tuple[str, str]] = [
    ("websocket after=-1", "after=-1"),
    ("websocket after=NUL", "after=%00"),
    ("websocket after of invalid UTF-8", "after=%FF%FE"),
    ("websocket after of 100 digits", "after=" + "9" * 100),
    ("websocket after=1e9", "after=1e9"),
    ("websocket after given twice", "after=1&after=x"),
    ("websocket overlong query", "after=0&x=" + "y" * 8_000),
]


# --- the pages' forms -----------------------------------------------------------------------------------


@dataclass
class Form:
    action: str  # absolute path
    fields: dict[str, str]  # the values a browser would send untouched
    names: list[str]  # every field name (unchecked boxes included)
    files: list[str]
    texts: list[str]  # textareas: where YAML and keys are pasted
    multipart: bool
    role: str = ""
    guessed: bool = False  # no page showed it: ``names`` are every name the app's forms use

    @property
    def key(self) -> tuple:
        return (self.action, tuple(sorted(self.names)), tuple(self.files))


class FormParser(HTMLParser):
    def __init__(self, page_path: str) -> None:
        super().__init__(convert_charrefs=True)
        self.page_path = page_path
        self.forms: list[Form] = []
        self.current: Form | None = None
        self.select: str | None = None
        self.textarea: str | None = None

    def handle_starttag(self, tag: str, attrs) -> None:
        a = {k: (v if v is not None else "") for k, v in attrs}
        if tag == "form":
            if a.get("method", "get").lower() != "post":
                return
            action = urlsplit(urljoin(self.page_path, a.get("action") or self.page_path)).path
            multipart = "multipart" in a.get("enctype", "")
            self.current = Form(action, {}, [], [], [], multipart)
            self.forms.append(self.current)
            return
        form = self.current
        if form is None:
            return
        name = a.get("name")
        if tag == "input" and name:
            kind = a.get("type", "text").lower()
            form.names.append(name)
            if kind == "file":
                form.files.append(name)
            elif kind in ("checkbox", "radio"):
                if "checked" in a or (kind == "radio" and name not in form.fields):
                    form.fields[name] = a.get("value", "on")
            elif kind not in ("submit", "button", "reset", "image"):
                form.fields[name] = a.get("value", "")
        elif tag == "textarea" and name:
            form.names.append(name)
            form.texts.append(name)
            form.fields[name] = ""
            self.textarea = name
        elif tag == "select" and name:
            form.names.append(name)
            self.select = name
        elif tag == "option" and self.select:
            if self.select not in form.fields or "selected" in a:
                form.fields[self.select] = a.get("value", "")

    def handle_data(self, data: str) -> None:
        if self.current is not None and self.textarea:
            self.current.fields[self.textarea] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.current = None
        elif tag == "select":
            self.select = None
        elif tag == "textarea":
            self.textarea = None


def forms_on(page_path: str, html: str) -> list[Form]:
    parser = FormParser(page_path)
    parser.feed(html)
    return [form for form in parser.forms if form.action != "/logout/"]


# --- running the corpus ---------------------------------------------------------------------------------


@dataclass
class Finding:
    label: str
    route: str
    url: str
    problem: str

    def __str__(self) -> str:
        url = self.url if len(self.url) <= 160 else self.url[:150] + f"…({len(self.url)} chars)"
        return f"{self.route}: {self.label} -> {self.problem}  [{url}]"


def route_name(path: str) -> str:
    try:
        match = resolve(urlsplit(path).path)
    except (Resolver404, UnicodeDecodeError, ValueError):
        return f"(unrouted {path[:60]})"
    return match.view_name


@dataclass
class Run:
    base: str
    pid: int = 0  # the web process
    findings: list[Finding] = field(default_factory=list)
    count: int = 0
    slowest: tuple[float, str] = (0.0, "")
    laps: list[str] = field(default_factory=list)
    peak: int = 0
    jumps: list[str] = field(default_factory=list)
    _lap: tuple[float, int] = field(default_factory=lambda: (time.monotonic(), 0))

    def lap(self, name: str) -> None:
        """Note the inputs and seconds of one part of the corpus (printed at the end)."""
        now = time.monotonic()
        started, count = self._lap
        peak = f", peak {vm(self.pid, 'VmHWM') / 2**20:.0f} MiB" if self.pid else ""
        self.laps.append(f"{name} {self.count - count} in {now - started:.0f} s{peak}")
        self._lap = (now, self.count)

    def request(self, session: requests.Session, method: str, path: str, label: str, **kwargs) -> int | None:
        """Send one request; record it as a finding if the server fails, hangs or is slow."""
        self.count += 1
        route = kwargs.pop("route", None) or route_name(path)
        url = self.base + path
        started = time.monotonic()
        try:
            response = session.request(method, url, timeout=SLOW_SECONDS, allow_redirects=False, **kwargs)
        except requests.Timeout:
            self.findings.append(Finding(label, route, url, f"no answer within {SLOW_SECONDS} s"))
            return None
        except requests.ConnectionError as exc:
            self.findings.append(Finding(label, route, url, f"connection failed: {exc}"))
            return None
        seconds = time.monotonic() - started
        if self.pid:  # which inputs raise the web process's peak memory, and by how much
            peak = vm(self.pid, "VmHWM")
            if self.peak and peak - self.peak >= 4 * 2**20:
                self.jumps.append(f"+{(peak - self.peak) / 2**20:.0f} MiB {method} {route}: {label}")
            self.peak = peak
        if seconds > self.slowest[0]:
            self.slowest = (seconds, f"{method} {route}: {label}")
        # /readyz answers 503 while no worker runs (none does here): its documented answer.
        if response.status_code >= 500 and not (route == "readyz" and response.status_code == 503):
            self.findings.append(Finding(label, route, url, f"HTTP {response.status_code} in {seconds:.2f} s"))
        elif seconds > SLOW_SECONDS:
            self.findings.append(Finding(label, route, url, f"answered after {seconds:.1f} s"))
        return response.status_code

    def post(self, session: requests.Session, path: str, label: str, content_type: str = "", **kwargs) -> int | None:
        """A POST with the session's CSRF token in the header (a raw body has no field for it)."""
        headers = {"X-CSRFToken": session.cookies.get("csrftoken", ""), "Referer": self.base + "/"}
        if content_type:
            headers["Content-Type"] = content_type
        return self.request(session, "POST", path, label, headers=headers, **kwargs)


def vm(pid: int, key: str) -> int:
    """A size from /proc/PID/status, in bytes (VmRSS, VmHWM, VmSize)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def cap_address_space(pid: int) -> None:
    limit = vm(pid, "VmSize") + ADDRESS_SPACE_HEADROOM
    resource.prlimit(pid, resource.RLIMIT_AS, (limit, limit))


def concrete(route: str) -> str:
    """A pattern string with each converter replaced by a placeholder ({0}, {1}, ...)."""
    counter = itertools.count()
    return re.sub(r"<(?:\w+:)?\w+>", lambda _: "{" + str(next(counter)) + "}", route)


def path_variants(route: str, valid: str) -> Iterator[tuple[str, str]]:
    """The valid URL with one path argument at a time replaced by a hostile segment."""
    template = concrete(route)
    arguments = template.count("{")
    if not arguments:
        return
    # The valid values of the arguments, read back by matching the valid URL against the pattern.
    pattern = "^/" + re.escape(template).replace(r"\{", "{").replace(r"\}", "}")
    for index in range(arguments):
        pattern = pattern.replace("{" + str(index) + "}", "([^/]+?)")
    found = re.match(pattern + "$", valid)
    values = list(found.groups()) if found else ["1"] * arguments
    for index in range(arguments):
        for label, segment in PATH_SEGMENTS:
            changed = list(values)
            changed[index] = segment
            yield f"{label} (argument {index + 1})", "/" + template.format(*changed)


def form_bodies(form: Form, serial: Iterator[int]) -> Iterator[tuple[str, dict]]:
    """requests keyword arguments for each malformed submission of ``form``."""

    def base() -> dict:
        data = dict(form.fields)
        n = next(serial)
        for name, value in data.items():
            if not value and name == "name":
                data[name] = f"fz{n}"
            elif not value and name == "address":
                data[name] = f"10.9.{n // 250}.{n % 250 + 1}"
        return data

    def send(data: dict, files: dict | None = None) -> dict:
        if form.multipart:
            files = files or {name: ("", b"") for name in form.files}
        return {"data": data, "files": files} if files else {"data": data}

    names = [name for name in dict.fromkeys(form.names) if name != "csrfmiddlewaretoken" and name not in form.files]
    # Each hostile value in every field at once: a form cleans every field in one pass (a
    # button-only form gets names the app's forms use).
    guessed = form.guessed or not names
    names = names or app_form_field_names()
    for label, value in TEXT_VALUES:
        yield f"{label} in every field", send({**form.fields, **dict.fromkeys(names, value)})
    if guessed:
        return
    # Then in one field with the others valid, so the form's own checks after the fields run too
    # (a rotating share of the values per field keeps the corpus small).
    rotation = itertools.cycle(TEXT_VALUES)
    for name in names:
        for label, value in itertools.islice(rotation, PER_FIELD):
            yield f"{label} in field {name!r}", send({**base(), name: value})
        yield f"field {name!r} sent 50 times", send({**base(), name: ["x"] * 50})
    for name in form.texts:
        for label, text in YAML_ATTACKS:
            yield f"{label} pasted in {name!r}", send({**base(), name: text})
    for name in form.files:
        for label, filename, content in UPLOADS:
            yield f"{label} as {name!r}", send(base(), {name: (filename, content, "application/octet-stream")})
        for label, text in YAML_ATTACKS:
            yield f"{label} uploaded as {name!r}", send(base(), {name: ("attack.yaml", text.encode(), "text/yaml")})
    yield "every field missing", send({})


def app_form_field_names() -> list[str]:
    """Every field name of Kubeboard's own form classes (not Django's or a library's)."""
    from django import forms

    apps = ("audit.", "clusters.", "core.", "nodes.", "operations.", "teams.", "tokens.", "workflows.")
    names: set[str] = set()
    pending = [forms.BaseForm]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.__module__.startswith(apps):
            names.update(getattr(cls, "base_fields", {}))
    return sorted(names)


def destructive(action: str) -> bool:
    return bool(re.search(r"/(delete|remove|restore|rotate)/$", action))


# --- the test -------------------------------------------------------------------------------------------


def test_no_input_gets_a_server_error_a_hang_or_the_memory_of_the_web_server(stack_factory, capsys):
    world = pm.build_world()
    stack = stack_factory(workers=0)
    pid = stack.web.popen.pid
    cap_address_space(pid)
    run = Run(stack.http, pid)

    # Real logins through the login page for the operator and the team admin; the superuser
    # (for the admin site) and a throwaway session (for logout) get stored sessions.
    sessions: dict[str, requests.Session] = {}
    for role in ("operator", "admin"):
        user = world.users[role]
        user.set_password(f"pw-{role}-hostile")
        user.save()
        session = requests.Session()
        session.get(f"{stack.http}/login/", timeout=30)
        answer = session.post(
            f"{stack.http}/login/",
            data={
                "username": user.username,
                "password": f"pw-{role}-hostile",
                "csrfmiddlewaretoken": session.cookies["csrftoken"],
            },
            headers={"Referer": f"{stack.http}/login/"},
            timeout=30,
            allow_redirects=False,
        )
        assert answer.status_code == 302, f"{role} could not log in: {answer.status_code}"
        sessions[role] = session
    sessions["superuser"] = logged_in_session(stack.http, session_cookie(world.users["superuser"]))
    sessions["anonymous"] = requests.Session()
    for session in sessions.values():
        session.get(f"{stack.http}/login/", timeout=30)  # a CSRF cookie for every session

    # Warm-up, and the forms: every page once for each role (imports, templates and caches load
    # here, so the memory measured afterwards is what the corpus costs).
    pages: list[tuple[str, str]] = []  # (route key, valid path)
    for key, route in sorted(pm.MATRIX.items()):
        if route.GET is not None and key in SITE_ROUTES:
            pages.append((key, ("/" + key) if SITE_ROUTES[key] == key else reverse(key, kwargs=route.kwargs(world))))
    found: dict[tuple, Form] = {}
    for role in ("anonymous", "operator", "admin", "superuser"):
        for key, path in pages:
            response = sessions[role].get(stack.http + path, timeout=30)
            if response.status_code >= 500 and path != "/readyz":
                run.findings.append(Finding(f"warm-up as {role}", key, path, f"HTTP {response.status_code}"))
            if "text/html" in response.headers.get("Content-Type", ""):
                for form in forms_on(path, response.text):
                    form.role = role
                    found.setdefault(form.key, form)
    # Forms of POST routes no page showed (their state did not offer them): every field name
    # of the app's form classes, so each form behind such a route still gets its fields.
    every_name = app_form_field_names()
    for key, route in sorted(pm.MATRIX.items()):
        if route.POST is not None and key in SITE_ROUTES and SITE_ROUTES[key] != key:
            path = reverse(key, kwargs=route.kwargs(world))
            if path != "/logout/" and not any(form.action == path for form in found.values()):
                found[(path,)] = Form(path, {}, every_name, [], [], False, "admin", guessed=True)
    admin_forms = [("superuser", reverse("admin:auth_user_add")), ("superuser", reverse("admin:auth_group_add"))]
    admin_forms += [("superuser", reverse("admin:auth_user_change", args=[world.users["viewer"].pk]))]
    admin_forms += [("anonymous", reverse("admin:login"))]
    for role, path in admin_forms:
        for form in forms_on(path, sessions[role].get(stack.http + path, timeout=30).text):
            form.role = role
            found.setdefault(form.key, form)
    baseline = vm(pid, "VmRSS")
    run.lap("warm-up")

    # 1. The attack inputs of the issue, each where the probe sent it.
    operator, admin = sessions["operator"], sessions["admin"]
    team = world.team.pk
    for n, (label, text) in enumerate(YAML_ATTACKS):
        run.post(
            operator,
            "/clusters/import/",
            f"{label} (import, pasted)",
            data={"name": f"im{n}", "team": team, "text": text},
        )
        run.post(
            operator,
            "/clusters/import/",
            f"{label} (import, uploaded)",
            data={"name": f"if{n}", "team": team},
            files={"file": ("kubeadm.yaml", text.encode(), "text/yaml")},
        )
        run.post(
            admin,
            "/clusters/adopt/",
            f"{label} (adopt, pasted)",
            data={"name": f"ad{n}", "team": team, "kubeconfig_text": text},
        )
        run.post(
            admin,
            "/clusters/adopt/",
            f"{label} (adopt, uploaded)",
            data={"name": f"au{n}", "team": team},
            files={"kubeconfig_file": ("admin.conf", text.encode(), "text/yaml")},
        )  # fmt: skip
    for ttl in DURATION_ATTACKS:
        for route_key in ("tokens:create", "tokens:policy"):
            path = reverse(route_key, kwargs={"name": world.cluster.name})
            page = admin.get(stack.http + path, timeout=30).text
            for form in forms_on(path, page):
                if form.action == path:
                    data = {**form.fields, **{n: ttl for n in form.names if "ttl" in n or "lifetime" in n}}
                    run.post(admin, path, f"duration {ttl[:40]!r} in every TTL field", data=data)

    run.lap("issue attacks")

    # 2. The websocket: hostile paths and queries, frames, origins, cookies.
    ws_count, ws_findings = asyncio.run(websocket_corpus(stack, sessions, world.operation.pk))
    run.count += ws_count
    run.findings.extend(ws_findings)
    run.lap("websocket")

    # 3. Every URL: hostile path arguments (each method the route takes) and hostile query
    #    strings (pages), site routes as the team admin and the operator, the admin as superuser.
    queries = [(label, "&".join(f"{name}={value}" for name in QUERY_NAMES)) for label, value in QUERY_VALUES]
    for key, route in sorted(SITE_ROUTES.items()):
        entry = pm.MATRIX.get(key)
        if entry is None or route == "logout/":
            continue
        valid = "/" + key if route == key else reverse(key, kwargs=entry.kwargs(world))
        for label, path in path_variants(route, valid):
            run.request(admin, "GET", path, label, route=key)
            if entry.POST is not None:
                run.post(admin, path, label, route=key, data={"name": "x"})
        if entry.GET is not None and entry.GET != pm.POST_ONLY:
            for label, query in queries + RAW_QUERIES:
                run.request(operator, "GET", f"{valid}?{query}", label, route=key)
    from tests.unit.test_permission_matrix import _admin_kwargs

    superuser = sessions["superuser"]
    for key, route in sorted(ADMIN_ROUTES.items()):
        # Every model's list (filters, search, ordering, paging come from the query) and change
        # page (the object id from the path); the other admin pages share their code.
        if key.endswith("_changelist") or key in ("admin:index", "admin:autocomplete", "admin:app_list"):
            valid = reverse(key, kwargs=_admin_kwargs(route))
            for label, query in queries[:3] + RAW_QUERIES[:2]:  # the admin's lists share one code path
                run.request(superuser, "GET", f"{valid}?{query}", label, route=key)
        elif key.endswith("_change") or key == route:
            valid = "/" + re.sub(r"<(?:\w+:)?\w+>", "1", route).replace("(?P<url>.*)$", "nowhere/").lstrip("^")
            if key != route:
                valid = reverse(key, kwargs=_admin_kwargs(route))
            for label, path in path_variants(route, valid):
                run.request(superuser, "GET", path, label, route=key)
    run.request(sessions["anonymous"], "GET", "/" + "%00" * 2000, "2,000 NUL bytes as the path")
    run.request(sessions["anonymous"], "GET", "/clusters/" + "a/" * 3000, "3,000 path segments")

    run.lap("URLs")

    # 4. Every form: each field in turn, each upload, then raw and broken bodies. Actions that
    #    remove things go last, so the rest still find their objects.
    serial = itertools.count()
    ordered = sorted(found.values(), key=lambda f: (destructive(f.action), f.action.startswith("/admin/"), f.action))
    for form in ordered:
        session = sessions[form.role]
        for label, kwargs in form_bodies(form, serial):
            run.post(session, form.action, label, **kwargs)
        # The body parser is Django's for every route: all broken bodies where a page showed the
        # form, the cheap ones at the actions no page showed.
        for label, content_type, body in RAW_BODIES if not form.guessed else RAW_BODIES[:5]:
            run.post(session, form.action, label, data=body, content_type=content_type)

    run.lap("forms")
    peak = vm(pid, "VmHWM")
    growth = peak - baseline
    with capsys.disabled():
        print(
            f"\nhostile input: {run.count} inputs to {len(SITE_ROUTES) + len(ADMIN_ROUTES)} routes and "
            f"{len(found)} forms; web process {baseline / 2**20:.0f} MiB after warm-up, peak "
            f"{peak / 2**20:.0f} MiB (+{growth / 2**20:.1f} MiB); slowest {run.slowest[0]:.2f} s ({run.slowest[1]}); "
            + ", ".join(run.laps)
            + "".join(f"\n  {jump}" for jump in run.jumps)
        )
    assert run.count >= 200
    problems = [str(finding) for finding in run.findings]
    if growth >= MEMORY_BUDGET:
        problems.append(f"the web process grew by {growth / 2**20:.0f} MiB (budget {MEMORY_BUDGET / 2**20:.0f} MiB)")
    tracebacks = re.findall(
        r"Traceback \(most recent call last\):.*?\n(\w[\w.]*(?:Error|Exception)[^\n]*)", stack.web.log(), re.S
    )
    assert not problems, (
        f"{len(problems)} of {run.count} hostile inputs failed:\n  "
        + "\n  ".join(problems[:80])
        + ("\n  ..." if len(problems) > 80 else "")
        + "\nexceptions in the web log: "
        + "; ".join(sorted(set(tracebacks))[:30])
    )  # fmt: skip


async def websocket_corpus(stack, sessions, operation_id: int) -> tuple[int, list[Finding]]:
    findings: list[Finding] = []
    count = 0
    origin = f"http://{stack.address}"
    cookie = f"sessionid={sessions['operator'].cookies['sessionid']}"
    stream = f"/ws/operations/{operation_id}/"

    async def attempt(label: str, path: str, frame=None, *, headers=None, origin_header=origin) -> None:
        nonlocal count
        count += 1
        url = stack.ws + path
        try:
            async with asyncio.timeout(SLOW_SECONDS):
                socket = await websockets.connect(
                    url,
                    additional_headers=headers if headers is not None else {"Cookie": cookie},
                    origin=origin_header,
                    max_size=None,
                    open_timeout=SLOW_SECONDS,
                )
                try:
                    if frame is not None:
                        payload, text = frame
                        await socket.send(payload, text=text)
                    while True:
                        await asyncio.wait_for(socket.recv(), 1.0 if frame is None else SLOW_SECONDS)
                except TimeoutError:
                    if frame is not None:
                        findings.append(Finding(label, "websocket", url, "stream neither answered nor closed"))
                    await socket.close()
                    return
                except websockets.ConnectionClosed as exc:
                    code = exc.rcvd.code if exc.rcvd is not None else None
                    if code is None:  # no close frame: only a frame invalid at the protocol level may
                        failed = not (frame is not None and isinstance(frame[0], bytes) and frame[1])
                    else:  # 1000 and Kubeboard's 44xx are answers; 1011 is a server error
                        failed = code == 1011 or code >= 4500 or (1002 <= code <= 1015 and code != 1009)
                    if failed:
                        findings.append(Finding(label, "websocket", url, f"closed with {code}: {exc}"))
        except websockets.InvalidStatus as exc:
            if exc.response.status_code >= 500:
                findings.append(Finding(label, "websocket", url, f"handshake HTTP {exc.response.status_code}"))
        except TimeoutError:
            findings.append(Finding(label, "websocket", url, f"no answer within {SLOW_SECONDS} s"))
        except (OSError, websockets.InvalidHandshake) as exc:
            findings.append(Finding(label, "websocket", url, f"handshake failed: {exc!r}"))

    for label, payload, text in WS_FRAMES:
        await attempt(label, stream + "?after=0", (payload, text))
    for label, query in WS_QUERIES:
        await attempt(label, f"{stream}?{query}")
    for label, segment in PATH_SEGMENTS:
        await attempt(f"websocket: {label}", f"/ws/operations/{segment}/")
        await attempt(f"websocket (unrouted): {label}", f"/ws/{segment}/")
    await attempt("websocket with a session cookie of NUL bytes", stream, headers={"Cookie": "sessionid=%00%00"})
    await attempt("websocket with a 4,000-character cookie", stream, headers={"Cookie": "sessionid=" + "a" * 4000})
    await attempt("websocket from a foreign origin", stream, origin_header="http://evil.example")
    await attempt("websocket with origin null", stream, origin_header="null")
    await attempt("websocket with an invalid origin URL", stream, origin_header="http://[::1")
    return count, findings


def test_an_upload_costs_the_web_process_about_its_size_and_a_huge_one_is_refused(stack_factory, operator):
    """Twisted parsed every multipart body into memory many times over before daphne passed it
    on (a 6 MiB upload: +72 MiB), and daphne held any body whole in memory: the parse is off and
    a body over KUBEBOARD_MAX_REQUEST_BYTES gets a 413 from the server (core/webserver.py)."""
    stack = stack_factory(workers=0, KUBEBOARD_MAX_REQUEST_BYTES=str(5 * 2**20))
    pid = stack.web.popen.pid
    session = logged_in_session(stack.http, session_cookie(operator))
    page = session.get(f"{stack.http}/clusters/import/", timeout=30)
    assert page.status_code == 200
    headers = {"X-CSRFToken": session.cookies["csrftoken"], "Referer": stack.http + "/"}

    def upload(size: int) -> requests.Response:
        content = b"a: " + b"x" * size + b"\n"
        files = {"file": ("kubeadm.yaml", content, "text/yaml")}
        data = {"name": "big", "team": str(operator.team_memberships.get().team_id)}
        return session.post(f"{stack.http}/clusters/import/", data=data, files=files, headers=headers, timeout=60)

    assert upload(512 * 1024).status_code == 400  # warm: the import page, the form and its error are loaded
    before = vm(pid, "VmHWM")
    answer = upload(4 * 2**20)
    assert answer.status_code == 400 and "larger than 256 KiB" in answer.text
    after = vm(pid, "VmHWM")
    assert after - before < 16 * 2**20, f"a 4 MiB upload raised the web process by {(after - before) / 2**20:.0f} MiB"
    answer = upload(64 * 2**20)
    assert answer.status_code == 413
    assert "this server takes at most 5242880 (KUBEBOARD_MAX_REQUEST_BYTES)" in answer.text
    huge = vm(pid, "VmHWM")
    assert huge - after < 16 * 2**20, f"a 64 MiB upload raised the web process by {(huge - after) / 2**20:.0f} MiB"
