"""A real rsyslog collector for the SIEM stream's tests: imtcp on a free loopback port (plain or
TLS with the ossl driver), every message's text written as one line to a file. No systemd: run
in the foreground with its own configuration, work directory and pid file; restartable on the
same port so a test can stop the collector and bring it back."""

from __future__ import annotations

import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import cost
from tests.support.services import ServiceUnavailable, free_port, wait_for_port

RSYSLOGD = "/usr/sbin/rsyslogd"
MODULES = Path("/usr/lib/x86_64-linux-gnu/rsyslog")


def tls_available() -> bool:
    return (MODULES / "lmnsd_ossl.so").exists()


@dataclass
class Rsyslog:
    directory: Path
    port: int
    tls: tuple[Path, Path, Path] | None = None  # (CA, server certificate, server key)
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def received(self) -> Path:
        return self.directory / "received.log"

    @property
    def config(self) -> Path:
        return self.directory / "rsyslog.conf"

    def lines(self) -> list[str]:
        if not self.received.exists():
            return []
        return [line for line in self.received.read_text().splitlines() if line.strip()]

    def write_config(self) -> None:
        work = self.directory / "work"
        work.mkdir(exist_ok=True)
        if self.tls:
            ca, cert, key = self.tls
            driver = (
                f'global(defaultNetstreamDriverCAFile="{ca}" defaultNetstreamDriverCertFile="{cert}" '
                f'defaultNetstreamDriverKeyFile="{key}")\n'
                'module(load="imtcp" streamDriver.name="ossl" streamDriver.mode="1" streamDriver.authMode="anon")\n'
            )
        else:
            driver = 'module(load="imtcp")\n'
        self.config.write_text(
            f'global(workDirectory="{work}" maxMessageSize="256k")\n'
            + driver
            + f'input(type="imtcp" address="127.0.0.1" port="{self.port}")\n'
            # Just the message text, one per line: the JSON the shipper sent.
            + 'template(name="jsononly" type="string" string="%msg%\\n")\n'
            + f'action(type="omfile" file="{self.received}" template="jsononly" asyncWriting="off" flushOnTXEnd="on")\n'
        )

    def start(self) -> None:
        self.write_config()
        log = open(self.directory / "rsyslogd.out", "ab")  # noqa: SIM115 (the process keeps it)
        self.process = subprocess.Popen(
            [RSYSLOGD, "-n", "-f", str(self.config), "-i", str(self.directory / "rsyslogd.pid")],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_port(self.port, timeout=20)
        except Exception:
            self.stop()
            raise

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        # Nothing listens any more: a sender's connect is refused until start().
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (self.directory / "rsyslogd.pid").exists():
            time.sleep(0.05)

    def output(self) -> str:
        path = self.directory / "rsyslogd.out"
        return path.read_text(errors="replace") if path.exists() else ""


def start_rsyslog(directory: Path, *, tls: tuple[Path, Path, Path] | None = None) -> Rsyslog:
    cost.require("services", "starts rsyslogd")
    if not Path(RSYSLOGD).exists():
        raise ServiceUnavailable("rsyslogd not found: apt-get install rsyslog (rsyslog-openssl for TLS)")
    directory.mkdir(parents=True, exist_ok=True)
    server = Rsyslog(directory=directory, port=free_port(), tls=tls)
    server.start()
    return server


def make_tls_files(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path, Path]:
    """A fresh CA and a server certificate for ``host`` (an IP address), made with ``cryptography``:
    (CA certificate, server certificate, server key), PEM files in ``directory``."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubeboard test collector CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    paths = (directory / "ca.pem", directory / "server.pem", directory / "server.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    paths[2].chmod(0o600)
    return paths
