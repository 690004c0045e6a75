"""The daphne web process: request bodies are bounded, and Twisted does not parse them itself.

Twisted's ``Request`` parses the body of every form POST (URL-encoded or multipart) into
``request.args`` before daphne hands the request to Django, and its multipart parser (the
``email`` package) holds the whole body in memory many times over: one 6 MiB upload raised the
web process's memory by 72 MiB. Daphne never reads ``request.args`` (Django parses the body
itself and streams uploads to disk), so Kubeboard switches that parse off with Twisted's own
option, ``parsePOSTFormSubmission``.

Daphne also hands the whole body to the application at once, in memory, however large it is.
A body larger than ``settings.MAX_REQUEST_BYTES`` is therefore answered with 413 by the server
itself: Twisted keeps a large body in a temporary file, and what is beyond the limit is not
even written there.
"""

from __future__ import annotations

import sys
import time


def install() -> None:
    """Make daphne's requests bounded in size and unparsed by Twisted (in a daphne process only)."""
    if "daphne.http_protocol" not in sys.modules:
        return  # not the web server (a worker, a command, the tests' own process)
    from daphne import http_protocol

    if getattr(http_protocol.WebRequest, "parses_forms", True) is False:
        return

    from django.conf import settings

    limit = settings.MAX_REQUEST_BYTES

    class WebRequest(http_protocol.WebRequest):
        parses_forms = False

        def __init__(self, *args, **kwargs) -> None:
            kwargs.setdefault("parsePOSTFormSubmission", False)
            super().__init__(*args, **kwargs)
            self.body_bytes = 0

        def handleContentChunk(self, data: bytes) -> None:  # noqa: N802 (Twisted's name)
            self.body_bytes += len(data)
            if self.body_bytes <= limit:
                super().handleContentChunk(data)

        def process(self):
            if self.body_bytes <= limit:
                return super().process()
            self.request_start = time.time()
            message = (
                f"Refused: the request body has {self.body_bytes} bytes; this server takes at most {limit} "
                "(KUBEBOARD_MAX_REQUEST_BYTES).\n"
            ).encode()
            self.handle_reply(
                {
                    "type": "http.response.start",
                    "status": 413,
                    "headers": [(b"Content-Type", b"text/plain; charset=utf-8")],
                }
            )
            self.handle_reply({"type": "http.response.body", "body": message})
            return None

    # daphne's HTTPFactory reads this module global for each connection it accepts.
    http_protocol.WebRequest = WebRequest
