"""broker.replication.partition: leader-side HW and ISR logic (pure, driven with explicit times)."""

from __future__ import annotations

from broker.replication.partition import IsrChange, PartitionState
from storage.error_codes import ErrorCode

LAG_MS = 1000


def leader(isr: tuple[int, ...] = (1, 2, 3), *, leo: int = 0, now: int = 0,
           epoch: int = 5, partition_epoch: int = 7, hw: int = 0) -> PartitionState:
    st = PartitionState(local_id=1, high_watermark=hw)
    assert st.update((1, 2, 3), isr, 1, epoch, partition_epoch, log_end_offset=leo, now_ms=now)
    return st


def test_hw_is_min_leo_of_isr_and_never_moves_back() -> None:
    st = leader()
    assert not st.maybe_increment_hw(10, 0, LAG_MS)  # followers' LEOs unknown yet
    st.update_follower(2, 10, 10, 1)
    assert not st.maybe_increment_hw(10, 1, LAG_MS)
    st.update_follower(3, 4, 10, 1)
    assert st.maybe_increment_hw(10, 1, LAG_MS) and st.high_watermark == 4
    st.update_follower(3, 10, 10, 2)
    assert st.maybe_increment_hw(10, 2, LAG_MS) and st.high_watermark == 10
    # A follower that fetches from an older offset (it truncated) does not pull the HW back.
    st.update_follower(3, 8, 10, 3)
    assert not st.maybe_increment_hw(10, 3, LAG_MS) and st.high_watermark == 10


def test_single_replica_isr_hw_is_log_end() -> None:
    st = leader(isr=(1,))
    # Out-of-ISR followers that are not caught up do not hold the HW back.
    assert st.maybe_increment_hw(7, 0, LAG_MS) is True and st.high_watermark == 7


def test_caught_up_non_isr_replica_holds_hw_until_it_joins() -> None:
    st = leader(isr=(1, 2))
    st.update_follower(2, 10, 10, 100)
    st.update_follower(3, 10, 10, 100)  # caught up: about to join the ISR
    assert st.maybe_increment_hw(12, 100, LAG_MS)  # 3 at 10 holds it like 2 does
    assert st.high_watermark == 10


def test_fenced_replica_out_of_the_isr_does_not_hold_hw() -> None:
    """Kafka's maybeIncrementLeaderHW waits for a caught-up replica outside the ISR only if it
    may join it (isReplicaIsrEligible): a broker fenced after it died, which the controller
    took out of the ISR, must not hold acks=all produces for replica.lag.time.max.ms."""
    st = leader()
    for r in (2, 3):
        st.update_follower(r, 10, 10, 100)
    assert st.maybe_increment_hw(10, 100, LAG_MS) and st.high_watermark == 10
    st.update_follower(2, 12, 12, 200)  # 3 dies here, caught up at 10 as of t=100
    assert not st.maybe_increment_hw(12, 200, LAG_MS)  # in the ISR: it holds the HW
    # The controller fences 3 and removes it from the ISR (same leader epoch).
    assert not st.update((1, 2, 3), (1, 2), 1, 5, 8, log_end_offset=12, now_ms=300)
    assert st.maybe_increment_hw(12, 300, LAG_MS, eligible=lambda r: r != 3)
    assert st.high_watermark == 12
    # A live, caught-up replica outside the ISR still holds it until it joins.
    st2 = leader(isr=(1, 2))
    st2.update_follower(2, 10, 10, 100)
    st2.update_follower(3, 10, 10, 100)
    assert st2.maybe_increment_hw(12, 100, LAG_MS, eligible=lambda r: True)
    assert st2.high_watermark == 10


def test_follower_caught_up_time() -> None:
    st = leader(now=50)
    st.update_follower(2, 5, 10, 100)  # behind: still counted from the election (50)
    assert st.followers[2].last_caught_up_ms == 50
    st2 = leader(isr=(1,))
    st2.update_follower(2, 5, 10, 100)
    assert not st2.followers[2].is_caught_up(10, 100, LAG_MS)
    # Fetching at >= the leader LEO seen at the previous fetch: caught up as of that fetch.
    st2.update_follower(2, 10, 15, 200)
    assert st2.followers[2].last_caught_up_ms == 100
    assert st2.followers[2].is_caught_up(15, 1100, LAG_MS)
    assert not st2.followers[2].is_caught_up(15, 1101, LAG_MS)
    st2.update_follower(2, 15, 15, 300)
    assert st2.followers[2].last_caught_up_ms == 300


def test_shrink_after_lag_time_and_maximal_isr_while_in_flight() -> None:
    st = leader(now=0)
    st.update_follower(2, 10, 10, 500)
    st.update_follower(3, 3, 10, 500)
    assert st.shrink_candidate(10, 900, LAG_MS) is None  # within the lag time of election
    change = st.shrink_candidate(10, 1200, LAG_MS)
    assert change == IsrChange((1, 2), 5, 7, expanding=False)
    st.begin_isr_change(change)
    # While in flight, the HW still counts the replica being removed (old, larger ISR).
    assert st.maximal_isr == (1, 2, 3)
    st.maybe_increment_hw(10, 1200, LAG_MS)
    assert st.high_watermark == 3
    assert st.shrink_candidate(10, 1300, LAG_MS) is None  # one change at a time
    assert st.complete_isr_change(change, leader_epoch=5, isr=(1, 2), partition_epoch=8)
    assert st.isr == (1, 2) and st.partition_epoch == 8 and st.pending is None
    assert st.maybe_increment_hw(10, 1300, LAG_MS) and st.high_watermark == 10


def test_expand_when_caught_up_to_hw_and_epoch_start() -> None:
    st = leader(isr=(1, 2), leo=20, hw=20)  # epoch starts at 20
    st.update_follower(2, 20, 20, 0)
    st.update_follower(3, 15, 20, 0)
    assert st.expand_candidate(3, eligible=True) is None  # below HW / epoch start
    st.update_follower(3, 20, 20, 10)
    assert st.expand_candidate(3, eligible=False) is None  # fenced / shutting down
    change = st.expand_candidate(3, eligible=True)
    assert change == IsrChange((1, 2, 3), 5, 7, expanding=True)
    st.begin_isr_change(change)
    assert st.maximal_isr == (1, 2, 3)  # the HW waits for 3 already
    assert st.isr == (1, 2)  # but min.insync checks the committed ISR
    assert st.under_min_isr(3)
    # No answer (a timeout): the proposal may have been applied, so it stays pending and is
    # sent again; the HW keeps waiting for replica 3.
    assert st.isr_change_failed(change, None) is True
    assert st.pending is change and st.maximal_isr == (1, 2, 3)
    # An answer that says newer metadata is coming: keep waiting, do not resend.
    assert st.isr_change_failed(change, ErrorCode.INVALID_UPDATE_VERSION) is False
    assert st.pending is change and st.maximal_isr == (1, 2, 3)
    # The controller says it was not applied: back to the committed state.
    assert st.isr_change_failed(change, ErrorCode.INELIGIBLE_REPLICA) is False
    assert st.pending is None and st.maximal_isr == (1, 2)


def test_isr_change_keeps_the_broker_epochs_it_was_proposed_with() -> None:
    """KIP-903: an expansion is decided on a follower's fetches and carries that follower's
    broker epoch of then, unchanged through retries. Replica 3 caught up, then lost its
    unflushed records to a power loss, restarted and registered again (a new broker epoch)
    while the proposal went unanswered: the retry must still name the old epoch, so that the
    controller refuses to add the new process on the old one's progress (the leader's high
    watermark already counts records it no longer has)."""
    epochs = {1: 10, 2: 11, 3: 12}
    st = leader(isr=(1, 2), leo=20, hw=20)
    st.update_follower(2, 20, 20, 0)
    st.update_follower(3, 20, 20, 0)
    change = st.expand_candidate(3, eligible=True, broker_epoch=epochs.__getitem__)
    assert change is not None and change.new_isr == (1, 2, 3)
    assert change.isr_with_epochs() == [(1, 10), (2, 11), (3, 12)]
    st.begin_isr_change(change)
    epochs[3] = 25  # broker 3 registers again after the power loss
    assert st.isr_change_failed(change, None) is True  # no answer: send it again, as it was
    assert st.pending is change
    assert change.isr_with_epochs() == [(1, 10), (2, 11), (3, 12)]
    # Refused as ineligible (the epoch changed): back to the committed ISR, and the next
    # fetch of the new process decides again, with its epoch.
    assert st.isr_change_failed(change, ErrorCode.INELIGIBLE_REPLICA) is False
    assert st.pending is None and st.maximal_isr == (1, 2)
    again = st.expand_candidate(3, eligible=True, broker_epoch=epochs.__getitem__)
    assert again is not None and again.isr_with_epochs() == [(1, 10), (2, 11), (3, 25)]
    # A shrink records the epochs too; without a source of epochs, -1 (not said).
    st.begin_isr_change(again)
    st.complete_isr_change(again, leader_epoch=5, isr=(1, 2, 3), partition_epoch=8)
    shrink = st.shrink_candidate(30, 2 * LAG_MS, LAG_MS, epochs.__getitem__)
    assert shrink is not None and shrink.isr_with_epochs() == [(1, 10)]
    assert IsrChange((1, 2), 5, 7, expanding=False).isr_with_epochs() == [(1, -1), (2, -1)]


def test_stale_alter_answer_and_metadata_win() -> None:
    st = leader()
    change = IsrChange((1, 2), 5, 7, expanding=False)
    st.begin_isr_change(change)
    # Metadata brings a newer partition epoch first: it replaces the in-flight state.
    assert not st.update((1, 2, 3), (1, 2), 1, 5, 8, log_end_offset=0, now_ms=0)
    assert st.pending is None and st.isr == (1, 2)
    # The late answer for the same change is not newer: ignored.
    assert not st.complete_isr_change(change, leader_epoch=5, isr=(1, 2), partition_epoch=8)
    # An older registration is ignored too.
    assert not st.update((1, 2, 3), (1, 2, 3), 1, 5, 6, log_end_offset=0, now_ms=0)
    assert st.isr == (1, 2)


def test_become_follower_and_new_epoch_resets() -> None:
    st = leader(leo=10)
    st.update_follower(2, 10, 10, 0)
    assert st.update((1, 2, 3), (2, 3), 2, 6, 9, log_end_offset=10, now_ms=5)
    assert not st.is_leader and st.followers == {}
    assert not st.maybe_increment_hw(10, 5, LAG_MS)
    assert st.update((1, 2, 3), (1, 2, 3), 1, 7, 10, log_end_offset=12, now_ms=6)
    assert st.is_leader and st.leader_epoch_start_offset == 12
    assert all(r.log_end_offset == -1 for r in st.followers.values())
    assert not st.update_follower(9, 1, 12, 7)  # not a replica
