"""Streaming the audit trail to a SIEM, after commit and in ``seq`` order, losing nothing.

Nothing is sent from the append path: a record is committed first, and a shipper (a thread in
each django-q2 worker, or ``manage.py audit_ship``) later sends every record with ``seq``
greater than the sink's cursor (``AuditStreamCursor``), in order and in batches, and moves the
cursor only after the collector accepted the batch. While the collector is down, records wait
in the database; the first failure of an outage logs one WARNING, the recovery another.

Delivery is at least once: a shipper that dies between the collector's acceptance and moving
the cursor sends that batch again, so a collector de-duplicates by ``seq``.

Each record is one JSON line: the export's fields (``audit.export.as_dict``, so ``seq`` and
``hash``) plus ``prev_hash``. A collector checks continuity: each line's ``seq`` is the one
before plus one, and its ``prev_hash`` is the ``hash`` of the line before.

Sinks (``KUBEBOARD_AUDIT_SINK``):

* ``syslog+tcp://host:port`` and ``syslog+tls://host:port``: RFC 5424 messages with RFC 6587
  octet-counting framing. One connection per batch: the batch counts as accepted when it was
  written and the collector, after our end of stream, read everything and closed the
  connection (a plain successful ``send`` only says the bytes reached our own kernel).
* ``http://…`` and ``https://…``: one POST per batch, ``application/x-ndjson``; a 2xx answer
  accepts it, anything else (redirects included) is a failure.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connection
from django.db.models import Q
from django.dispatch import receiver
from django.utils import timezone
from django_q.signals import post_spawn

from audit.export import as_dict
from audit.models import AuditChainHead, AuditEvent, AuditStreamCursor

log = logging.getLogger(__name__)

SCHEMES = ("syslog+tcp", "syslog+tls", "http", "https")
SYSLOG_PRI = 13 * 8 + 6  # facility 13 "log audit", severity 6 "informational"
APP_NAME = "kubeboard"
# A shipper that stopped answering (killed, hung) gives way to another after this long past its
# last batch: longer than one batch can take (connect, send, be answered: each up to the timeout).
LEASE_MARGIN_SECONDS = 15.0
# A missing seq (never expected: records commit in seq order) is waited for this long, then skipped.
GAP_PATIENCE_SECONDS = 60.0


class SinkConfigError(ValueError):
    """``KUBEBOARD_AUDIT_SINK`` (or a setting beside it) cannot be used; the message says why."""


class SinkError(OSError):
    """The collector did not accept a batch; the message says why (never a credential)."""


def record_line(event: AuditEvent) -> str:
    """One record as one JSON line: the export's fields plus ``prev_hash``."""
    return json.dumps({**as_dict(event), "prev_hash": event.prev_hash}, sort_keys=True)


def syslog_frame(line: str, *, msgid: str = "audit", when: datetime | None = None) -> bytes:
    """An RFC 5424 message with RFC 6587 octet-counting framing (``LEN SP MSG``)."""
    stamp = (when or timezone.now()).isoformat()
    host = (socket.gethostname() or "-")[:255].replace(" ", "-")
    message = f"<{SYSLOG_PRI}>1 {stamp} {host} {APP_NAME} {os.getpid()} {msgid} - {line}".encode()
    return f"{len(message)} ".encode() + message


@dataclass(frozen=True)
class Sink:
    scheme: str
    host: str
    port: int
    url: str  # for HTTP(S): where to POST
    ca_file: str = ""
    token: str = ""
    timeout: float = 10.0

    @property
    def name(self) -> str:
        """The address without credentials or query: the cursor's key, and what logs show."""
        if self.scheme.startswith("syslog"):
            return f"{self.scheme}://{self.host}:{self.port}"
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"

    def _tls(self) -> ssl.SSLContext:
        try:
            return ssl.create_default_context(cafile=self.ca_file or None)
        except (OSError, ssl.SSLError) as exc:
            raise SinkError(f"cannot load the CA file {self.ca_file} (KUBEBOARD_AUDIT_SINK_CA_FILE): {exc}") from exc

    def send(self, lines: list[str], *, msgid: str = "audit", when: list[datetime] | None = None) -> None:
        """Deliver ``lines`` or raise ``SinkError``. ``when``: each line's time for its syslog header."""
        if self.scheme.startswith("syslog"):
            stamps = when or [None] * len(lines)
            frames = (syslog_frame(li, msgid=msgid, when=w) for li, w in zip(lines, stamps, strict=True))
            self._send_syslog(b"".join(frames))
        else:
            self._post("".join(line + "\n" for line in lines).encode())

    def _send_syslog(self, payload: bytes) -> None:
        try:
            raw = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError as exc:
            raise SinkError(f"cannot connect to {self.name}: {exc.strerror or exc}") from exc
        try:
            sock = self._tls().wrap_socket(raw, server_hostname=self.host) if self.scheme == "syslog+tls" else raw
            sock.sendall(payload)
            # End of stream, then wait for the collector to close: it has read everything by then.
            # A collector that died with our bytes unread resets the connection instead.
            if isinstance(sock, ssl.SSLSocket):
                try:
                    sock = sock.unwrap()
                except ssl.SSLError:
                    # Our close_notify went after every record and the collector answered it, its
                    # own way (rsyslog may close mid-shutdown, seen as WRONG_VERSION_NUMBER or an
                    # EOF): TLS keeps order, so it read the batch. A reset is no SSLError.
                    return
            sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + self.timeout
            while sock.recv(4096):
                if time.monotonic() > deadline:
                    raise SinkError(f"{self.name} did not close the connection after the batch")
        except ssl.SSLError as exc:
            raise SinkError(f"TLS with {self.name} failed: {exc.reason or exc}") from exc
        except OSError as exc:
            if isinstance(exc, SinkError):
                raise
            raise SinkError(f"sending to {self.name} failed: {exc.strerror or exc}") from exc
        finally:
            raw.close()

    def _post(self, body: bytes) -> None:
        headers = {"Content-Type": "application/x-ndjson", "User-Agent": APP_NAME}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        handlers: list = [_NoRedirect()]
        if self.scheme == "https":
            handlers.append(urllib.request.HTTPSHandler(context=self._tls()))
        opener = urllib.request.build_opener(*handlers)
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with opener.open(request, timeout=self.timeout) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            raise SinkError(f"{self.name} answered {exc.code} {exc.reason}") from exc
        except urllib.error.URLError as exc:
            reason = exc.reason
            raise SinkError(f"cannot reach {self.name}: {getattr(reason, 'strerror', None) or reason}") from exc
        except OSError as exc:
            raise SinkError(f"sending to {self.name} failed: {exc.strerror or exc}") from exc
        if not 200 <= status < 300:
            raise SinkError(f"{self.name} answered {status}")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect would turn the POST into a GET elsewhere: it is a failure, not a delivery.
    def redirect_request(self, *args, **kwargs):
        return None


def parse_sink(address: str) -> Sink:
    """``KUBEBOARD_AUDIT_SINK``'s value as a ``Sink``, or ``SinkConfigError`` naming the problem."""
    parts = urlsplit(address)
    if parts.scheme not in SCHEMES:
        raise SinkConfigError(
            f"KUBEBOARD_AUDIT_SINK must start with {', '.join(s + '://' for s in SCHEMES)}; "
            f"got {parts.scheme + '://' if parts.scheme else 'no scheme'}"
        )
    try:
        port = parts.port
    except ValueError as exc:
        raise SinkConfigError(f"KUBEBOARD_AUDIT_SINK: the port is not a number between 0 and 65535 ({exc})") from exc
    if not parts.hostname:
        raise SinkConfigError("KUBEBOARD_AUDIT_SINK names no host")
    if parts.scheme.startswith("syslog"):
        if not port:
            raise SinkConfigError(f"KUBEBOARD_AUDIT_SINK: {parts.scheme}:// needs a port (e.g. :6514 for TLS)")
        if parts.path not in ("", "/") or parts.query:
            raise SinkConfigError("KUBEBOARD_AUDIT_SINK: a syslog sink is host:port only, without a path")
    else:
        port = port or (443 if parts.scheme == "https" else 80)
    ca_file = settings.AUDIT_SINK_CA_FILE
    if ca_file and not os.path.isfile(ca_file):
        raise SinkConfigError(f"KUBEBOARD_AUDIT_SINK_CA_FILE: {ca_file} is not a file")
    if settings.AUDIT_SINK_BATCH < 1:
        raise SinkConfigError("KUBEBOARD_AUDIT_SINK_BATCH must be at least 1")
    return Sink(
        scheme=parts.scheme,
        host=parts.hostname,
        port=port,
        url=address,
        ca_file=ca_file,
        token=settings.AUDIT_SINK_TOKEN,
        timeout=settings.AUDIT_SINK_TIMEOUT,
    )


def configured_sink() -> Sink | None:
    """The configured sink, None when streaming is off; ``SinkConfigError`` when it is wrong."""
    return parse_sink(settings.AUDIT_SINK) if settings.AUDIT_SINK else None


def send_checkpoint(data: dict) -> bool:
    """Send one exported checkpoint (``AuditCheckpoint.as_export()``) to the sink now, as a
    remote witness: a JSON line with ``kubeboard_audit_checkpoint`` (syslog MSGID
    ``checkpoint``). False when no sink is configured; ``SinkError`` when it refused."""
    sink = configured_sink()
    if sink is None:
        return False
    sink.send([json.dumps(data, sort_keys=True)], msgid="checkpoint")
    return True


# --- the shipper -----------------------------------------------------------------------------


def _cursor(sink: Sink) -> AuditStreamCursor:
    cursor, _ = AuditStreamCursor.objects.get_or_create(sink=sink.name)
    return cursor


def _head_count() -> int:
    return AuditChainHead.objects.filter(pk=1).values_list("count", flat=True).first() or 0


class Shipper:
    """Sends what the cursor has not yet covered. One instance per thread or command."""

    def __init__(self, sink: Sink, owner: str | None = None) -> None:
        self.sink = sink
        self.owner = (owner or f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}")[:120]
        self.batch = settings.AUDIT_SINK_BATCH
        self.lease = timedelta(seconds=3 * sink.timeout + LEASE_MARGIN_SECONDS)
        self._gap: tuple[int, float] | None = None  # (missing seq, first seen) while waiting for it

    def _claim(self, cursor: AuditStreamCursor) -> bool:
        now = timezone.now()
        free = Q(lease_until__isnull=True) | Q(lease_until__lt=now) | Q(lease_owner=self.owner)
        return bool(
            AuditStreamCursor.objects.filter(free, pk=cursor.pk).update(
                lease_owner=self.owner, lease_until=now + self.lease
            )
        )

    def _release(self, cursor: AuditStreamCursor) -> None:
        AuditStreamCursor.objects.filter(pk=cursor.pk, lease_owner=self.owner).update(lease_owner="", lease_until=None)

    def _deliverable(self, after: int) -> list[AuditEvent]:
        """The next batch in seq order, cut at a missing seq (waited for, then skipped)."""
        rows = list(AuditEvent.objects.filter(seq__gt=after).order_by("seq")[: self.batch])
        expected, run = after + 1, []
        for event in rows:
            if event.seq != expected:
                if not self._gap_is_old(expected, event.seq):
                    break
            run.append(event)
            expected = event.seq + 1
        return run

    def _gap_is_old(self, missing: int, found: int) -> bool:
        now = time.monotonic()
        if self._gap is None or self._gap[0] != missing:
            self._gap = (missing, now)
            return False
        if now - self._gap[1] < GAP_PATIENCE_SECONDS:
            return False
        log.error(
            "audit records %s to %s are missing from the table; the stream to %s goes on without them "
            "(run manage.py verify_audit)",
            missing,
            found - 1,
            self.sink.name,
        )
        self._gap = None
        return True

    def pending(self) -> bool:
        cursor = AuditStreamCursor.objects.filter(sink=self.sink.name).values_list("last_seq", flat=True).first()
        return cursor is None or _head_count() > cursor

    def ship_once(self) -> int:
        """Send every waiting record, batch after batch; the number the collector accepted.
        A failure is recorded on the cursor (and logged once per outage), never raised."""
        if not self.pending():
            return 0
        cursor = _cursor(self.sink)
        if not self._claim(cursor):
            return 0  # another shipper is at it
        sent = 0
        try:
            while True:
                cursor.refresh_from_db()
                records = self._deliverable(cursor.last_seq)
                if not records:
                    return sent
                try:
                    self.sink.send([record_line(e) for e in records], when=[e.created for e in records])
                except SinkError as exc:
                    self._failed(cursor, str(exc))
                    return sent
                if not self._advanced(cursor, records[-1].seq):
                    return sent  # lost the lease: the other shipper carries on
                sent += len(records)
                if len(records) < self.batch:
                    return sent
        finally:
            self._release(cursor)

    def _advanced(self, cursor: AuditStreamCursor, seq: int) -> bool:
        now = timezone.now()
        moved = AuditStreamCursor.objects.filter(pk=cursor.pk, lease_owner=self.owner, last_seq=cursor.last_seq).update(
            last_seq=seq, last_success=now, failing_since=None, last_error="", lease_until=now + self.lease
        )
        if moved and cursor.failing_since is not None:
            log.warning(
                "the audit stream to %s works again (failing since %s); delivered up to record %s",
                self.sink.name,
                cursor.failing_since.isoformat(timespec="seconds"),
                seq,
            )
        return bool(moved)

    def _failed(self, cursor: AuditStreamCursor, reason: str) -> None:
        reason = reason[:300]
        started = AuditStreamCursor.objects.filter(pk=cursor.pk, failing_since__isnull=True).update(
            failing_since=timezone.now(), last_error=reason
        )
        if started:
            waiting = max(_head_count() - cursor.last_seq, 0)
            log.warning(
                "the audit stream to %s is failing: %s. %s record(s) wait in the database and will be sent in "
                "order when it is back (this is said once per outage)",
                self.sink.name,
                reason,
                waiting,
            )
        else:
            AuditStreamCursor.objects.filter(pk=cursor.pk).update(last_error=reason)

    def run(self, stop: threading.Event, interval: float | None = None) -> None:
        """Ship until ``stop`` is set, every ``interval`` seconds (``KUBEBOARD_AUDIT_SINK_INTERVAL``)."""
        interval = settings.AUDIT_SINK_INTERVAL if interval is None else interval
        while True:
            try:
                self.ship_once()
            except Exception:  # the database went away, say: log, reconnect next round
                log.exception("the audit stream to %s: shipping failed", self.sink.name)
                connection.close()
            if stop.wait(interval):
                return


# --- what the history page shows ---------------------------------------------------------------


@dataclass(frozen=True)
class StreamStatus:
    sink: str
    waiting: int = 0
    delivered_up_to: int = 0
    last_success: datetime | None = None
    failing_since: datetime | None = None
    last_error: str = ""
    config_error: str = ""


def stream_status() -> StreamStatus | None:
    """The stream's lag for superusers; None when streaming is off."""
    try:
        sink = configured_sink()
    except SinkConfigError as exc:
        return StreamStatus(sink=settings.AUDIT_SINK.split("://")[0] + "://…", config_error=str(exc))
    if sink is None:
        return None
    cursor = AuditStreamCursor.objects.filter(sink=sink.name).first() or AuditStreamCursor(sink=sink.name)
    return StreamStatus(
        sink=sink.name,
        waiting=max(_head_count() - cursor.last_seq, 0),
        delivered_up_to=cursor.last_seq,
        last_success=cursor.last_success,
        failing_since=cursor.failing_since,
        last_error=cursor.last_error,
    )


# --- in the worker -------------------------------------------------------------------------------


@receiver(post_spawn, dispatch_uid="audit_stream_shipper")
def start_shipper(sender, proc_name, **kwargs) -> None:
    """Each spawned worker runs a shipper thread; the cursor's lease lets one send at a time."""
    from core.heartbeat import spawned_worker

    if not settings.AUDIT_SINK or not spawned_worker():
        return
    try:
        sink = configured_sink()
    except SinkConfigError as exc:
        log.error("the audit stream is off: %s", exc)
        return
    thread = threading.Thread(target=Shipper(sink).run, args=(threading.Event(),), name="audit-stream", daemon=True)
    thread.start()
