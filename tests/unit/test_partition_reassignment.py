"""The leader's replication state across a partition reassignment (pure): a replica being
added is a follower that can join the ISR; once the controller completed the move (a new
leader epoch, the removed replica gone from the replicas) the removed replica no longer counts
for the high watermark nor can it be proposed for the ISR."""

from __future__ import annotations

from broker.replication.partition import PartitionState

LAG_MS = 1000


def test_added_replica_joins_and_removed_replica_stops_counting() -> None:
    st = PartitionState(local_id=2)
    # Move from [1, 2] (2 leads) to [2, 3]: stage 1 lists 3 as a replica, same leader epoch.
    assert st.update((1, 2), (1, 2), 2, 5, 7, log_end_offset=0, now_ms=0)
    assert not st.update((2, 3, 1), (1, 2), 2, 5, 8, log_end_offset=0, now_ms=0)
    assert set(st.followers) == {1, 3}
    st.update_follower(1, 10, 10, 10)
    st.update_follower(3, 10, 10, 10)
    assert st.maybe_increment_hw(10, 10, LAG_MS) and st.high_watermark == 10
    change = st.expand_candidate(3, eligible=True)
    assert change is not None and change.new_isr == (1, 2, 3)
    # The controller completes the move: replicas [2, 3], ISR [2, 3], a new leader epoch.
    assert st.update((2, 3), (2, 3), 2, 6, 9, log_end_offset=10, now_ms=20)
    assert set(st.followers) == {3} and st.isr == (2, 3) and st.pending is None
    # Broker 1 stopped fetching: it holds neither the HW nor the ISR.
    st.update_follower(3, 15, 15, 30)
    assert st.maybe_increment_hw(15, 30, LAG_MS) and st.high_watermark == 15
    assert st.expand_candidate(1, eligible=True) is None
    assert not st.update_follower(1, 15, 15, 40)  # its late fetches are refused
