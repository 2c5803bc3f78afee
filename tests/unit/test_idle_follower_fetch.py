"""ReplicaManager.idle_follower_fetch: the partitions of a follower's incremental fetch session
that need neither a read nor a place in the answer (driven with a real PartitionState)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from broker.replication.fetch_session import CachedPartition
from broker.replication.partition import PartitionState
from broker.replication.replica_manager import ReplicaManager

LEO = 10
EPOCH = 5


def setup(isr: tuple[int, ...] = (1, 2, 3)) -> tuple[Any, PartitionState, Any]:
    st = PartitionState(local_id=1, high_watermark=0)
    assert st.update((1, 2, 3), isr, 1, EPOCH, 7, log_end_offset=LEO, now_ms=0)
    log = SimpleNamespace(log_end_offset=LEO, log_start_offset=0)
    hp = SimpleNamespace(state=st, log=log, last_stable_offset=lambda: st.high_watermark)
    for r in (2, 3):
        st.update_follower(r, LEO, LEO, 0)
    assert st.maybe_increment_hw(LEO, 0, 1000) and st.high_watermark == LEO
    rm = SimpleNamespace(partitions={("t", 0): hp})
    return rm, st, log


def told(**changes: int) -> CachedPartition:
    """The session's entry of a follower at the log end that was told HW/LSO/log start."""
    c = CachedPartition("t", 0, LEO, current_leader_epoch=EPOCH, log_start_offset=0,
                        high_watermark=LEO, last_stable_offset=LEO, leader_log_start=0)
    for k, v in changes.items():
        setattr(c, k, v)
    return c


def idle(rm: Any, c: CachedPartition, replica: int = 2, now_ms: int = 500) -> bool:
    return ReplicaManager.idle_follower_fetch(rm, c, replica, now_ms)  # type: ignore[arg-type]


def test_idle_partition_is_recorded_as_fetched_and_left_out() -> None:
    rm, st, _ = setup()
    st.followers[2].log_start_offset = 0
    assert idle(rm, told(), now_ms=500)
    r = st.followers[2]
    # The clocks the ISR shrink looks at moved as for a full read.
    assert r.last_caught_up_ms == r.last_fetch_ms == 500
    assert r.log_end_offset == LEO and st.high_watermark == LEO


def test_anything_new_or_unusual_takes_the_full_read() -> None:
    rm, st, log = setup()
    st.followers[2].log_start_offset = 0
    before = (st.followers[2].last_caught_up_ms, st.followers[2].last_fetch_ms)
    cases = [
        told(high_watermark=8),  # the session has not told it the HW yet
        told(last_stable_offset=8),
        told(leader_log_start=-1),  # first answer after an error
        told(fetch_offset=LEO - 1),  # behind: records to send
        told(current_leader_epoch=EPOCH + 1),  # epoch mismatch: an error to answer
        told(last_fetched_epoch=EPOCH),  # divergence check wanted
        told(log_start_offset=3),  # its log start moved (DeleteRecords progress)
        CachedPartition("other", 0, LEO),  # not hosted here
    ]
    for c in cases:
        assert not idle(rm, c), c
    assert not idle(rm, told(), replica=4)  # not a replica
    log.log_end_offset = LEO + 1  # new records
    assert not idle(rm, told())
    # Nothing was recorded by a refusal.
    assert (st.followers[2].last_caught_up_ms, st.followers[2].last_fetch_ms) == before


def test_follower_outside_the_isr_takes_the_full_read() -> None:
    rm, st, _ = setup(isr=(1, 2))
    st.followers[3].log_start_offset = 0
    assert not idle(rm, told(), replica=3)  # its fetch may expand the ISR


def test_not_leader_takes_the_full_read() -> None:
    rm, st, _ = setup()
    st.followers[2].log_start_offset = 0
    assert st.update((1, 2, 3), (1, 2, 3), 2, EPOCH + 1, 8, log_end_offset=LEO, now_ms=1)
    assert not idle(rm, told(current_leader_epoch=-1))
