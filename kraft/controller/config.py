"""``ControllerConfig``: the settings the controller logic reads (Kafka's names, in ms)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_METADATA_VERSION", "ControllerConfig"]

# metadata.version feature level of Kafka 3.9 (MetadataVersion.IBP_3_9_IV0): no ELR, no
# directory assignment, no leader-epoch bump on ISR shrink.
DEFAULT_METADATA_VERSION = 21


@dataclass(frozen=True, slots=True)
class ControllerConfig:
    num_partitions: int = 1
    default_replication_factor: int = 1
    min_insync_replicas: int = 1
    unclean_leader_election_enable: bool = False
    broker_session_timeout_ms: int = 9000
    broker_heartbeat_interval_ms: int = 2000
    auto_leader_rebalance_enable: bool = True
    leader_imbalance_check_interval_ms: int = 300_000
    leader_imbalance_per_broker_percentage: int = 10
    producer_id_block_size: int = 1000
    metadata_version: int = DEFAULT_METADATA_VERSION
    # None: accept any cluster id in BrokerRegistration (else INCONSISTENT_CLUSTER_ID).
    cluster_id: str | None = None
    # Controller node ids: valid BROKER config resource names besides registered brokers.
    controller_ids: frozenset[int] = frozenset()
    # Records written once after metadata.version on an empty log (kafka-storage format
    # --add-scram): (record type, record).
    bootstrap_records: tuple[tuple[int, Any], ...] = ()
    # kraft.version of the quorum (KIP-853): 0 static voters, 1 formatted with --standalone or
    # --initial-controllers (kraft/controller/feature_control.py).
    kraft_version: int = 0
    node_id: int = -1  # this controller's id (in error messages)

    @classmethod
    def from_kafka_config(cls, cfg: Any, cluster_id: str | None = None) -> ControllerConfig:
        """Read a ``broker.config.KafkaConfig`` (anything with ``get(kafka_key)``)."""
        voters: Any = getattr(cfg, "controller_quorum_voters", None) or {}
        return cls(
            num_partitions=int(cfg.get("num.partitions")),
            default_replication_factor=int(cfg.get("default.replication.factor")),
            min_insync_replicas=int(cfg.get("min.insync.replicas")),
            unclean_leader_election_enable=bool(cfg.get("unclean.leader.election.enable")),
            broker_session_timeout_ms=int(cfg.get("broker.session.timeout.ms")),
            broker_heartbeat_interval_ms=int(cfg.get("broker.heartbeat.interval.ms")),
            auto_leader_rebalance_enable=bool(cfg.get("auto.leader.rebalance.enable")),
            leader_imbalance_check_interval_ms=int(
                cfg.get("leader.imbalance.check.interval.seconds")) * 1000,
            leader_imbalance_per_broker_percentage=int(
                cfg.get("leader.imbalance.per.broker.percentage")),
            cluster_id=cluster_id,
            controller_ids=frozenset(int(v) for v in voters),
            node_id=int(getattr(cfg, "node_id", -1)),
        )
