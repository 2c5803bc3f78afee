"""Incremental fetch sessions (KIP-227): the broker's cache of who fetches what.

A fetcher that opens a session (Fetch v7+, ``session_id`` 0 and ``session_epoch`` 0) gets a
full answer and a session id; from then on it sends only the partitions whose fetch position
changed (and ``forgotten_topics_data`` for those it drops), with the next epoch, and the broker
answers only the partitions that have something new: records, a changed high watermark, last
stable or log start offset, an error, or a diverging epoch. The other partitions are still
read at their cached positions (a follower's progress is recorded on each of them). A follower
fetching 50 partitions of which one moves thus sends and receives one partition instead of 50.

Kafka's rules, as in ``FetchSession.scala`` / ``FetchManager``:

- ``epoch`` -1 (final): close the named session, if any, and answer a sessionless full fetch.
- ``epoch`` 0 (initial): close the named session, if any, and open a new one from this request
  (answered with ``session_id`` 0, sessionless, when the cache has no room).
- otherwise incremental: an unknown id is ``FETCH_SESSION_ID_NOT_FOUND``, a wrong epoch is
  ``INVALID_FETCH_SESSION_EPOCH``; both are top-level errors after which the fetcher starts over.

The cache holds ``max.incremental.fetch.session.cache.slots`` sessions. When it is full a new
session takes the slot of the least recently used one that has been idle for
``EVICTION_IDLE_MS``, or failing that (for a follower) of the least recently used consumer
session; otherwise the fetch is answered without a session.

Fetch v13+ names topics by id (KIP-516): a session opened at v13+ keys its partitions by
``(topic_id, partition)`` and one opened below by ``(topic, partition)``; an incremental request
of the other kind is ``FETCH_SESSION_TOPIC_ID_ERROR`` (Kafka's ``FetchSession`` ``usesTopicIds``),
after which the fetcher starts a new session. The topic name of an id is looked up by the caller
for every request (a deleted topic's id then resolves to nothing: UNKNOWN_TOPIC_ID).

Pure logic: the caller passes ``now_ms``, reads the partitions and hands the results back.
"""

from __future__ import annotations

import random
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from broker.protocol.errors import ErrorCode

__all__ = ["EVICTION_IDLE_MS", "FINAL_EPOCH", "INITIAL_EPOCH", "CachedPartition", "FetchContext",
           "FetchSession", "FetchSessionCache"]

INITIAL_EPOCH = 0
FINAL_EPOCH = -1
EVICTION_IDLE_MS = 120_000  # Kafka's min.incremental.fetch.session.eviction.ms

# A session's key of a partition: (topic name, partition), or (topic id, partition) for a
# session opened with Fetch v13+.
TP = tuple[str | uuid.UUID, int]


@dataclass(slots=True)
class CachedPartition:
    """What the fetcher asked for, and what it was last told (for incremental answers)."""

    topic: str
    partition: int
    fetch_offset: int
    current_leader_epoch: int = -1
    last_fetched_epoch: int = -1
    log_start_offset: int = -1  # the follower's own (informational)
    max_bytes: int = 0
    high_watermark: int = -1
    last_stable_offset: int = -1
    leader_log_start: int = -1
    topic_id: uuid.UUID | None = None  # Fetch v13+; ``topic`` is then its current name or ""

    @classmethod
    def requested(cls, topic: str, p: Any, topic_id: uuid.UUID | None = None
                  ) -> CachedPartition:
        """From one partition of a Fetch request."""
        c = cls(topic, p.partition, p.fetch_offset, topic_id=topic_id)
        c.update_request(p)
        return c

    @property
    def key(self) -> TP:
        return (self.topic if self.topic_id is None else self.topic_id, self.partition)

    def update_request(self, p: Any) -> None:
        """A request named this partition (new position or limits): its next answer carries
        the partition whatever changed, so a fetcher that dropped an answer it could not use
        gets the offsets again by naming the partition."""
        self.fetch_offset = p.fetch_offset
        self.current_leader_epoch = getattr(p, "current_leader_epoch", -1)
        self.last_fetched_epoch = getattr(p, "last_fetched_epoch", -1)
        self.log_start_offset = getattr(p, "log_start_offset", -1)
        self.max_bytes = p.partition_max_bytes
        self.high_watermark = self.last_stable_offset = self.leader_log_start = -1

    def must_respond(self, error: int, hw: int, lso: int, log_start: int, has_records: bool,
                     diverging: bool) -> bool:
        """Record what this answer tells the fetcher; True if an incremental answer must carry
        the partition."""
        changed = (has_records or error != 0 or diverging or hw != self.high_watermark
                   or lso != self.last_stable_offset or log_start != self.leader_log_start)
        if error == 0:
            self.high_watermark, self.last_stable_offset = hw, lso
            self.leader_log_start = log_start
        else:
            # After an error the next good answer must carry the partition's offsets again.
            self.high_watermark = self.last_stable_offset = self.leader_log_start = -1
        return changed


@dataclass(slots=True)
class FetchSession:
    id: int
    follower: bool
    partitions: OrderedDict[TP, CachedPartition]
    last_used_ms: int
    epoch: int = 1  # the epoch the next incremental request must carry
    uses_topic_ids: bool = False

    def rotate(self, tps: list[TP]) -> None:
        """Partitions that just returned records go to the back of the answer order, so that a
        response size limit does not starve the ones behind them (Kafka does the same)."""
        for tp in tps:
            if tp in self.partitions:
                self.partitions.move_to_end(tp)


@dataclass(slots=True)
class FetchContext:
    """How to answer one Fetch: which partitions to read, which to put in the answer."""

    session_id: int = 0
    error: int = 0
    session: FetchSession | None = None
    # Sessionless (and the first answer of a session): read and answer exactly these.
    partitions: list[CachedPartition] = field(default_factory=list)

    @property
    def incremental(self) -> bool:
        return self.session is not None and self.session_id != 0 and not self.partitions

    def wanted(self) -> list[CachedPartition]:
        if self.partitions or self.session is None:
            return self.partitions
        return list(self.session.partitions.values())


class FetchSessionCache:
    def __init__(self, max_slots: int = 1000, eviction_idle_ms: int = EVICTION_IDLE_MS,
                 rng: random.Random | None = None) -> None:
        self.max_slots = max_slots
        self.eviction_idle_ms = eviction_idle_ms
        self.sessions: OrderedDict[int, FetchSession] = OrderedDict()  # least recently used first
        self._rng = rng or random.Random()
        self.evicted = 0

    def __len__(self) -> int:
        return len(self.sessions)

    def partitions_cached(self) -> int:
        return sum(len(s.partitions) for s in self.sessions.values())

    def new_context(self, session_id: int, epoch: int, topics: list[Any],
                    forgotten: list[Any], *, follower: bool, now_ms: int,
                    uses_topic_ids: bool = False) -> FetchContext:
        """Interpret one Fetch request's session fields (``topics`` / ``forgotten`` as they are
        on the wire: ``.topic`` and ``.partitions``, and ``.topic_id`` with ``uses_topic_ids``,
        where ``.topic`` is the id's name or "")."""
        def tid(t: Any) -> uuid.UUID | None:
            return t.topic_id if uses_topic_ids else None

        if epoch in (INITIAL_EPOCH, FINAL_EPOCH):
            if session_id:
                self.sessions.pop(session_id, None)
            wanted = [CachedPartition.requested(t.topic, p, tid(t))
                      for t in topics for p in t.partitions]
            ctx = FetchContext(partitions=wanted)
            if epoch == INITIAL_EPOCH and wanted:
                session = self._create(wanted, follower, now_ms, uses_topic_ids)
                if session is not None:
                    ctx.session, ctx.session_id = session, session.id
            return ctx
        session = self.sessions.get(session_id)
        if session is None:
            return FetchContext(error=ErrorCode.FETCH_SESSION_ID_NOT_FOUND)
        if session.epoch != epoch:
            return FetchContext(error=ErrorCode.INVALID_FETCH_SESSION_EPOCH)
        if session.uses_topic_ids != uses_topic_ids:
            return FetchContext(error=ErrorCode.FETCH_SESSION_TOPIC_ID_ERROR)
        session.epoch += 1
        session.last_used_ms = now_ms
        self.sessions.move_to_end(session_id)
        parts = session.partitions
        for t in forgotten:
            key = t.topic_id if uses_topic_ids else t.topic
            for pid in t.partitions:
                parts.pop((key, pid), None)
        for t in topics:
            for p in t.partitions:
                c = CachedPartition.requested(t.topic, p, tid(t))
                cp = parts.get(c.key)
                if cp is None:
                    parts[c.key] = c
                else:
                    cp.update_request(p)
        return FetchContext(session_id=session_id, session=session)

    def _create(self, wanted: list[CachedPartition], follower: bool, now_ms: int,
                uses_topic_ids: bool = False) -> FetchSession | None:
        if len(self.sessions) >= self.max_slots and not self._evict_one(follower, now_ms):
            return None
        while True:
            sid = self._rng.randint(1, 0x7FFFFFFF)
            if sid not in self.sessions:
                break
        session = FetchSession(sid, follower, OrderedDict((c.key, c) for c in wanted), now_ms,
                               uses_topic_ids=uses_topic_ids)
        self.sessions[sid] = session
        return session

    def _evict_one(self, follower: bool, now_ms: int) -> bool:
        victim = next((sid for sid, s in self.sessions.items()
                       if now_ms - s.last_used_ms >= self.eviction_idle_ms), None)
        if victim is None and follower:
            victim = next((sid for sid, s in self.sessions.items() if not s.follower), None)
        if victim is None:
            return False
        del self.sessions[victim]
        self.evicted += 1
        return True

    def remove(self, session_id: int) -> None:
        self.sessions.pop(session_id, None)
