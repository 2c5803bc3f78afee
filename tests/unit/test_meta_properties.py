"""meta.properties, Kafka UUIDs, dynamic voters and the bootstrap file."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage.errors import MetaPropertiesError
from storage.meta_properties import (
    METADATA_TOPIC_ID,
    ZERO_UUID,
    BootstrapMetadata,
    DynamicVoter,
    MetaProperties,
    format_uuid,
    is_reserved_directory_id,
    parse_dynamic_voters,
    parse_uuid,
    random_directory_id,
    random_uuid,
    read_bootstrap,
    read_meta_properties,
    verify_log_dirs,
    write_bootstrap,
    write_meta_properties,
)
from storage.properties import load_properties

_B64URL = re.compile(r"[A-Za-z0-9_-]{22}")


# --- UUIDs ---------------------------------------------------------------------------------


def test_random_uuid_format() -> None:
    seen = set()
    for _ in range(2000):
        u = random_uuid()
        assert _B64URL.fullmatch(u), u
        assert not u.startswith("-")
        assert u not in (ZERO_UUID, METADATA_TOPIC_ID)
        raw = base64.urlsafe_b64decode(u + "==")
        assert len(raw) == 16
        assert parse_uuid(u) == raw
        assert raw[6] >> 4 == 4  # a version-4 UUID, like java.util.UUID.randomUUID
        seen.add(u)
    assert len(seen) == 2000


def test_reserved_uuids_are_the_kafka_ones() -> None:
    assert parse_uuid(ZERO_UUID) == bytes(16)
    assert parse_uuid(METADATA_TOPIC_ID) == bytes(15) + b"\x01"
    assert is_reserved_directory_id(ZERO_UUID)
    assert is_reserved_directory_id(format_uuid(bytes(15) + b"\x63"))  # 99
    assert not is_reserved_directory_id(format_uuid(bytes(15) + b"\x64"))  # 100
    assert not is_reserved_directory_id(random_directory_id())


def test_random_uuid_skips_reserved_and_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    import uuid as uuid_module

    dash = base64.urlsafe_b64decode("-" + "A" * 21 + "==")
    values = iter([bytes(16), bytes(15) + b"\x01", dash, b"\x42" * 16])

    class Fake:
        def __init__(self, raw: bytes) -> None:
            self.bytes = raw

    monkeypatch.setattr(uuid_module, "uuid4", lambda: Fake(next(values)))
    assert random_uuid() == format_uuid(b"\x42" * 16)


def test_parse_uuid_accepts_padding() -> None:
    u = random_uuid()
    assert parse_uuid(u + "==") == parse_uuid(u)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "abc",
        "AAAAAAAAAAAAAAAAAAAAA",  # 21 chars
        "AAAAAAAAAAAAAAAAAAAAAAAA",  # 24 chars without padding = 18 bytes
        "AAAAAAAAAAAAAAAAAAAAA+",  # standard, not URL-safe, alphabet
        "AAAAAAAAAAAAAAAAAAAAA/",
        "AAAAAAAAAAAAAAAAAAAA A",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",  # too long
        "4ba1b5a6-0b55-4e1b-b5ea-4c3b7d1a3f10",  # a textual UUID is not Kafka's form
    ],
)
def test_parse_uuid_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_uuid(bad)


@given(st.binary(min_size=16, max_size=16))
def test_uuid_round_trip(raw: bytes) -> None:
    text = format_uuid(raw)
    assert len(text) == 22
    assert parse_uuid(text) == raw


# --- meta.properties -----------------------------------------------------------------------


def test_write_and_read_meta_properties(tmp_path: Path) -> None:
    d = tmp_path / "logs"
    meta = MetaProperties(cluster_id=random_uuid(), node_id=7, directory_id=random_directory_id())
    write_meta_properties(d, meta)
    assert read_meta_properties(d) == meta
    text = (d / "meta.properties").read_text()
    lines = text.splitlines()
    assert lines[0] == "#"
    assert lines[1].startswith("#") and lines[1][1:4].isalpha()  # Java's date comment
    assert lines[2:] == [
        f"cluster.id={meta.cluster_id}",
        f"directory.id={meta.directory_id}",
        "node.id=7",
        "version=1",
    ]
    assert not (d / "meta.properties.tmp").exists()


def test_read_meta_properties_absent_is_none(tmp_path: Path) -> None:
    assert read_meta_properties(tmp_path) is None
    assert read_meta_properties(tmp_path / "missing") is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("version=0\nbroker.id=1\n", "version 0"),
        ("version=2\ncluster.id=x\nnode.id=1\n", "Unknown meta.properties version"),
        ("version=1\nnode.id=1\n", "cluster.id was not specified"),
        ("version=1\ncluster.id=abc\n", "node.id was not specified"),
        ("version=1\ncluster.id=abc\nnode.id=one\n", "base-10"),
        ("version=1\ncluster.id=abc\nnode.id=1\ndirectory.id=nope\n", "directory.id"),
        ("version=1\ncluster.id=abc\nnode.id=1\ndirectory.id=AAAAAAAAAAAAAAAAAAAAAQ\n", "reserved"),
    ],
)
def test_invalid_meta_properties(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "meta.properties").write_text(content)
    with pytest.raises(MetaPropertiesError, match=message) as info:
        read_meta_properties(tmp_path)
    assert str(tmp_path / "meta.properties") in str(info.value)


def _format(dirs: list[Path], cluster_id: str, node_id: int) -> None:
    for d in dirs:
        write_meta_properties(d, MetaProperties(cluster_id, node_id, random_directory_id()))


def test_verify_log_dirs_ok(tmp_path: Path) -> None:
    cid = random_uuid()
    a, b, m = tmp_path / "a", tmp_path / "b", tmp_path / "meta"
    _format([a, b, m], cid, 3)
    found = verify_log_dirs([str(a), str(b)], str(m), node_id=3)
    assert list(found) == [str(a), str(b), str(m)]
    assert {meta.cluster_id for meta in found.values()} == {cid}
    assert verify_log_dirs([str(a)], str(a), node_id=3, cluster_id=cid)


def test_verify_log_dirs_unformatted(tmp_path: Path) -> None:
    a, m = tmp_path / "a", tmp_path / "meta"
    _format([a], random_uuid(), 1)
    with pytest.raises(MetaPropertiesError) as info:
        verify_log_dirs([str(a)], str(m), node_id=1)
    assert str(info.value) == (
        f"No meta.properties found in {m} (have you run kafka-storage to format the directory?)"
    )


def test_verify_log_dirs_cluster_mismatch(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    _format([a], random_uuid(), 1)
    _format([b], random_uuid(), 1)
    with pytest.raises(MetaPropertiesError, match="Invalid cluster.id in: .*b/meta.properties"):
        verify_log_dirs([str(a), str(b)], str(a), node_id=1)
    with pytest.raises(MetaPropertiesError, match="Invalid cluster.id"):
        verify_log_dirs([str(a)], str(a), node_id=1, cluster_id=random_uuid())


def test_verify_log_dirs_node_mismatch(tmp_path: Path) -> None:
    a = tmp_path / "a"
    _format([a], random_uuid(), 1)
    with pytest.raises(MetaPropertiesError, match=r"Stored node id 1 in .*a/meta.properties"):
        verify_log_dirs([str(a)], str(a), node_id=2)


def test_verify_log_dirs_starts_with_an_unreadable_log_dir_offline(tmp_path: Path) -> None:
    """As Kafka's broker: a log dir whose meta.properties cannot be read (an I/O error) is
    reported and left out; the metadata log dir failing, or every dir, still refuses."""
    cid = random_uuid()
    a, b = tmp_path / "a", tmp_path / "b"
    _format([a, b], cid, 1)
    (b / "meta.properties").unlink()
    (b / "meta.properties").mkdir()  # reading it fails with an OSError
    failed: dict[str, str] = {}
    found = verify_log_dirs([str(a), str(b)], str(a), node_id=1, failed=failed)
    assert list(found) == [str(a)] and list(failed) == [str(b)]
    with pytest.raises(MetaPropertiesError, match="Unable to read"):
        verify_log_dirs([str(a), str(b)], str(a), node_id=1)  # without ``failed``
    with pytest.raises(MetaPropertiesError, match="Unable to read"):
        verify_log_dirs([str(a), str(b)], str(b), node_id=1, failed={})  # the metadata dir
    with pytest.raises(MetaPropertiesError, match="Every log dir failed"):
        verify_log_dirs([str(b)], str(a), node_id=1, failed={})


def test_verify_log_dirs_duplicate_directory_id(tmp_path: Path) -> None:
    cid, did = random_uuid(), random_directory_id()
    a, b = tmp_path / "a", tmp_path / "b"
    write_meta_properties(a, MetaProperties(cid, 1, did))
    write_meta_properties(b, MetaProperties(cid, 1, did))
    with pytest.raises(MetaPropertiesError, match="Duplicate directory ID"):
        verify_log_dirs([str(a), str(b)], str(a), node_id=1)


# --- dynamic voters and bootstrap ----------------------------------------------------------


def test_parse_dynamic_voters() -> None:
    d1, d2 = random_directory_id(), random_directory_id()
    voters = parse_dynamic_voters(f"1@localhost:9093:{d1}, 2@[::1]:9094:{d2}")
    assert voters == [DynamicVoter(1, "localhost", 9093, d1), DynamicVoter(2, "::1", 9094, d2)]
    assert str(voters[1]) == f"2@[::1]:9094:{d2}"
    assert parse_dynamic_voters(",".join(str(v) for v in voters)) == voters


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "No voters given"),
        ("1localhost:9093:x", "No @ found"),
        ("@localhost:9093:x", "Invalid @ at beginning"),
        ("a@localhost:9093:x", "Failed to parse node id"),
        ("-1@localhost:9093:x", "Invalid negative node id"),
        ("1@", "No hostname found"),
        ("1@[::1:9093:x", "no right bracket"),
        ("1@localhost", "No colon following hostname"),
        ("1@localhost:9093", "No colon following port"),
        ("1@localhost:port:x", "Failed to parse port"),
        ("1@localhost:70000:x", "Invalid port 70000"),
        ("1@localhost:9093:notauuid", "Failed to parse directory ID"),
    ],
)
def test_parse_dynamic_voters_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_dynamic_voters(text)


def test_parse_dynamic_voters_rejects_duplicate_ids() -> None:
    d = random_directory_id()
    with pytest.raises(ValueError, match="Node id 1 was specified more than once"):
        parse_dynamic_voters(f"1@a:1:{d},1@b:2:{random_directory_id()}")


def test_bootstrap_round_trip(tmp_path: Path) -> None:
    assert read_bootstrap(tmp_path) is None
    voters = (DynamicVoter(2, "h2", 2, random_directory_id()),
              DynamicVoter(1, "h1", 1, random_directory_id()))
    boot = BootstrapMetadata(random_uuid(), "4.0-IV3", 1, voters)
    write_bootstrap(tmp_path, boot)
    props = load_properties(tmp_path / "bootstrap.properties")
    assert props["initial.controllers"] == f"{voters[1]},{voters[0]}"  # sorted by node id
    assert props["kraft.version"] == "1"
    back = read_bootstrap(tmp_path)
    assert back is not None
    assert back.initial_controllers == (voters[1], voters[0])
    assert (back.cluster_id, back.metadata_version, back.kraft_version) == (
        boot.cluster_id, "4.0-IV3", 1)

    static = BootstrapMetadata(random_uuid(), "4.0-IV3", 0)
    write_bootstrap(tmp_path, static)
    assert read_bootstrap(tmp_path) == static


def test_bootstrap_invalid(tmp_path: Path) -> None:
    (tmp_path / "bootstrap.properties").write_text("version=1\ncluster.id=x\n")
    with pytest.raises(MetaPropertiesError, match="missing"):
        read_bootstrap(tmp_path)


def test_metadata_version_levels() -> None:
    from storage.meta_properties import metadata_version_level

    assert metadata_version_level("3.3-IV0") == 4
    assert metadata_version_level("3.9-IV0") == 21
    assert metadata_version_level("4.0-IV3") == 25
    # A release without -IV means its last one; a patch release is its minor release.
    assert metadata_version_level("3.7") == 19
    assert metadata_version_level("3.9.1") == 21
    with pytest.raises(MetaPropertiesError, match="unknown metadata.version"):
        metadata_version_level("2.8")
