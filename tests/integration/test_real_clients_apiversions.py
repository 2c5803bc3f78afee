"""Unmodified Kafka clients bootstrap against our server: ApiVersions, then Metadata.

The server runs in a subprocess (``ApiDispatcher``: an empty cluster whose only broker is node
1) with ``broker.network.server.wire`` at DEBUG, so it logs every ApiVersions request as hex. Each test
checks that the client succeeded and that the ApiVersions requests it sent decode with our
schemas to what that client is known to send (the same bytes are kept as fixed vectors in
``tests/unit/test_client_vectors.py``). Clients that are not installed are skipped.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from broker.protocol.api_keys import request_header_version
from broker.protocol.framing import parse_request_header
from broker.protocol.messages import api_versions
from tests.helpers_kafkajs import run_driver, why_not_installed

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 30

SERVER_SCRIPT = """
import asyncio, logging, sys
from broker.network.dispatch import ApiDispatcher
from broker.network.eventloop import run
from broker.network.server import KafkaServer
from broker.network.context import ListenerSpec

logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                    format="%(asctime)s %(name)s %(levelname)s %(message)s")
logging.getLogger("broker.network.server.wire").setLevel(logging.DEBUG)

async def main():
    dispatcher = ApiDispatcher(node_id=1, cluster_id="real-clients-cluster")
    server = KafkaServer([ListenerSpec("PLAINTEXT", "127.0.0.1", 0)], dispatcher.handle,
                         advertised=dispatcher.advertised)
    await server.start()
    print(server.port("PLAINTEXT"), flush=True)
    await asyncio.Event().wait()

run(main())
"""

_WIRE_RE = re.compile(r"ApiVersions v(-?\d+) request from (\S+) on \S+: ([0-9a-f]+)")


@dataclass
class ServerProcess:
    proc: subprocess.Popen[str]
    port: int
    log_path: Path

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def api_versions_since(self, offset: int) -> list[tuple[int, bytes]]:
        """(version, raw request frame) of each ApiVersions request logged after ``offset``."""
        text = self.log_path.read_bytes()[offset:].decode()
        return [(int(m[1]), bytes.fromhex(m[3])) for m in _WIRE_RE.finditer(text)]

    def warnings(self) -> list[str]:
        return [line for line in self.log_path.read_text().splitlines()
                if " WARNING " in line or " ERROR " in line]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log_path = tmp_path_factory.mktemp("real-clients") / "server.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-c", SERVER_SCRIPT], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip().isdigit(), f"server did not start: {log_path.read_text()}"
        yield ServerProcess(proc, int(line), log_path)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode is not None


def decode_api_versions(frame: bytes) -> tuple[Any, Any]:
    """Header and body of a recorded request, as our server parses them."""
    api_key, version = int.from_bytes(frame[:2], "big"), int.from_bytes(frame[2:4], "big")
    assert api_key == 18
    header, pos = parse_request_header(frame, request_header_version(api_key, version))
    body, end = api_versions.REQUEST.decode(frame, version, pos)
    assert end == len(frame)
    return header, body


def check_recorded(server: ServerProcess, offset: int, versions: list[int]) -> list[Any]:
    recorded = server.api_versions_since(offset)
    assert [v for v, _ in recorded] == versions, recorded
    for _, frame in recorded:
        print(f"recorded ApiVersions request: {frame.hex()}")
    assert not server.warnings(), server.warnings()
    return [decode_api_versions(frame) for _, frame in recorded]


def test_kafka_python_admin_client(server: ServerProcess) -> None:
    kafka = pytest.importorskip("kafka")
    from kafka import KafkaAdminClient  # type: ignore[import-untyped]

    start = server.log_size()
    admin = KafkaAdminClient(bootstrap_servers=server.bootstrap, request_timeout_ms=10000)
    try:
        assert admin.list_topics() == []
        assert {int(k): v for k, v in admin.api_versions().items()} == {3: (0, 13), 18: (0, 4)}
    finally:
        admin.close()
    # kafka-python asks with v4, which is served (the error-35 answer to a version above ours
    # is checked in test_server_framing.py).
    versions = [v for v, _ in server.api_versions_since(start)]
    assert versions and set(versions) == {4}, versions
    decoded = check_recorded(server, start, versions)
    for header, body in decoded:
        assert header.client_id.startswith("kafka-python")
        assert body.client_software_name == "kafka-python"
        assert body.client_software_version == kafka.__version__


def test_aiokafka_client_bootstrap(server: ServerProcess) -> None:
    aiokafka = pytest.importorskip("aiokafka")
    from aiokafka.client import AIOKafkaClient  # type: ignore[import-untyped]

    async def main() -> tuple[set[Any], dict[int, tuple[int, int]]]:
        client = AIOKafkaClient(bootstrap_servers=server.bootstrap, request_timeout_ms=10000)
        try:
            await asyncio.wait_for(client.bootstrap(), TIMEOUT_S)
            brokers = {(b.nodeId, b.host, b.port) for b in client.cluster.brokers()}
            conn = await client._get_conn(1)  # aiokafka keeps the negotiated table there
            return brokers, dict(getattr(conn, "_versions", {}))
        finally:
            await client.close()

    start = server.log_size()
    brokers, versions = asyncio.run(main())
    assert brokers == {(1, "127.0.0.1", server.port)}
    if versions:
        assert versions == {3: (0, 13), 18: (0, 4)}
    # One connection for bootstrap, one to broker 1: aiokafka always sends v0.
    decoded = check_recorded(server, start, [0, 0])
    for header, _body in decoded:
        assert header.client_id == f"aiokafka-{aiokafka.__version__}"


def test_confluent_kafka_admin_list_topics(server: ServerProcess) -> None:
    confluent_kafka = pytest.importorskip("confluent_kafka")
    from confluent_kafka.admin import AdminClient

    start = server.log_size()
    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    md = admin.list_topics(timeout=TIMEOUT_S)
    assert md.cluster_id == "real-clients-cluster"
    assert md.controller_id == 1
    assert {(b.id, b.host, b.port) for b in md.brokers.values()} == {(1, "127.0.0.1", server.port)}
    assert md.topics == {}
    time.sleep(0.2)  # let the log catch up
    decoded = server.api_versions_since(start)
    assert decoded and {v for v, _ in decoded} == {3}
    lib = confluent_kafka.libversion()[0]
    for header, body in check_recorded(server, start, [v for v, _ in decoded]):
        assert header.client_id == "rdkafka"
        assert body.client_software_name == "confluent-kafka-python"
        assert body.client_software_version.endswith(f"-rdkafka-{lib}")


def test_kcat_list_metadata(server: ServerProcess) -> None:
    kcat = shutil.which("kcat") or shutil.which("kafkacat")
    if kcat is None:
        pytest.skip("kcat is not installed (apt-get install kcat)")
    start = server.log_size()
    out = subprocess.run([kcat, "-b", server.bootstrap, "-L", "-m", "10"], check=False,
                         capture_output=True,
                         text=True, timeout=TIMEOUT_S)
    assert out.returncode == 0, out.stderr
    assert "1 brokers:" in out.stdout
    assert f"broker 1 at 127.0.0.1:{server.port}" in out.stdout
    assert "0 topics:" in out.stdout
    time.sleep(0.2)
    decoded = server.api_versions_since(start)
    assert decoded and {v for v, _ in decoded} == {3}
    for header, body in check_recorded(server, start, [v for v, _ in decoded]):
        assert header.client_id == "rdkafka"
        assert body.client_software_name == "librdkafka"
        assert re.fullmatch(r"\d+\.\d+\.\d+", body.client_software_version)


def test_kafkajs_admin_describe_cluster(server: ServerProcess) -> None:
    missing = why_not_installed()
    if missing is not None:
        pytest.skip(missing)
    start = server.log_size()
    (cluster,) = [e for e in run_driver(server.bootstrap, "bootstrap") if e["event"] == "cluster"]
    assert cluster["cluster"] == {
        "brokers": [{"nodeId": 1, "host": "127.0.0.1", "port": server.port}],
        "controller": 1, "clusterId": "real-clients-cluster"}
    assert cluster["topics"] == []
    # kafkajs knows ApiVersions 0-2 and asks with v2, on each connection (docs/clients.md).
    decoded = server.api_versions_since(start)
    assert decoded and {v for v, _ in decoded} == {2}
    for header, _body in check_recorded(server, start, [v for v, _ in decoded]):
        assert header.client_id == "pykraft-kafkajs"
