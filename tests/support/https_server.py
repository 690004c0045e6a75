"""A real HTTPS server on 127.0.0.1 for download tests (a custom pod network manifest's URL).

Its certificate is issued for 127.0.0.1 by a CA made here; the test points OpenSSL's defaults at
that CA with ``SSL_CERT_FILE`` (as an operator does for a private CA), so the download verifies
the chain and the address as it would in production. Loopback only: the connection guard lets
it through, and nothing leaves the machine.
"""

from __future__ import annotations

import http.server
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from kubeadm import pki


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    drip_seconds: float = 0.0  # pause before each 1 KiB piece of the body


@dataclass
class Served:
    base: str
    ca_file: Path
    routes: dict[str, Route]
    requests: list[str]

    def url(self, path: str) -> str:
        return self.base + path


@contextmanager
def https_server(tmp_path: Path, routes: dict[str, Route] | None = None) -> Iterator[Served]:
    ca = pki.generate_ca("kubeboard-test-download-ca")
    leaf = pki.issue_certificate(ca, "127.0.0.1", usages=(pki.SERVER_AUTH,), ip_addresses=["127.0.0.1"])
    ca_file = tmp_path / "download-ca.pem"
    ca_file.write_bytes(ca.cert_pem())
    chain = tmp_path / "download-server.pem"
    chain.write_bytes(leaf.cert_pem() + pki.private_key_pem(leaf.key))
    routes = dict(routes or {})
    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            requests.append(self.path)
            route = routes.get(self.path, Route(b"not found\n", 404))
            self.send_response(route.status)
            for name, value in route.headers.items():
                self.send_header(name, value)
            if "Content-Length" not in route.headers and not route.drip_seconds:
                self.send_header("Content-Length", str(len(route.body)))
            self.end_headers()
            try:
                if route.drip_seconds:
                    for start in range(0, len(route.body), 1024):
                        time.sleep(route.drip_seconds)
                        self.wfile.write(route.body[start : start + 1024])
                        self.wfile.flush()
                else:
                    self.wfile.write(route.body)
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                pass  # the client gave up (a bound was met): what the test wants

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, name="test-https", daemon=True)
    thread.start()
    try:
        yield Served(f"https://127.0.0.1:{server.server_address[1]}", ca_file, routes, requests)
    finally:
        server.shutdown()
        server.server_close()
