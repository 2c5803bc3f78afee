"""``--security sasl_ssl``: every node's listeners speak SASL_SSL, and so do the workload's
clients and the harness's own requests (the nemesis's DescribeQuorum and FindCoordinator).

The listener names stay PLAINTEXT and CONTROLLER (addresses and ports, hence the partition
routes, are those of a plaintext run); ``listener.security.protocol.map`` maps both to
SASL_SSL, as Kafka allows. Brokers replicate as the SCRAM-SHA-512 user ``broker``; the quorum
and the brokers' registrations log in with PLAIN as ``controller`` (listener JAAS users);
clients use SCRAM-SHA-256 as ``jepsen``. The credentials of the SCRAM users go in the metadata
log with ``kafka-storage format --add-scram``. Certificates are made at setup with the
``openssl`` CLI: a CA and one server certificate whose subjectAltNames are every node's IP.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Iterable
from pathlib import Path

from broker.client.security import ClientSecurity

MODES = ("none", "sasl_ssl")
CLIENT_USER, CLIENT_PASSWORD = "jepsen", "jepsen-secret"
BROKER_USER, BROKER_PASSWORD = "broker", "broker-secret"
CONTROLLER_USER, CONTROLLER_PASSWORD = "controller", "controller-secret"


class SecurityError(RuntimeError):
    pass


def _openssl(d: Path, *args: str) -> None:
    r = subprocess.run(["openssl", *args], cwd=d, capture_output=True, text=True, timeout=60,
                       check=False)
    if r.returncode != 0:
        raise SecurityError(f"openssl {args[0]}: {r.stderr.strip()}")


class SaslSsl:
    """Certificates, server properties, format arguments and client settings of a SASL_SSL
    cluster; ``make_certs`` before any of the paths is used."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.ca = directory / "ca.crt"
        self.server = directory / "server.pem"  # key + certificate (ssl.keystore.type=PEM)

    def make_certs(self, ips: Iterable[str]) -> None:
        if shutil.which("openssl") is None:
            raise SecurityError("--security sasl_ssl needs the openssl CLI")
        d = self.dir
        d.mkdir(parents=True, exist_ok=True)
        _openssl(d, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
                 "-out", "ca.crt", "-days", "2", "-subj", "/CN=jepsen-ca")
        _openssl(d, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out",
                 "server.csr", "-subj", "/CN=jepsen-node")
        sans = ",".join(["DNS:localhost", "IP:127.0.0.1", *(f"IP:{ip}" for ip in ips)])
        (d / "server.ext").write_text(f"subjectAltName={sans}\n"
                                      "extendedKeyUsage=serverAuth,clientAuth\n")
        _openssl(d, "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", "server.crt", "-days", "2", "-sha256", "-extfile",
                 "server.ext")
        self.server.write_text((d / "server.key").read_text() + (d / "server.crt").read_text())

    def server_props(self) -> dict[str, str]:
        return {
            "listener.security.protocol.map": "CONTROLLER:SASL_SSL,PLAINTEXT:SASL_SSL",
            "ssl.keystore.type": "PEM", "ssl.keystore.location": str(self.server),
            "ssl.truststore.type": "PEM", "ssl.truststore.location": str(self.ca),
            "sasl.enabled.mechanisms": "SCRAM-SHA-256,SCRAM-SHA-512",
            "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
            "listener.name.plaintext.scram-sha-512.sasl.jaas.config":
                "org.apache.kafka.common.security.scram.ScramLoginModule required "
                f'username="{BROKER_USER}" password="{BROKER_PASSWORD}";',
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config":
                "org.apache.kafka.common.security.plain.PlainLoginModule required "
                f'username="{CONTROLLER_USER}" password="{CONTROLLER_PASSWORD}" '
                f'user_{CONTROLLER_USER}="{CONTROLLER_PASSWORD}";',
        }

    def format_args(self) -> list[str]:
        return ["--add-scram", f"SCRAM-SHA-256=[name={CLIENT_USER},password={CLIENT_PASSWORD}]",
                "--add-scram", f"SCRAM-SHA-512=[name={BROKER_USER},password={BROKER_PASSWORD}]"]

    def client_conf(self) -> dict[str, str]:
        """confluent-kafka (librdkafka) settings."""
        return {"security.protocol": "SASL_SSL", "ssl.ca.location": str(self.ca),
                "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": CLIENT_USER,
                "sasl.password": CLIENT_PASSWORD}

    def broker_client(self) -> ClientSecurity:
        """The harness's own requests to a broker listener."""
        return ClientSecurity("SASL_SSL", ssl.create_default_context(cafile=str(self.ca)),
                              "SCRAM-SHA-256", CLIENT_USER, CLIENT_PASSWORD)

    def controller_client(self) -> ClientSecurity:
        """The harness's own requests to a controller listener (DescribeQuorum)."""
        return ClientSecurity("SASL_SSL", ssl.create_default_context(cafile=str(self.ca)),
                              "PLAIN", CONTROLLER_USER, CONTROLLER_PASSWORD)
