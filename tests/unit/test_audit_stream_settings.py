"""The SIEM stream's settings, message framing, command and the lag on the history page
(delivery itself: tests/integration/test_audit_stream.py, against a real rsyslog and HTTP server)."""

from __future__ import annotations

import re

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from audit.models import AuditEvent, AuditStreamCursor
from audit.services import record
from audit.siem import SinkConfigError, parse_sink, record_line, syslog_frame
from tests.support.services import free_port

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("syslog://collector:514", "must start with syslog+tcp://"),
        ("collector:6514", "must start with"),
        ("syslog+tcp://collector", "needs a port"),
        ("syslog+tls://collector:6514/path", "host:port only"),
        ("syslog+tcp://collector:99999", "port is not a number"),
        ("https:///ingest", "names no host"),
    ],
)
def test_a_wrong_sink_address_is_named(address, problem):
    with pytest.raises(SinkConfigError, match=re.escape(problem)):
        parse_sink(address)


def test_a_missing_ca_file_is_named(settings, tmp_path):
    settings.AUDIT_SINK_CA_FILE = str(tmp_path / "absent.pem")
    with pytest.raises(SinkConfigError, match="KUBEBOARD_AUDIT_SINK_CA_FILE: .*absent.pem is not a file"):
        parse_sink("syslog+tls://collector:6514")


def test_the_sinks_name_carries_no_credentials():
    sink = parse_sink("https://ingest:s3cret@siem.example.com:8443/services/collector?token=abc")
    assert sink.name == "https://siem.example.com:8443/services/collector"
    assert sink.port == 8443
    assert parse_sink("syslog+tls://siem.example.com:6514").name == "syslog+tls://siem.example.com:6514"


def test_one_record_is_one_rfc5424_message_with_octet_counting():
    event = record("test.framed", details={"text": "été"})
    line = record_line(event)
    assert "\n" not in line
    frame = syslog_frame(line, when=event.created)
    length, _, message = frame.partition(b" ")
    assert int(length) == len(message)  # bytes, not characters
    header = re.match(rb"<110>1 (\S+) (\S+) kubeboard \d+ audit - ", message)
    assert header and header.group(1).decode() == event.created.isoformat()
    assert message[header.end() :].decode() == line


def test_audit_ship_needs_a_sink(settings):
    settings.AUDIT_SINK = ""
    with pytest.raises(CommandError, match="no SIEM sink is configured: set KUBEBOARD_AUDIT_SINK"):
        call_command("audit_ship", "--once")
    settings.AUDIT_SINK = "udp://collector:514"
    with pytest.raises(CommandError, match="KUBEBOARD_AUDIT_SINK must start with"):
        call_command("audit_ship", "--once")


def test_audit_ship_once_says_what_waits_when_the_collector_is_down(settings):
    settings.AUDIT_SINK = f"syslog+tcp://127.0.0.1:{free_port()}"
    record("test.waiting")
    with pytest.raises(CommandError, match=r"cannot connect .* (\d+) record\(s\) wait; they go in order"):
        call_command("audit_ship", "--once")


def test_superusers_see_the_streams_lag_on_the_history_page(client, settings, make_user):
    settings.AUDIT_SINK = f"syslog+tcp://127.0.0.1:{free_port()}"
    for index in range(3):
        record("test.something", details={"n": index})
    AuditStreamCursor.objects.create(
        sink=settings.AUDIT_SINK, last_seq=AuditEvent.objects.order_by("seq").first().seq, last_error="refused"
    )
    client.force_login(make_user("root", team=None, superuser=True))
    page = client.get(reverse("audit:history")).content.decode()
    assert 'id="audit-stream"' in page
    waiting = AuditEvent.objects.count() - 1
    assert re.search(rf'id="stream-waiting">{waiting}<', page)
    assert 'id="stream-last-success">never<' in page

    client.force_login(make_user("ada", role="admin"))
    assert 'id="audit-stream"' not in client.get(reverse("audit:history")).content.decode()


def test_a_wrong_sink_shows_on_the_history_page(client, settings, make_user):
    settings.AUDIT_SINK = "syslog+tcp://collector"
    client.force_login(make_user("root", team=None, superuser=True))
    page = client.get(reverse("audit:history")).content.decode()
    assert "needs a port" in page and 'id="stream-problem"' in page
