"""The incremental fetch session cache (KIP-227): pure logic, wire-shaped inputs."""

from __future__ import annotations

import random
import uuid
from types import SimpleNamespace as NS

from broker.protocol.errors import ErrorCode
from broker.replication.fetch_session import EVICTION_IDLE_MS, FetchSessionCache


def topics(**parts: dict[int, int]) -> list[NS]:
    return [NS(topic=t, partitions=[NS(partition=p, fetch_offset=o, current_leader_epoch=3,
                                       last_fetched_epoch=-1, log_start_offset=0,
                                       partition_max_bytes=1000) for p, o in ps.items()])
            for t, ps in parts.items()]


def forget(**parts: list[int]) -> list[NS]:
    return [NS(topic=t, partitions=ps) for t, ps in parts.items()]


def cache(slots: int = 10) -> FetchSessionCache:
    return FetchSessionCache(slots, rng=random.Random(1))


def test_sessionless_and_initial_requests() -> None:
    c = cache()
    ctx = c.new_context(0, -1, topics(a={0: 5, 1: 7}), [], follower=False, now_ms=0)
    assert ctx.session_id == 0 and not ctx.error and len(c) == 0
    assert [(p.topic, p.partition, p.fetch_offset) for p in ctx.wanted()] == [("a", 0, 5),
                                                                             ("a", 1, 7)]
    ctx = c.new_context(0, 0, topics(a={0: 5, 1: 7}), [], follower=False, now_ms=0)
    assert ctx.session_id > 0 and len(c) == 1 and not ctx.incremental
    assert ctx.session is not None and ctx.session.epoch == 1
    # Initial with the old id: the old session closes, a new one opens.
    again = c.new_context(ctx.session_id, 0, topics(b={0: 0}), [], follower=False, now_ms=1)
    assert again.session_id not in (0, ctx.session_id) and len(c) == 1
    # Final with the id: closed, answered without a session.
    final = c.new_context(again.session_id, -1, topics(b={0: 0}), [], follower=False, now_ms=2)
    assert final.session_id == 0 and len(c) == 0


def test_incremental_updates_adds_and_forgets() -> None:
    c = cache()
    sid = c.new_context(0, 0, topics(a={0: 5, 1: 7}), [], follower=True, now_ms=0).session_id
    ctx = c.new_context(sid, 1, topics(a={1: 9}, b={0: 2}), forget(a=[0]), follower=True,
                        now_ms=1)
    assert ctx.incremental and ctx.session_id == sid
    assert {(p.topic, p.partition): p.fetch_offset for p in ctx.wanted()} == {("a", 1): 9,
                                                                             ("b", 0): 2}
    # Epochs must follow one another; an unknown id is not found.
    assert c.new_context(sid, 1, [], [], follower=True, now_ms=2).error == \
        ErrorCode.INVALID_FETCH_SESSION_EPOCH
    assert c.new_context(sid, 2, [], [], follower=True, now_ms=2).error == 0
    assert c.new_context(sid + 1, 1, [], [], follower=True, now_ms=2).error == \
        ErrorCode.FETCH_SESSION_ID_NOT_FOUND


def test_must_respond_tracks_what_the_fetcher_was_told() -> None:
    c = cache()
    ctx = c.new_context(0, 0, topics(a={0: 5}), [], follower=False, now_ms=0)
    p = ctx.wanted()[0]
    assert p.must_respond(0, hw=10, lso=10, log_start=0, has_records=True, diverging=False)
    assert not p.must_respond(0, hw=10, lso=10, log_start=0, has_records=False, diverging=False)
    assert p.must_respond(0, hw=11, lso=11, log_start=0, has_records=False, diverging=False)
    assert p.must_respond(0, hw=11, lso=11, log_start=4, has_records=False, diverging=False)
    assert p.must_respond(6, hw=-1, lso=-1, log_start=-1, has_records=False, diverging=False)
    # After an error the offsets are sent again even if unchanged.
    assert p.must_respond(0, hw=11, lso=11, log_start=4, has_records=False, diverging=False)
    assert p.must_respond(0, hw=11, lso=11, log_start=4, has_records=False, diverging=True)
    # Naming the partition in a request makes its next answer carry it.
    ctx = c.new_context(ctx.session_id, 1, topics(a={0: 6}), [], follower=False, now_ms=1)
    assert ctx.wanted()[0].must_respond(0, hw=11, lso=11, log_start=4, has_records=False,
                                        diverging=False)


def test_rotation_puts_partitions_that_returned_data_last() -> None:
    c = cache()
    ctx = c.new_context(0, 0, topics(a={0: 0, 1: 0, 2: 0}), [], follower=False, now_ms=0)
    assert ctx.session is not None
    ctx.session.rotate([("a", 0)])
    assert [p.partition for p in ctx.wanted()] == [0, 1, 2]  # a first answer is the request
    inc = c.new_context(ctx.session_id, 1, [], [], follower=False, now_ms=1)
    assert [p.partition for p in inc.wanted()] == [1, 2, 0]


def test_eviction_takes_idle_sessions_then_consumer_sessions_for_followers() -> None:
    c = cache(slots=2)
    a = c.new_context(0, 0, topics(t={0: 0}), [], follower=False, now_ms=0).session_id
    b = c.new_context(0, 0, topics(t={1: 0}), [], follower=False, now_ms=10).session_id
    assert a and b
    # Full, nobody idle long enough: a consumer gets no session.
    assert c.new_context(0, 0, topics(t={2: 0}), [], follower=False, now_ms=20).session_id == 0
    # A follower takes the least recently used consumer session's slot.
    f = c.new_context(0, 0, topics(t={3: 0}), [], follower=True, now_ms=30).session_id
    assert f and a not in c.sessions and b in c.sessions
    # Once b has been idle long enough, anyone may take its slot.
    late = EVICTION_IDLE_MS + 10
    d = c.new_context(0, 0, topics(t={4: 0}), [], follower=False, now_ms=late).session_id
    assert d and b not in c.sessions and f in c.sessions and c.evicted == 2


def by_id(names: dict[uuid.UUID, str], **parts: dict[int, int]) -> list[NS]:
    """Fetch v13+ topics: ``parts`` keyed by topic name, sent by id (``names`` maps back)."""
    ids = {n: i for i, n in names.items()}
    out = topics(**parts)
    for t in out:
        t.topic_id = ids[t.topic]
    return out


def test_topic_id_sessions_key_by_id_and_forget_by_id() -> None:
    """A v13+ session keys its partitions by topic id: forgotten topics name ids, and a topic
    renamed under the same id (a deleted and recreated name has a new id) stays one entry."""
    a, b = uuid.uuid4(), uuid.uuid4()
    names = {a: "a", b: "b"}
    c = cache()
    ctx = c.new_context(0, 0, by_id(names, a={0: 5, 1: 7}), [], follower=False, now_ms=0,
                        uses_topic_ids=True)
    sid = ctx.session_id
    assert sid and ctx.session is not None and ctx.session.uses_topic_ids
    assert set(ctx.session.partitions) == {(a, 0), (a, 1)}
    forgotten = [NS(topic="", topic_id=a, partitions=[0])]
    ctx = c.new_context(sid, 1, by_id(names, b={0: 2}), forgotten, follower=False, now_ms=1,
                        uses_topic_ids=True)
    assert ctx.incremental
    assert [(p.topic_id, p.partition, p.fetch_offset) for p in ctx.wanted()] == [
        (a, 1, 7), (b, 0, 2)]
    # Forgotten topics are read by id: b's partition 0 goes, whatever name rides along.
    assert c.new_context(sid, 2, [], [NS(topic="a", topic_id=b, partitions=[0, 1])],
                         follower=False, now_ms=2, uses_topic_ids=True).error == 0
    assert {p.key for p in ctx.session.partitions.values()} == {(a, 1)}


def test_topic_id_session_mixed_with_names_is_an_error() -> None:
    """Kafka's FetchSession.usesTopicIds: an incremental request of the other kind is
    FETCH_SESSION_TOPIC_ID_ERROR (106); both kinds still start new sessions."""
    a = uuid.uuid4()
    c = cache()
    sid = c.new_context(0, 0, by_id({a: "a"}, a={0: 0}), [], follower=False, now_ms=0,
                        uses_topic_ids=True).session_id
    assert c.new_context(sid, 1, topics(a={0: 1}), [], follower=False,
                         now_ms=1).error == ErrorCode.FETCH_SESSION_TOPIC_ID_ERROR
    named = c.new_context(0, 0, topics(a={0: 0}), [], follower=False, now_ms=1).session_id
    assert c.new_context(named, 1, by_id({a: "a"}, a={0: 1}), [], follower=False, now_ms=2,
                         uses_topic_ids=True).error == ErrorCode.FETCH_SESSION_TOPIC_ID_ERROR
    assert c.new_context(named, 1, topics(a={0: 1}), [], follower=False, now_ms=2).error == 0
