"""Pure logic of the CLI tools: partitioner, range assignor, line parsing, output formats, server-stop command line parsing, dump-log on crafted files."""

from __future__ import annotations

import argparse
import struct
from pathlib import Path

import pytest

from storage.compression import CompressionType
from storage.records import SimpleRecord, build_batch
from tools import dump_log
from tools.cli_client import CliError, parse_properties_args
from tools.cli_produce import murmur2
from tools.configs import parse_add_config
from tools.console_consumer import Formatter
from tools.console_producer import ParsedLine, parse_line, producer_settings, reader_settings
from tools.group_client import range_assign
from tools.perf_test import Stats, percentiles
from tools.server_stop import parse_server_cmdline

kafka_partitioner = pytest.importorskip("kafka.partitioner")


@pytest.mark.parametrize("key", [b"", b"a", b"ab", b"abc", b"abcd", b"key1", b"\xff\x00\x80" * 7,
                                 "ünïcode".encode()])
def test_murmur2_matches_kafka_python(key: bytes) -> None:
    # kafka-python returns the same 32 bits unsigned.
    assert murmur2(key) & 0xFFFFFFFF == kafka_partitioner.murmur2(key) & 0xFFFFFFFF


def test_murmur2_java_vectors() -> None:
    # From Kafka's UtilsTest.testMurmur2.
    assert murmur2(b"21") == -973932308
    assert murmur2(b"foobar") == -790332482
    assert murmur2(b"a-little-bit-long-string") == -985981536
    assert murmur2(b"a-little-bit-longer-string") == -1486304829
    assert murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") == -58897971
    assert murmur2(b"abc") == 479470107


def test_range_assign_like_kafka() -> None:
    # Kafka's RangeAssignor: members sorted, the first n % m get one more.
    plan = range_assign({"c2": ["t", "u"], "c1": ["t", "u"], "c3": ["t"]}, {"t": 7, "u": 3})
    assert plan["c1"] == {"t": [0, 1, 2], "u": [0, 1]}
    assert plan["c2"] == {"t": [3, 4], "u": [2]}
    assert plan["c3"] == {"t": [5, 6]}
    assert range_assign({"a": ["t"], "b": ["t"]}, {"t": 1}) == {"a": {"t": [0]}, "b": {}}
    assert range_assign({"a": ["missing"]}, {}) == {"a": {}}


def test_parse_line_keys_headers_and_errors() -> None:
    s = reader_settings({"parse.key": "true", "key.separator": ":"})
    assert parse_line("k:v:w", s, 1) == ParsedLine(b"k", b"v:w", ())
    with pytest.raises(CliError, match="No key separator found on line number 3"):
        parse_line("novalue", s, 3)
    lenient = reader_settings({"parse.key": "true", "ignore.error": "true"})
    assert parse_line("just-a-value", lenient, 1) == ParsedLine(None, b"just-a-value", ())
    h = reader_settings({"parse.headers": "true", "parse.key": "true", "null.marker": "NULL"})
    assert parse_line("h1:a,h2\tk\tNULL", h, 1) == ParsedLine(b"k", None,
                                                             (("h1", b"a"), ("h2", None)))
    assert parse_line("plain", reader_settings({}), 1) == ParsedLine(None, b"plain", ())


def test_producer_settings_validate() -> None:
    s = producer_settings({"acks": "all", "linger.ms": "5", "compression.type": "zstd"})
    assert (s.acks, s.linger_ms, s.compression) == (-1, 5.0, CompressionType.ZSTD)
    with pytest.raises(CliError, match="acks"):
        producer_settings({"acks": "2"})
    with pytest.raises(CliError, match="compression.type"):
        producer_settings({"compression.type": "brotli"})
    with pytest.raises(CliError, match="batch.size"):
        producer_settings({"batch.size": "-1"})


def test_properties_args() -> None:
    assert parse_properties_args(["a=1,b=2", "c=x,y"], "--config") == {"a": "1", "b": "2",
                                                                      "c": "x,y"}
    with pytest.raises(CliError, match="key=value"):
        parse_properties_args(["novalue"], "--config")
    assert parse_add_config(["retention.ms=1,cleanup.policy=[compact,delete]"]) == {
        "retention.ms": "1", "cleanup.policy": "compact,delete"}
    with pytest.raises(CliError):
        parse_add_config(["a=[1,2"])


def test_formatter_matches_kafka_order() -> None:
    from storage.records import decode_batch

    batch = build_batch([SimpleRecord(b"v", b"k", (("h", b"1"),), timestamp=5)], base_offset=7)
    header, records = decode_batch(batch)
    fmt = Formatter.from_properties({"print.timestamp": "true", "print.key": "true",
                                     "print.offset": "true", "print.partition": "true",
                                     "print.headers": "true", "key.separator": ":"})
    assert fmt.format(3, header, records[0]) == b"CreateTime:5:Partition:3:Offset:7:h:1:k:v\n"
    plain = Formatter.from_properties({"print.key": "true"})
    nullkey = decode_batch(build_batch([SimpleRecord(None, None)]))
    assert plain.format(0, nullkey[0], nullkey[1][0]) == b"null\tnull\n"


def test_percentiles_and_stats_lines() -> None:
    assert percentiles(list(range(100)), (0.5, 0.99)) == [50, 99]
    assert percentiles([], (0.5,)) == [0]
    st = Stats(10)
    st.start = st.window_start = 0.0
    for _ in range(10):
        st.record(2.0, 100)
    assert st.window_line(1.0) == ("10 records sent, 10.0 records/sec (0.00 MB/sec), "
                                   "2.0 ms avg latency, 2.0 ms max latency.")
    assert st.summary_line(2.0) == (
        "10 records sent, 5.000000 records/sec (0.00 MB/sec), 2.00 ms avg latency, "
        "2.00 ms max latency, 2 ms 50th, 2 ms 95th, 2 ms 99th, 2 ms 99.9th.")


def test_server_cmdline_parsing(tmp_path: Path) -> None:
    assert parse_server_cmdline(["python", "-m", "tools.server_start", "c.properties",
                                 "--override", "node.id=7"], tmp_path) == (
        tmp_path / "c.properties", {"node.id": "7"})
    assert parse_server_cmdline(["/x/.venv/bin/python", "/x/.venv/bin/kafka-server-start",
                                 "/abs/s.properties"], tmp_path) == (Path("/abs/s.properties"), {})
    assert parse_server_cmdline(["python", "-m", "tools.server_stop"], tmp_path) is None
    assert parse_server_cmdline(["vim", "tools.server_start"], tmp_path) is None


def _dump_args(**kw: object) -> argparse.Namespace:
    args = dump_log.build_parser().parse_args(["--files", "x"])
    for k, v in kw.items():
        setattr(args, k, v)
    return args


def test_dump_log_batches_records_and_crc(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                          ) -> None:
    seg = tmp_path / "00000000000000000010.log"
    b1 = build_batch([SimpleRecord(b"hello", b"k1", timestamp=1000),
                      SimpleRecord(b"world", None, timestamp=1001)], base_offset=10,
                     partition_leader_epoch=3)
    b2 = build_batch([SimpleRecord(b"x" * 50, timestamp=1002)], base_offset=12,
                     compression=CompressionType.GZIP, producer_id=9, producer_epoch=0,
                     base_sequence=4)
    seg.write_bytes(b1 + b2 + b"\x00\x01")
    assert dump_log.main(["--files", str(seg), "--print-data-log"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"Dumping {seg}"
    assert out[1] == "Log starting offset: 10"
    assert out[2].startswith("baseOffset: 10 lastOffset: 11 count: 2 baseSequence: -1 "
                             "lastSequence: -1 producerId: -1 producerEpoch: -1 "
                             "partitionLeaderEpoch: 3 isTransactional: false isControl: false "
                             "deleteHorizonMs: OptionalLong.empty position: 0 CreateTime: 1001 "
                             f"size: {len(b1)} magic: 2 compresscodec: none crc: ")
    assert out[2].endswith(" isvalid: true")
    assert out[3] == ("| offset: 10 CreateTime: 1000 keySize: 2 valueSize: 5 sequence: -1 "
                      "headerKeys: [] key: k1 payload: hello")
    assert out[4] == ("| offset: 11 CreateTime: 1001 keySize: -1 valueSize: 5 sequence: -1 "
                      "headerKeys: [] payload: world")
    assert f"position: {len(b1)} " in out[5] and "compresscodec: gzip" in out[5]
    assert "baseSequence: 4 lastSequence: 4 producerId: 9" in out[5]
    assert out[6].startswith("| offset: 12 CreateTime: 1002 keySize: -1 valueSize: 50 "
                             "sequence: 4")
    assert out[-1] == f"Found 2 invalid bytes at the end of {seg.name}"

    # A flipped byte in the records: the stored CRC no longer matches.
    bad = bytearray(b1)
    bad[-1] ^= 0xFF
    seg.write_bytes(bytes(bad))
    assert dump_log.main(["--files", str(seg)]) == 1
    assert "isvalid: false" in capsys.readouterr().out


def test_dump_index_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    b1 = build_batch([SimpleRecord(b"a"), SimpleRecord(b"b")], base_offset=100)
    b2 = build_batch([SimpleRecord(b"c")], base_offset=102)
    (tmp_path / "00000000000000000100.log").write_bytes(b1 + b2)
    index = tmp_path / "00000000000000000100.index"
    index.write_bytes(struct.pack(">ii", 1, 0) + struct.pack(">ii", 2, len(b1)))
    tindex = tmp_path / "00000000000000000100.timeindex"
    tindex.write_bytes(struct.pack(">qi", 5000, 1) + struct.pack(">qi", 6000, 2))
    assert dump_log.main(["--files", f"{index},{tindex}"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"Dumping {index}", "offset: 101 position: 0",
                   f"offset: 102 position: {len(b1)}", f"Dumping {tindex}",
                   "timestamp: 5000 offset: 101", "timestamp: 6000 offset: 102"]
    index.write_bytes(struct.pack(">ii", 0, 0))  # names offset 100, but that batch ends at 101
    assert dump_log.main(["--files", str(index)]) == 1
    err = capsys.readouterr().err
    assert "Mismatches in" in err and "Index offset: 100, log offset: 101" in err
    assert dump_log.main(["--files", str(tmp_path / "missing.log")]) == 1
