"""The daphne web process: Twisted must not parse request bodies itself.

Twisted's ``Request`` parses the body of every form POST (URL-encoded or multipart) into
``request.args`` before daphne hands the request to Django, and its multipart parser (the
``email`` package) holds the whole body in memory many times over: one 6 MiB upload raised the
web process's memory by 72 MiB. Daphne never reads ``request.args`` (Django parses the body
itself and streams uploads to disk), so Kubeboard switches that parse off with Twisted's own
option, ``parsePOSTFormSubmission``.
"""

from __future__ import annotations

import sys


def install() -> None:
    """Make daphne build its requests without Twisted's form parsing (in a daphne process only)."""
    if "daphne.http_protocol" not in sys.modules:
        return  # not the web server (a worker, a command, the tests' own process)
    from daphne import http_protocol

    if getattr(http_protocol.WebRequest, "parses_forms", True) is False:
        return

    class WebRequest(http_protocol.WebRequest):
        parses_forms = False

        def __init__(self, *args, **kwargs) -> None:
            kwargs.setdefault("parsePOSTFormSubmission", False)
            super().__init__(*args, **kwargs)

    # daphne's HTTPFactory reads this module global for each connection it accepts.
    http_protocol.WebRequest = WebRequest
