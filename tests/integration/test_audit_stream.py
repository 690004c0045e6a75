"""The audit trail streamed to a SIEM: a real rsyslog (plain TCP and TLS) and a real HTTP server
receive every record as one JSON line, in seq order, and nothing is lost while they are down."""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from audit.models import GENESIS, AuditEvent, AuditStreamCursor
from audit.services import record
from audit.siem import Shipper, SinkError, configured_sink, send_checkpoint, stream_status
from tests.conftest import require_or_skip
from tests.support.processes import wait_until
from tests.support.rsyslog import make_tls_files, start_rsyslog, tls_available
from tests.support.services import ServiceUnavailable

pytestmark = pytest.mark.integration


@pytest.fixture
def rsyslog(tmp_path):
    try:
        server = start_rsyslog(tmp_path / "rsyslog")
    except ServiceUnavailable as exc:
        require_or_skip(str(exc))
    yield server
    server.stop()


def received(lines: list[str]) -> list[dict]:
    return [json.loads(line) for line in lines]


def assert_continuous(got: list[dict]) -> None:
    """What a collector checks: seq goes up by one, and each prev_hash is the hash before it."""
    assert got, "nothing received"
    if got[0]["seq"] == 1:
        assert got[0]["prev_hash"] == GENESIS
    for before, after in zip(got, got[1:], strict=False):
        assert after["seq"] == before["seq"] + 1, f"gap or repeat after record {before['seq']}"
        assert after["prev_hash"] == before["hash"], f"record {after['seq']} does not link to {before['seq']}"


def assert_matches_the_table(got: list[dict]) -> None:
    stored = list(AuditEvent.objects.order_by("seq").values_list("seq", "hash", "prev_hash", "action"))
    assert [(r["seq"], r["hash"], r["prev_hash"], r["action"]) for r in got] == stored


def write(count: int, prefix: str) -> None:
    for index in range(count):
        record(f"test.{prefix}", details={"n": index})


def stream_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "audit.siem" and r.levelno == logging.WARNING]


def test_syslog_delivers_every_record_in_order_across_a_collector_restart(db, settings, rsyslog, caplog):
    settings.AUDIT_SINK = f"syslog+tcp://127.0.0.1:{rsyslog.port}"
    settings.AUDIT_SINK_BATCH = 7  # several batches per round
    caplog.set_level(logging.INFO, logger="audit.siem")
    shipper = Shipper(configured_sink())
    write(20, "before")

    assert shipper.ship_once() == AuditEvent.objects.count()
    got = received(wait_until(lambda: rsyslog.lines() if len(rsyslog.lines()) >= 20 else None, 10, message="20 lines"))
    assert_continuous(got)
    assert_matches_the_table(got)
    first = got[0]  # the export's shape, plus the link
    assert {"seq", "hash", "prev_hash", "created", "actor", "action", "outcome", "details"} <= set(first)

    rsyslog.stop()
    write(15, "during")
    for _ in range(3):
        assert shipper.ship_once() == 0
    status = stream_status()
    assert status.waiting == 15 and status.failing_since is not None
    assert "cannot connect" in status.last_error
    warned = stream_warnings(caplog)
    assert len(warned) == 1, warned  # once per outage, not per attempt
    assert "15 record(s) wait" in warned[0]

    rsyslog.start()
    write(3, "after")
    assert shipper.ship_once() == 18
    got = received(wait_until(lambda: rsyslog.lines() if len(rsyslog.lines()) >= 38 else None, 10, message="all"))
    assert_continuous(got)
    assert_matches_the_table(got)
    assert [r["action"] for r in got[-18:]] == ["test.during"] * 15 + ["test.after"] * 3
    assert stream_status().waiting == 0 and stream_status().failing_since is None
    assert len(stream_warnings(caplog)) == 2 and "works again" in stream_warnings(caplog)[1]


def test_a_restarted_shipper_resends_rather_than_loses(db, settings, rsyslog):
    """The cursor moves only after acceptance: a cursor behind what was sent (a crash between
    the two) means a few lines twice, which the collector drops by seq; never a gap."""
    settings.AUDIT_SINK = f"syslog+tcp://127.0.0.1:{rsyslog.port}"
    write(5, "one")
    Shipper(configured_sink()).ship_once()
    cursor = AuditStreamCursor.objects.get()
    AuditStreamCursor.objects.filter(pk=cursor.pk).update(last_seq=cursor.last_seq - 2)  # as if it died
    write(2, "two")
    assert Shipper(configured_sink()).ship_once() == 4
    got = received(wait_until(lambda: rsyslog.lines() if len(rsyslog.lines()) >= 9 else None, 10, message="lines"))
    by_seq = {r["seq"]: r for r in got}  # what a collector keeps
    assert len(got) == len(by_seq) + 2
    assert_continuous([by_seq[s] for s in sorted(by_seq)])
    assert_matches_the_table([by_seq[s] for s in sorted(by_seq)])


def test_only_one_shipper_sends_at_a_time(db, settings, rsyslog):
    settings.AUDIT_SINK = f"syslog+tcp://127.0.0.1:{rsyslog.port}"
    write(3, "x")
    first, second = Shipper(configured_sink(), owner="w1"), Shipper(configured_sink(), owner="w2")
    cursor = AuditStreamCursor.objects.create(sink=configured_sink().name)
    assert first._claim(cursor)  # w1 is sending
    assert second.ship_once() == 0 and rsyslog.lines() == []
    first._release(cursor)
    assert second.ship_once() == AuditEvent.objects.count()


def _delete_record_behind_kubeboards_back(seq: int) -> None:
    """What a database writer can do with the triggers out of the way."""
    from django.db import connection

    from audit.triggers import erasing

    with connection.cursor() as cursor, erasing():
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")  # rolled back with the test
        cursor.execute("DELETE FROM audit_auditevent WHERE seq = %s", [seq])


def test_a_record_removed_before_it_was_sent_shows_as_a_gap_at_the_collector(
    db, settings, rsyslog, caplog, monkeypatch
):
    from audit import siem

    settings.AUDIT_SINK = f"syslog+tcp://127.0.0.1:{rsyslog.port}"
    shipper = Shipper(configured_sink())
    write(3, "sent")
    shipper.ship_once()
    write(4, "unsent")
    removed = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True)[1]
    _delete_record_behind_kubeboards_back(removed)
    # A missing seq is waited for (records commit in seq order), so nothing after it goes yet.
    assert shipper.ship_once() == 2
    monkeypatch.setattr(siem, "GAP_PATIENCE_SECONDS", 0.0)
    assert shipper.ship_once() == 1
    assert f"audit records {removed} to {removed} are missing" in caplog.text
    got = received(wait_until(lambda: rsyslog.lines() if len(rsyslog.lines()) >= 6 else None, 10, message="lines"))
    assert [r["seq"] for r in got][-2:] == [removed - 1, removed + 1]
    with pytest.raises(AssertionError, match=f"gap or repeat after record {removed - 1}"):
        assert_continuous(got)  # what the collector sees


@pytest.mark.services
def test_syslog_over_tls_with_the_collectors_ca(db, settings, tmp_path):
    if not tls_available():
        require_or_skip("rsyslog's TLS driver is missing: apt-get install rsyslog-openssl")
    ca, cert, key = make_tls_files(tmp_path / "pki")
    try:
        server = start_rsyslog(tmp_path / "rsyslog", tls=(ca, cert, key))
    except ServiceUnavailable as exc:
        require_or_skip(str(exc))
    try:
        settings.AUDIT_SINK = f"syslog+tls://127.0.0.1:{server.port}"
        write(4, "tls")
        # Without the CA the collector is not trusted: nothing goes, the records wait.
        assert Shipper(configured_sink()).ship_once() == 0
        assert "CERTIFICATE_VERIFY_FAILED" in stream_status().last_error
        assert server.lines() == []

        settings.AUDIT_SINK_CA_FILE = str(ca)
        assert Shipper(configured_sink()).ship_once() == AuditEvent.objects.count()
        got = received(wait_until(lambda: server.lines() if len(server.lines()) >= 4 else None, 10, message="lines"))
        assert_continuous(got)
        assert_matches_the_table(got)

        # A checkpoint can go the same way, as a remote witness.
        assert send_checkpoint({"kubeboard_audit_checkpoint": 1, "seq": 4, "head": got[-1]["hash"]}) is True
        wait_until(lambda: any("kubeboard_audit_checkpoint" in line for line in server.lines()), 10, message="cp")
    finally:
        server.stop()


class Collector:
    """A small real HTTP collector: keeps each POST's body, answers ``status``."""

    def __init__(self, tls: tuple | None = None) -> None:
        self.status = 200
        self.scheme = "https" if tls else "http"
        self.bodies: list[bytes] = []
        self.headers: list[dict] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if collector.status == 200:
                    collector.bodies.append(body)
                    collector.headers.append(dict(self.headers))
                self.send_response(collector.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls[1], tls[2])
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server.server_address[1]}/ingest/kubeboard"

    def lines(self) -> list[dict]:
        return [json.loads(line) for body in self.bodies for line in body.decode().splitlines()]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_http_sink_through_a_503_outage(db, settings, caplog):
    collector = Collector()
    try:
        settings.AUDIT_SINK = collector.url
        settings.AUDIT_SINK_TOKEN = "collector-token-123"
        settings.AUDIT_SINK_BATCH = 4
        shipper = Shipper(configured_sink())
        write(6, "first")
        assert shipper.ship_once() == AuditEvent.objects.count()
        assert collector.headers[0]["Content-Type"] == "application/x-ndjson"
        assert collector.headers[0]["Authorization"] == "Bearer collector-token-123"

        collector.status = 503
        write(5, "outage")
        assert shipper.ship_once() == 0 and shipper.ship_once() == 0
        status = stream_status()
        assert status.waiting == 5 and "503" in status.last_error
        assert "collector-token-123" not in status.last_error + caplog.text

        collector.status = 200
        assert shipper.ship_once() == 5
        got = collector.lines()
        assert_continuous(got)
        assert_matches_the_table(got)
        assert stream_status().waiting == 0
    finally:
        collector.stop()


def test_https_sink_trusts_the_configured_ca_only(db, settings, tmp_path):
    ca, cert, key = make_tls_files(tmp_path / "pki")
    collector = Collector(tls=(ca, cert, key))
    try:
        settings.AUDIT_SINK = collector.url
        write(3, "https")
        assert Shipper(configured_sink()).ship_once() == 0
        assert "CERTIFICATE_VERIFY_FAILED" in stream_status().last_error and collector.bodies == []
        settings.AUDIT_SINK_CA_FILE = str(ca)
        assert Shipper(configured_sink()).ship_once() == AuditEvent.objects.count()
        assert_matches_the_table(collector.lines())
    finally:
        collector.stop()


def test_http_sink_down_entirely_then_back(db, settings):
    collector = Collector()
    port = collector.server.server_address[1]
    collector.stop()  # nothing listens
    settings.AUDIT_SINK = f"http://127.0.0.1:{port}/ingest"
    write(3, "x")
    with pytest.raises(SinkError, match="cannot reach"):
        configured_sink().send(["{}"])
    assert Shipper(configured_sink()).ship_once() == 0
    assert stream_status().waiting == AuditEvent.objects.count()


def test_the_worker_streams_records_as_they_are_written(stack_factory, rsyslog):
    stack = stack_factory(
        workers=1, KUBEBOARD_AUDIT_SINK=f"syslog+tcp://127.0.0.1:{rsyslog.port}", KUBEBOARD_AUDIT_SINK_INTERVAL="0.2"
    )
    write(5, "worker")
    total = AuditEvent.objects.count()
    try:
        lines = wait_until(lambda: rsyslog.lines() if len(rsyslog.lines()) >= total else None, 90, message="the worker")
    except TimeoutError:
        raise AssertionError(stack.logs()) from None
    written_at = time.monotonic()
    write(1, "worker")
    total += 1
    lines = wait_until(lambda: rsyslog.lines() if len(rsyslog.lines()) >= total else None, 30, message="one more")
    print(f"\na record reached the collector {time.monotonic() - written_at:.2f} s after its commit (interval 0.2 s)")
    got = received(lines)
    assert_continuous(got)
    assert_matches_the_table(got)
    rsyslog.stop()
    write(3, "while down")
    wait_until(lambda: AuditStreamCursor.objects.filter(failing_since__isnull=False).exists(), 60, message="a failure")
    rsyslog.start()
    restarted_at = time.monotonic()
    total = AuditEvent.objects.count()
    lines = wait_until(lambda: rsyslog.lines() if len(rsyslog.lines()) >= total else None, 60, message="catch up")
    print(f"caught up {time.monotonic() - restarted_at:.1f} s after the collector came back")
    assert_continuous(received(lines))
    assert_matches_the_table(received(lines))
    # The worker logs the recovery just after the collector has the batch.
    logs = wait_until(lambda: "works again" in stack.logs() and stack.logs(), 10, message="the recovery logged")
    assert logs.count("is failing") == 1, logs
