"""A leader's high watermark after a follower's log dir failed (KIP-858), on a real
``ReplicaManager`` over real logs, fed metadata images made by the real controller.

Once the controller took a replica on an offline dir out of the ISR, the leader must not wait
for it: it will never fetch again. Kafka waits for a caught-up replica outside the ISR that is
eligible to join it (``maybeIncrementLeaderHW``); a replica on an offline dir is not eligible
(broker/replication/directories.py ``replica_dir_online``). Whichever way the HW is advanced
(an append, a metadata change, another follower's fetch) the rule is the same; else every
acks=all produce waits until the dead replica's last caught-up time is older than
``replica.lag.time.max.ms``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from broker.config import KafkaConfig
from broker.protocol.errors import ErrorCode
from broker.replication.replica_manager import ReplicaManager
from storage.log_manager import LogManager
from storage.records import SimpleRecord, build_batch
from tests.unit.test_controller_directories import _place_all_on, cluster, d, heartbeat

TOPIC = "t"
LEADER, DYING, HEALTHY = 2, 1, 3


def _config(log_dir: Path) -> KafkaConfig:
    return KafkaConfig({
        "node.id": str(LEADER), "process.roles": "broker",
        "listeners": "PLAINTEXT://127.0.0.1:9092",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "controller.quorum.voters": "9@127.0.0.1:9093", "log.dirs": str(log_dir),
        "min.insync.replicas": "2",
        # Far longer than the test: only the offline dir may let the leader stop waiting.
        "replica.lag.time.max.ms": "600000",
    })


async def _no_controller(*_: Any, **__: Any) -> Any:
    raise AssertionError("the test sends nothing to the controller")


def _fetch(rm: ReplicaManager, replica_id: int, offset: int, leader_epoch: int) -> None:
    read = rm.read(TOPIC, 0, fetch_offset=offset, current_leader_epoch=leader_epoch,
                   last_fetched_epoch=-1, max_bytes=1 << 20, min_one=True,
                   replica_id=replica_id)
    assert read.error == ErrorCode.NONE, read


def _produce(rm: ReplicaManager, value: bytes) -> int:
    code, info, _ = rm.append_to_leader(TOPIC, 0, build_batch([SimpleRecord(value)]), -1)
    assert code == ErrorCode.NONE and info is not None
    return info.last_offset


def test_a_follower_fetch_does_not_wait_for_a_replica_on_an_offline_dir(tmp_path: Path) -> None:
    h = cluster()
    h.create(TOPIC, -1, -1, assignments={TOPIC: [[LEADER, DYING, HEALTHY]]})
    _place_all_on(h, DYING, d(DYING, 0), TOPIC)
    rm = ReplicaManager(_config(tmp_path), LogManager.open([tmp_path]),
                        send_to_controller=_no_controller, broker_epoch=lambda: 1)
    rm.on_metadata(None, h.image)  # no running loop: applied at once
    hp = rm.partitions[(TOPIC, 0)]
    epoch = hp.state.leader_epoch
    assert hp.state.is_leader and set(hp.state.isr) == {LEADER, DYING, HEALTHY}

    # Both followers caught up on the first record.
    first = _produce(rm, b"a")
    for follower in (DYING, HEALTHY):
        _fetch(rm, follower, first + 1, epoch)
    assert hp.state.high_watermark == first + 1

    # The dying follower's dir fails; its heartbeat says so; the controller takes it out of
    # the ISR (and out of its broker's online dirs) and the leader applies that.
    heartbeat(h, DYING, offline=[d(DYING, 0)])
    assert h.image.topics.by_name[TOPIC].partitions[0].isr == (LEADER, HEALTHY)
    rm.on_metadata(None, h.image)
    assert set(hp.state.isr) == {LEADER, HEALTHY}

    # A new acks=all record: the healthy follower's fetch is all it needs.
    second = _produce(rm, b"b")
    assert rm.produce_status(hp, epoch, second) is None  # waiting for the follower
    _fetch(rm, HEALTHY, second + 1, epoch)
    assert hp.state.high_watermark == second + 1
    assert rm.produce_status(hp, epoch, second) == ErrorCode.NONE
