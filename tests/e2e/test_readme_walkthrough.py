"""The README's "Try it on the test bed" walkthrough, run as written.

The fenced ``sh`` blocks of that section are run line by line through bash from the repository
root, with the same ``python`` and ``.venv/bin/python`` a person there would use; the only change
to their text is the placeholder CLUSTER, replaced by the cluster's name. What differs for a test
is set the way the README tells a person to set it, in the environment: a sandbox name and subnet
of its own (``KUBEBOARD_TESTBED_NAME``/``KUBEBOARD_TESTBED_SUBNET``, so concurrent test passes and
a person's own ``kbtb`` are left alone), a data directory of its own (``KUBEBOARD_DATA_DIR``, never
the repository's ``var/``) and a free port (``KUBEBOARD_PORT``).

The machines are bare (``up --bare``: nothing of Kubernetes on them), the artifact set the test
bed writes is imported by the README's ``manage.py artifacts import`` line, and Kubeboard's own
check of node1 finds no kubeadm there. Between the blocks the test does in Kubeboard what the
README asks of the person in the browser before the second terminal (log in as the printed admin,
create a team and a cluster, generate the cluster's SSH key), over HTTP against the ``bin/run`` the
README started; the clicks after it (Prepare, Initialize, Join, to Ready nodes) are walked in
Chromium by ``test_walkthrough_browser.py``.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
import requests

from tests.e2e.test_testbed_bare import require_runtime_set
from tools.testbed.sandbox import load
from tools.testbed.testing import assert_no_traces, require_binaries

ROOT = Path(__file__).resolve().parents[2]
SECTION = "## Try it on the test bed"
# The walkthrough's own sandbox: not "kbtb" (a person's), not "kbtb" plus letters (setup-testbed.sh
# removes those when their creator is gone, and the CLI that creates this one exits at once).
NAME, SUBNET = "kbwalk", "10.213.88.0/24"
STATE = Path("/var/lib/kubeboard-testbed")  # what the README's paths say
CLUSTER = "walk"

pytestmark = [pytest.mark.e2e]


def section() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return readme.split(f"\n{SECTION}\n", 1)[1].split("\n## ", 1)[0]


def commands() -> list[str]:
    """Every line of the section's ``sh`` blocks, in order (blank lines dropped)."""
    blocks = re.findall(r"^```sh\n(.*?)^```", section(), flags=re.S | re.M)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def bold_labels() -> list[str]:
    return re.findall(r"\*\*([^*]+)\*\*", section())


def test_every_button_and_field_the_walkthrough_names_exists():
    """A renamed button fails here, not only in the slow walk: each **label** of the section is
    text of a template or a form/model label (choices like *Worker* come from the models)."""
    sources = [p.read_text(encoding="utf-8") for p in (ROOT / "templates").rglob("*.html")]
    sources += [(ROOT / app / "forms.py").read_text(encoding="utf-8") for app in ("nodes", "clusters")]
    text = "\n".join(sources)
    labels = bold_labels()
    assert {"New cluster", "Create team", "Add machine", "Check machine", "Initialize"} <= set(labels)
    missing = [label for label in labels if label not in text and label.replace("'", "&#x27;") not in text]
    assert missing == [], f"the README's walkthrough names buttons or fields no page has: {missing}"
    models = (ROOT / "nodes" / "models.py").read_text(encoding="utf-8")
    assert '"Control plane"' in models and '"Worker"' in models


def test_the_cli_defaults_are_the_documented_sandbox(monkeypatch):
    """Without the variables the commands drive `kbtb` on 10.213.0.0/24, as the README says."""
    from tools.testbed import __main__ as cli

    monkeypatch.delenv("KUBEBOARD_TESTBED_NAME", raising=False)
    monkeypatch.delenv("KUBEBOARD_TESTBED_SUBNET", raising=False)
    assert (cli.default_name(), cli.default_subnet()) == ("kbtb", "10.213.0.0/24")
    assert "sandbox `kbtb` on 10.213.0.0/24" in section()
    assert "node1..3 at 10.213.0.11..13" in section()
    monkeypatch.setenv("KUBEBOARD_TESTBED_NAME", NAME)
    monkeypatch.setenv("KUBEBOARD_TESTBED_SUBNET", SUBNET)
    assert (cli.default_name(), cli.default_subnet()) == (NAME, SUBNET)


# -- the walk ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def walkthrough_env(data_dir: Path, port: int) -> dict[str, str]:
    """A person's shell: nothing of the test run's Kubeboard settings (its test database, its
    connection guard: the README's bin/run line sets the guard itself), only what the README
    says to set for another sandbox, data directory or port."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("KUBEBOARD_") and key not in {"DATABASE_URL", "REDIS_URL"}
    }
    if "KUBEBOARD_K8S_CACHE" in os.environ:  # where this machine keeps the built binaries
        env["KUBEBOARD_K8S_CACHE"] = os.environ["KUBEBOARD_K8S_CACHE"]
    env.update(
        KUBEBOARD_TESTBED_NAME=NAME,
        KUBEBOARD_TESTBED_SUBNET=SUBNET,
        KUBEBOARD_DATA_DIR=str(data_dir),
        KUBEBOARD_PORT=str(port),
    )
    return env


def sh(line: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", line], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (bin/run puts its web server and worker in groups of their own)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parents[int(entry)] = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pids: set[int]) -> set[int]:
    left = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            left.add(pid)
    return left


class Server:
    """``bin/run`` started from the README's line, in the background, as a second terminal would."""

    def __init__(self, line: str, env: dict[str, str], log: Path) -> None:
        self.log = log
        self.base = f"http://127.0.0.1:{env['KUBEBOARD_PORT']}"
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            ["bash", "-c", line],
            cwd=ROOT,
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.children: set[int] = set()

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 120) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"bin/run exited {self.process.returncode}:\n{self.output()}"
            try:
                if requests.get(f"{self.base}/readyz", timeout=2).status_code == 200:
                    self.children = descendants(self.process.pid)
                    return time.monotonic() - self.started
            except (requests.ConnectionError, requests.Timeout):  # not up yet, or slow to answer under load
                pass
            time.sleep(0.25)
        raise AssertionError(f"bin/run did not answer /readyz in {timeout}s:\n{self.output()}")

    def stop(self) -> int | None:
        """Ctrl-C, as the README says; what bin/run left running is killed and reported."""
        self.children |= descendants(self.process.pid)
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        deadline = time.monotonic() + 15
        while alive(self.children) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = alive(self.children)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        assert not left, f"Ctrl-C on bin/run left processes running: {sorted(left)}"
        return self.process.returncode


class Forms(HTMLParser):
    """The forms of a page with their fields' current values (what a browser would submit)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.forms: list[dict] = []
        self._select: str | None = None
        self._textarea: str | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append({"id": a.get("id", ""), "action": a.get("action", ""), "fields": {}})
        elif not self.forms:
            return
        fields = self.forms[-1]["fields"]
        if tag == "input" and a.get("name") and a.get("type") not in {"checkbox", "radio", "submit"}:
            fields[a["name"]] = a.get("value", "")
        elif tag == "input" and a.get("name") and "checked" in a:
            fields[a["name"]] = a.get("value", "on")
        elif tag == "select":
            self._select = a.get("name")
        elif tag == "option" and self._select and (self._select not in fields or "selected" in a):
            fields[self._select] = a.get("value", "")
        elif tag == "textarea":
            self._textarea = a.get("name")
            fields[self._textarea or ""] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea and self.forms:
            self.forms[-1]["fields"][self._textarea] += data

    def form(self, *, id: str = "", action: str = "", field: str = "") -> dict:
        for form in self.forms:
            if (
                (id and form["id"] == id)
                or (action and form["action"] == action)
                or (field and field in form["fields"])
            ):
                return form
        raise AssertionError(f"no form id={id!r} action={action!r} field={field!r} on the page: {self.forms}")


def submit(session: requests.Session, base: str, page: str, form: dict, **values: str) -> requests.Response:
    """Post a form found on ``page`` with its values as shown, changed by ``values``."""
    target = base + (form["action"] or page)
    response = session.post(
        target, data={**form["fields"], **values}, headers={"Referer": base + page}, timeout=60, allow_redirects=True
    )
    assert response.status_code == 200, f"{target}: {response.status_code}\n{response.text[:3000]}"
    return response


def log_in(base: str, password: str) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{base}/login/", timeout=30)
    form = Forms(page.text).form(field="password")
    response = submit(session, base, "/login/", form, username="admin", password=password)
    assert "/login/" not in response.url, "the printed admin password did not log in"
    return session


def create_cluster_with_key(server: Server, endpoint: str) -> str:
    """What the README asks in the browser: log in, Create team, New cluster, Generate the key."""
    password = re.search(r"^\s+password: (\S+)$", server.output(), flags=re.M)
    assert password, f"bin/run printed no admin password:\n{server.output()}"
    base = server.base
    session = log_in(base, password.group(1))

    listing = session.get(f"{base}/clusters/", timeout=30).text
    assert 'id="create-team"' in listing and 'id="new-cluster"' not in listing, "a fresh install offers Create team"
    created = submit(session, base, "/clusters/", Forms(listing).form(id="create-team-form"), name="walkers")
    assert created.url == f"{base}/clusters/new/", "Create team leads to the New cluster form"

    form = Forms(created.text).form(id="cluster-form")
    assert form["fields"]["kubernetes_version"] == "v1.37.2", "the README says v1.37.2 is preselected"
    assert form["fields"]["pod_network"] == "flannel v0.28.9", "the README says Flannel is preselected"
    operation = submit(session, base, "/clusters/new/", form, name=CLUSTER, control_plane_endpoint=endpoint)
    assert re.search(r"/operations/\d+/$", operation.url), operation.url
    deadline = time.monotonic() + 120
    while 'data-status="succeeded"' not in (page := session.get(operation.url, timeout=30).text):
        assert 'data-status="failed"' not in page, page[:5000]
        assert time.monotonic() < deadline, f"Prepare cluster identity did not finish:\n{server.output()[-3000:]}"
        time.sleep(0.5)

    cluster_page = f"/clusters/{CLUSTER}/"
    html = session.get(base + cluster_page, timeout=30).text
    assert "Generate the cluster&#x27;s SSH key" in html or "Generate the cluster's SSH key" in html
    generated = submit(
        session, base, cluster_page, Forms(html).form(action=f"/clusters/{CLUSTER}/nodes/_ssh-key/")
    ).text
    key = re.search(r'<pre class="pin" id="cluster-public-key">([^<]+)</pre>', generated)
    assert key, "the cluster page shows no public key after Generate the cluster's SSH key"
    return key.group(1).strip()


@pytest.fixture
def leftovers_removed() -> Iterator[None]:
    """Whatever the walk reaches, the sandbox is gone afterwards (the README's `down` is part of
    the walk; this is the safety net when an assertion stopped it earlier)."""
    yield
    sandbox = load(NAME)
    if sandbox.leftovers() or sandbox.state_dir.exists():
        sandbox.down()
    assert_no_traces(load(NAME))


@pytest.mark.cluster
@pytest.mark.services
@pytest.mark.timeout(600)
def test_the_walkthrough_runs_as_written(tmp_path, leftovers_removed):
    binaries = require_binaries()
    require_runtime_set()  # what the artifacts line copies (built once into the binary cache)
    if os.environ.get("KUBEBOARD_TESTBED_STATE", str(STATE)) != str(STATE):
        pytest.skip("KUBEBOARD_TESTBED_STATE moves the sandboxes away from the README's paths")
    lines = commands()
    kinds = [
        next((kind for kind, mark in STEPS if mark in line), "unknown") for line in lines
    ]  # each line is recognised, so a new README command fails here until the test knows it
    assert kinds == ["setup", "up", "artifacts", "run", "import", "show-key", "down"], list(
        zip(kinds, lines, strict=True)
    )
    data_dir = tmp_path / "var"
    env = walkthrough_env(data_dir, free_port())
    network = ipaddress.ip_network(SUBNET)
    addresses = [str(network.network_address + 10 + index) for index in (1, 2, 3)]
    timings: dict[str, float] = {}
    server: Server | None = None
    repo_var = sorted(p.name for p in (ROOT / "var").iterdir()) if (ROOT / "var").is_dir() else None
    try:
        for kind, line in zip(kinds, lines, strict=True):
            started = time.monotonic()
            if kind == "setup":
                complete = binaries / ".complete"
                before = complete.stat().st_mtime_ns
                for _ in range(2):  # "once", but a second run must change nothing and be quick too
                    result = sh(line, env, timeout=120)
                    assert result.returncode == 0, result
                    assert "test bed ready" in result.stdout, result
                assert complete.stat().st_mtime_ns == before, "setup-testbed.sh rebuilt a complete cache"
            elif kind == "up":
                result = sh(line, env)
                assert result.returncode == 0, result
                assert (
                    f"sandbox {NAME} up: " + ", ".join(f"node{i}={address}" for i, address in enumerate(addresses, 1))
                    in result.stdout
                ), result.stdout
                check_bare_machines(addresses)
            elif kind == "artifacts":
                result = sh(line, env)
                assert result.returncode == 0, result
                written = STATE / NAME / "artifact-set"
                assert f"in {written}: " in result.stdout, result.stdout
                assert (written / "SHA256SUMS").is_file() and (written / "bin" / "kubeadm").is_file()
            elif kind == "run":
                server = Server(line, env, tmp_path / "bin-run.log")
                timings["bin/run until ready"] = server.wait_ready()
                assert (data_dir / "kubeboard.sqlite3").exists(), "bin/run uses KUBEBOARD_DATA_DIR"
                started = time.monotonic()
                public_key = create_cluster_with_key(server, f"{addresses[0]}:6443")
                kind = "cluster and key over HTTP"
            elif kind == "import":
                import_the_set(line, env)
            elif kind == "show-key":
                show_key(line, env, tmp_path, public_key)
                machine_accepts_the_key(env, addresses[0])
            elif kind == "down":
                assert server is not None
                assert server.stop() == 130, server.output()[-2000:]  # Ctrl-C first, as the README says
                server = None
                result = sh(line, env)
                assert result.returncode == 0, result
                assert f"testbed: sandbox {NAME} removed" in result.stdout, result
                assert_no_traces(load(NAME))
                assert (data_dir / "kubeboard.sqlite3").exists(), "the cluster stays in Kubeboard's data dir"
                assert not (STATE / NAME / "artifact-set").exists(), "down removes the set written there"
                kept = data_dir / "artifacts" / "v1.37.2-amd64" / "SHA256SUMS"
                assert kept.is_file(), "Kubeboard keeps its imported copy of the set"
            timings[kind] = time.monotonic() - started
    finally:
        if server is not None:
            server.stop()
    # The repository's own data directory was never touched (no new database, keys or files).
    assert (sorted(p.name for p in (ROOT / "var").iterdir()) if (ROOT / "var").is_dir() else None) == repo_var
    print("walkthrough timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
    assert timings["setup"] < 30, f"setup-testbed.sh with a complete cache took {timings['setup']:.1f}s"


STEPS = [
    ("setup", "tools/setup-testbed.sh"),
    ("up", "-m tools.testbed up "),
    ("artifacts", "-m tools.testbed artifacts "),
    ("run", "bin/run"),
    ("import", "manage.py artifacts import "),
    ("show-key", "manage.py node show-key"),
    ("down", "-m tools.testbed down"),
]


def check_bare_machines(addresses: list[str]) -> None:
    """Three bare machines at the documented addresses, each with the files the README names:
    nothing of Kubernetes on their PATH and forwarding off, as a blank machine has."""
    sandbox = load(NAME)
    assert sandbox.bare, "the README's machines are bare (up --bare)"
    assert [node.address for node in sandbox.nodes] == addresses
    assert (STATE / NAME / "authorized_keys").is_file()
    for node in sandbox.nodes:
        public = STATE / NAME / node.name / "ssh_host_ed25519_key.pub"
        printed = subprocess.run(["ssh-keygen", "-lf", str(public)], capture_output=True, text=True, check=True)
        assert printed.stdout.split()[1].startswith("SHA256:")
        found = node.ssh("command -v kubeadm kubelet kubectl crictl containerd", check=False).stdout.strip()
        assert found == "", f"{node.name} is not bare: {found}"
        assert node.ssh("cat /proc/sys/net/ipv4/ip_forward").stdout.strip() == "0"


def import_the_set(line: str, env: dict[str, str]) -> None:
    """The README's import line as written: the set is Kubeboard's afterwards (the CLI lists it,
    with every file)."""
    result = sh(line, env)
    assert result.returncode == 0, result
    assert "Imported v1.37.2-amd64: 20 files" in result.stdout, result.stdout
    listed = sh(".venv/bin/python manage.py artifacts list", env)
    assert listed.returncode == 0 and listed.stdout.startswith("v1.37.2-amd64\t20 files"), listed


def show_key(line: str, env: dict[str, str], tmp_path: Path, public_key: str) -> None:
    """The README's line: first from a directory that is not bin/run's (refused, nothing created,
    the file unchanged), then as written (the cluster's key appended)."""
    authorized = STATE / NAME / "authorized_keys"
    before = authorized.read_text()
    command = line.replace("CLUSTER", CLUSTER)
    assert command.count(CLUSTER) == 1 and "CLUSTER" not in command

    elsewhere = tmp_path / "elsewhere"
    wrong = sh(command, {**env, "KUBEBOARD_DATA_DIR": str(elsewhere)})
    assert wrong.returncode == 2, wrong
    assert f"Kubeboard has no database in the data directory {elsewhere}" in wrong.stderr, wrong.stderr
    assert "KUBEBOARD_DATA_DIR" in wrong.stderr and "Nothing was created." in wrong.stderr
    assert "Traceback" not in wrong.stderr
    assert not elsewhere.exists(), "the refused command created its data directory"
    assert authorized.read_text() == before, "the refused command changed authorized_keys"

    result = sh(command, env)
    assert result.returncode == 0, result
    assert authorized.read_text() == before + public_key + "\n"
    assert before.strip(), "the sandbox's own key is kept"


def machine_accepts_the_key(env: dict[str, str], address: str) -> None:
    """Kubeboard logs in to node1 with the key the line appended (its own CLI, same data dir)."""
    guarded = {**env, "KUBEBOARD_CONNECTION_GUARD": "tools.testbed.guard.assert_test_route"}
    manage = [str(ROOT / ".venv" / "bin" / "python"), "manage.py", "node"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*manage, *args], cwd=ROOT, env=guarded, capture_output=True, text=True, timeout=120, check=False
        )

    added = run("add", CLUSTER, "node1", "--address", address, "--role", "control-plane")
    assert added.returncode == 0, added
    public = STATE / NAME / "node1" / "ssh_host_ed25519_key.pub"
    fingerprint = subprocess.run(["ssh-keygen", "-lf", str(public)], capture_output=True, text=True, check=True)
    accepted = run("accept-host-key", CLUSTER, "node1", "--fingerprint", fingerprint.stdout.split()[1])
    assert accepted.returncode == 0, accepted
    checked = run("check", CLUSTER, "node1", "--json")
    report = json.loads(checked.stdout)
    assert report["login"] is True, report
    # Kubeboard's own check sees the bare machine the README's next steps prepare.
    assert not report["binaries"]["kubeadm"]["path"], report["binaries"]
    assert any("kubeadm not found" in problem for problem in report["problems"]), report["problems"]
    assert checked.returncode == 1, checked  # problems found
