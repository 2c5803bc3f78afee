"""The leader's side of transaction verification (broker/replication/txn_verify.py) without a
network: the error translation, the dynamic switch, the guards."""

from __future__ import annotations

from types import SimpleNamespace

from broker.config import KafkaConfig
from broker.protocol.errors import ErrorCode
from broker.replication.txn_verify import TxnVerifier, _partition_error, produce_error
from kraft.image import ConfigResourceType, ConfigurationsImage, MetadataImage

KEY = "transaction.partition.verification.enable"


def _verifier(**extra: str) -> tuple[TxnVerifier, SimpleNamespace]:
    props = {"node.id": "2", "process.roles": "broker",
             "listeners": "PLAINTEXT://127.0.0.1:9092",
             "controller.listener.names": "CONTROLLER",
             "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
             "controller.quorum.voters": "1@127.0.0.1:9093", "log.dirs": "/tmp/x", **extra}
    rm = SimpleNamespace(config=KafkaConfig(props), node_id=2, image=MetadataImage(),
                         partitions={})
    return TxnVerifier(rm), rm  # type: ignore[arg-type]


def _with_broker_configs(rm: SimpleNamespace, **by_name: dict[str, str]) -> None:
    rm.image = MetadataImage(configs=ConfigurationsImage(resources={
        (ConfigResourceType.BROKER, name.lstrip("_")): cfg for name, cfg in by_name.items()}))


def test_coordinator_answers_become_kafkas_produce_errors() -> None:
    for retriable in (ErrorCode.NETWORK_EXCEPTION, ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
                      ErrorCode.COORDINATOR_NOT_AVAILABLE, ErrorCode.NOT_COORDINATOR,
                      ErrorCode.CONCURRENT_TRANSACTIONS):
        assert produce_error(retriable) == ErrorCode.NOT_ENOUGH_REPLICAS
    assert produce_error(ErrorCode.INVALID_TXN_STATE) == ErrorCode.INVALID_TXN_STATE
    assert produce_error(ErrorCode.NONE) == ErrorCode.NONE
    assert _partition_error(ErrorCode.PRODUCER_FENCED) == ErrorCode.INVALID_PRODUCER_EPOCH
    assert _partition_error(ErrorCode.TRANSACTION_ABORTABLE) == ErrorCode.INVALID_TXN_STATE
    assert _partition_error(ErrorCode.INVALID_PRODUCER_ID_MAPPING) == \
        ErrorCode.INVALID_PRODUCER_ID_MAPPING


def test_the_switch_is_static_then_dynamic() -> None:
    v, rm = _verifier()
    assert v.enabled  # Kafka's default
    v, rm = _verifier(**{KEY: "false"})
    assert not v.enabled
    _with_broker_configs(rm, _={KEY: "true"})  # the cluster default
    assert v.enabled
    _with_broker_configs(rm, _={KEY: "true"}, _2={KEY: "false"})  # this broker's wins
    assert not v.enabled


def test_a_marker_breaks_the_guard_of_a_verification_in_flight() -> None:
    v, _ = _verifier()
    tp = ("t", 0)
    g = v.start_guard(tp, 7)
    assert v.start_guard(tp, 7) is g  # concurrent verifications share it
    assert v.guard_holds(tp, 7, g)
    v.drop_guard(tp, 7)  # a marker for producer 7 reached the partition
    assert not v.guard_holds(tp, 7, g)
    assert v.start_guard(tp, 7) is not g
    assert v.guard_count() == 1


def test_nothing_to_verify_where_this_broker_does_not_lead() -> None:
    v, _ = _verifier()
    assert v.needs_verification("t", 0, b"\0" * 70) is None
    assert v.needs_verification("t", 0, b"") is None
