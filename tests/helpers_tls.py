"""Certificates for the TLS tests, made with the ``openssl`` CLI in a temporary directory: a CA,
a server certificate for 127.0.0.1 and localhost, and client certificates with a chosen subject.
Each ``*.pem`` key file holds the private key followed by the certificate (what
``ssl.keystore.location`` with ``ssl.keystore.type=PEM`` reads)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Certs", "make_certs"]


@dataclass(frozen=True)
class Certs:
    dir: Path
    ca: Path  # the CA certificate (trust store)
    server: Path  # server key + certificate
    server_cert: Path
    server_key: Path

    def client(self, name: str) -> tuple[Path, Path]:
        """(certificate, key) of the client certificate made for ``name``."""
        return self.dir / f"{name}.crt", self.dir / f"{name}.key"

    def keystore(self, name: str) -> Path:
        return self.dir / f"{name}.pem"


def _run(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _issue(d: Path, name: str, subject: str, ext: str) -> None:
    _run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
         f"{name}.csr", "-subj", subject, cwd=d)
    (d / f"{name}.ext").write_text(ext)
    _run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-sha256", "-extfile",
         f"{name}.ext", cwd=d)
    (d / f"{name}.pem").write_text((d / f"{name}.key").read_text()
                                   + (d / f"{name}.crt").read_text())


def make_certs(d: Path, clients: dict[str, str] | None = None) -> Certs:
    """A CA, a server certificate and one client certificate per ``clients`` entry
    (name -> subject such as ``/O=Acme/OU=eng/CN=alice``)."""
    d.mkdir(parents=True, exist_ok=True)
    _run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
         "ca.crt", "-days", "2", "-subj", "/CN=test-ca", cwd=d)
    _issue(d, "server", "/CN=localhost",
           "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n")
    for name, subject in (clients or {}).items():
        _issue(d, name, subject, "extendedKeyUsage=clientAuth\n")
    return Certs(d, d / "ca.crt", d / "server.pem", d / "server.crt", d / "server.key")
