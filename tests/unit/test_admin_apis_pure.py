"""Pure parts of the admin APIs: config description (broker.admin.configs) and producer-id
blocks (broker.admin.producer_ids)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from broker.admin.configs import ConfigSource, describe_broker_configs, describe_topic_configs
from broker.admin.producer_ids import ProducerIdManager
from broker.config import KafkaConfig
from kraft.controller.results import ApiError
from kraft.image import (
    ConfigResourceType,
    ConfigurationsImage,
    MetadataImage,
    PartitionRegistration,
    TopicImage,
    TopicsImage,
)
from storage.error_codes import ErrorCode

TOPIC, BROKER = ConfigResourceType.TOPIC, ConfigResourceType.BROKER


def _config(**extra: str) -> KafkaConfig:
    props = {"node.id": "2", "process.roles": "broker",
             "listeners": "PLAINTEXT://127.0.0.1:9092",
             "controller.listener.names": "CONTROLLER",
             "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
             "controller.quorum.voters": "1@127.0.0.1:9093", "log.dirs": "/tmp/x"}
    props.update(extra)
    return KafkaConfig(props)


def _image(configs: dict[tuple[int, str], dict[str, str]]) -> MetadataImage:
    tid = uuid.uuid4()
    t = TopicImage("t", tid, {0: PartitionRegistration((2,), (2,), 2, 0, 0)})
    return MetadataImage(topics=TopicsImage(by_id={tid: t}, by_name={"t": t}),
                         configs=ConfigurationsImage(resources=configs))


def test_topic_config_sources() -> None:
    cfg = _config(**{"log.retention.hours": "24"})
    image = _image({(TOPIC, "t"): {"cleanup.policy": "compact"}})
    by = {e.name: e for e in describe_topic_configs(cfg, image, 2, "t")}
    assert by["cleanup.policy"].value == "compact"
    assert by["cleanup.policy"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG
    assert by["cleanup.policy"].synonyms[0] == ("cleanup.policy", "compact", 1)
    assert by["retention.ms"].value == str(24 * 3600 * 1000)
    assert by["retention.ms"].source == ConfigSource.STATIC_BROKER_CONFIG
    assert ("log.retention.hours", "24", 4) in by["retention.ms"].synonyms
    assert by["segment.bytes"].source == ConfigSource.DEFAULT_CONFIG
    assert by["segment.bytes"].value == "1073741824"
    assert not any(e.read_only or e.is_sensitive for e in by.values())
    assert [e.name for e in describe_topic_configs(cfg, image, 2, "t", ["segment.bytes"])] == [
        "segment.bytes"]


def test_topic_defaults_follow_dynamic_broker_configs() -> None:
    cfg = _config()
    image = _image({(BROKER, ""): {"log.segment.bytes": "2000000"},
                    (BROKER, "2"): {"min.insync.replicas": "2"}})
    by = {e.name: e for e in describe_topic_configs(cfg, image, 2, "t")}
    assert by["segment.bytes"].value == "2000000"
    assert by["segment.bytes"].source == ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG
    assert by["min.insync.replicas"].value == "2"
    assert by["min.insync.replicas"].source == ConfigSource.DYNAMIC_BROKER_CONFIG


def test_broker_configs() -> None:
    cfg = _config(**{"num.partitions": "3"})
    image = _image({(BROKER, ""): {"log.retention.ms": "1000"}})
    by = {e.name: e for e in describe_broker_configs(cfg, image, 2, "2")}
    assert by["node.id"].value == "2" and by["node.id"].read_only
    assert by["node.id"].source == ConfigSource.STATIC_BROKER_CONFIG
    assert by["num.partitions"].value == "3"
    assert by["log.retention.ms"].source == ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG
    assert not by["log.retention.ms"].read_only
    assert by["log.segment.bytes"].source == ConfigSource.DEFAULT_CONFIG
    defaults = describe_broker_configs(cfg, image, 2, "")
    assert [(e.name, e.value) for e in defaults] == [("log.retention.ms", "1000")]
    for other in ("3", "x"):
        with pytest.raises(ApiError) as exc:
            describe_broker_configs(cfg, image, 2, other)
        assert exc.value.code == ErrorCode.INVALID_REQUEST


def test_producer_id_blocks_prefetch_at_90_percent() -> None:
    async def main() -> None:
        calls: list[int] = []

        async def allocate() -> tuple[int, int, int]:
            calls.append(1)
            start = 10 * (len(calls) - 1)
            return 0, start, 10

        m = ProducerIdManager(allocate)
        ids = [await m.generate() for _ in range(9)]
        assert ids == list(range(9)) and len(calls) == 1
        assert await m.generate() == 9  # the id at 90% triggers the prefetch
        await asyncio.sleep(0)
        assert len(calls) == 2
        assert [await m.generate() for _ in range(3)] == [10, 11, 12]
        assert len(calls) == 2

    asyncio.run(main())


def test_producer_id_errors_are_retriable() -> None:
    async def main() -> None:
        async def allocate() -> tuple[int, int, int]:
            return int(ErrorCode.STALE_BROKER_EPOCH), -1, 0

        m = ProducerIdManager(allocate)
        with pytest.raises(ApiError) as exc:
            await m.generate(wait_s=0.2)
        assert exc.value.code == ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
        assert m.last_error == ErrorCode.STALE_BROKER_EPOCH

    asyncio.run(main())
