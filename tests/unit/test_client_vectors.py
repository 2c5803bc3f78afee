"""Byte-exact ApiVersions requests sent by real clients, recorded from our server's wire log
(``tests/integration/test_real_clients_apiversions.py`` run with ``-s`` prints them).

Each vector is a request frame without its size prefix. They must parse with our header rules
(client_id a non-compact string even in header v2) and our ApiVersions schema, and re-encode to
the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from broker.protocol.api_keys import request_header_version
from broker.protocol.framing import encode_request, parse_request_header, peek_request
from broker.protocol.messages import api_versions


@dataclass(frozen=True)
class Vector:
    client: str
    hex: str
    version: int
    correlation_id: int
    client_id: str
    software_name: str  # "" before v3, where the field does not exist
    software_version: str


VECTORS = [
    # kafka-python 3.0.12: v4 first, then v3 after our error 35 (same connection, next id)
    Vector("kafka-python 3.0.12",
           "001200040000000100136b61666b612d707974686f6e2d332e302e3132000d6b61666b612d707974686f"
           "6e07332e302e313200",
           4, 1, "kafka-python-3.0.12", "kafka-python", "3.0.12"),
    Vector("kafka-python 3.0.12 (retry)",
           "001200030000000200136b61666b612d707974686f6e2d332e302e3132000d6b61666b612d707974686f"
           "6e07332e302e313200",
           3, 2, "kafka-python-3.0.12", "kafka-python", "3.0.12"),
    # aiokafka 0.14.0: always v0, header v1, empty body
    Vector("aiokafka 0.14.0",
           "0012000000000001000f61696f6b61666b612d302e31342e30",
           0, 1, "aiokafka-0.14.0", "", ""),
    # confluent-kafka 2.16.1 (librdkafka 2.16.0)
    Vector("confluent-kafka 2.16.1",
           "0012000300000001000772646b61666b610017636f6e666c75656e742d6b61666b612d707974686f6e16"
           "322e31362e312d72646b61666b612d322e31362e3000",
           3, 1, "rdkafka", "confluent-kafka-python", "2.16.1-rdkafka-2.16.0"),
    # kcat 1.7.1 (Debian, librdkafka 2.0.2)
    Vector("kcat 1.7.1",
           "0012000300000001000772646b61666b61000b6c696272646b61666b6106322e302e3200",
           3, 1, "rdkafka", "librdkafka", "2.0.2"),
    # kafkajs 2.2.4 (node): v2, correlation id 0, the client id it was given
    Vector("kafkajs 2.2.4",
           "0012000200000000000f70796b726166742d6b61666b616a73",
           2, 0, "pykraft-kafkajs", "", ""),
]


@pytest.mark.parametrize("vec", VECTORS, ids=[v.client for v in VECTORS])
def test_vector_decodes(vec: Vector) -> None:
    frame = bytes.fromhex(vec.hex)
    api_key, version, correlation_id = peek_request(frame)
    assert (api_key, version, correlation_id) == (18, vec.version, vec.correlation_id)
    header_version = request_header_version(api_key, version)
    assert header_version == (2 if vec.version >= 3 else 1)
    header, pos = parse_request_header(frame, header_version)
    assert header.client_id == vec.client_id
    assert header.tagged_fields == ()
    body, end = api_versions.REQUEST.decode(frame, version, pos)
    assert end == len(frame)
    assert body.client_software_name == vec.software_name
    assert body.client_software_version == vec.software_version


@pytest.mark.parametrize("vec", VECTORS, ids=[v.client for v in VECTORS])
def test_vector_reencodes_byte_exact(vec: Vector) -> None:
    frame = bytes.fromhex(vec.hex)
    header, pos = parse_request_header(frame, request_header_version(18, vec.version))
    body, _ = api_versions.REQUEST.decode(frame, vec.version, pos)
    again = encode_request(api_versions.REQUEST, body, vec.version, header.correlation_id,
                           header.client_id, header.header_version)
    assert again[4:] == frame
    assert int.from_bytes(again[:4], "big") == len(frame)
