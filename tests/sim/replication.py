"""A seeded, single-threaded simulation of partition replication (the data plane), in the
manner of ``tests/sim/cluster.py`` for the metadata quorum.

What runs is the product's own logic: the controller is ``kraft.controller.QuorumController``
(broker registration, heartbeats and fencing, AlterPartition, elections, with the product's
default configs read through ``broker.config.KafkaConfig``); each broker's partitions are
``broker.replication.partition.PartitionState`` with the broker's replication decisions from that module
(becoming leader or follower, produce admission and ``acks=all`` completion, fetch positions,
ISR shrink and expand proposals, the KIP-101/KIP-279 truncation point, follower high watermark,
out-of-range handling). The simulation plays the I/O around them the way
``broker.replication.replica_manager`` and ``broker.replication.fetcher`` do, over a simulated network: brokers register
and heartbeat, pull the committed metadata log and act on it only once caught up and registered
(as ``broker.node`` does), follow leaders with one fetch in flight per leader (truncating first
with OffsetsForLeaderEpoch), checkpoint their high watermarks, and take produce requests from a
client that sends ``acks=all`` (mostly) and ``acks=1`` records to whichever broker the latest
metadata names leader.

The controller is one node that never loses its log (the quorum's own safety is the Raft
simulation's business); it can be cut off from brokers, which then lose their sessions.

Logs are in memory (``SimLog``): entries of (offset, leader epoch, value), a leader-epoch cache
with the product's own rules (``storage.leader_epoch.LeaderEpochFileCache``, persisted at every
change as the broker does), and a flushed prefix. Faults, all from the seed: message delay, drop,
duplication; partitions between any nodes (controller included), isolated leaders; pauses
(SIGSTOP); kill -9 (the page cache survives); power loss (kill -9 and the log loses what was not
flushed, at a random point past the flushed prefix). A power loss is only dealt to a broker when
another broker still holds every record committed so far: losing every copy is the one loss
Kafka does not promise to survive, so the simulation keeps it out and can then say that every
committed record must survive.

Invariants, checked as the simulation goes:

- a record the leader answers ``acks=all`` for had reached at least ``min.insync.replicas``
  replicas;
- committed records (below some replica's high watermark) are the same on every replica that
  reports them committed, and no replica ever truncates one (only a power loss may take a
  committed record from a replica, and never its last copy);
- a leader's high watermark never passes the log end of a member of its ISR (one that has not
  lost data to a power loss since the leader counted its fetches);
- at the end, after healing: every record answered ``acks=all`` is in every replica's log at
  its offset, every partition takes new ``acks=all`` records again, and the replicas agree.
"""

from __future__ import annotations

import heapq
import logging
import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from broker.config import KafkaConfig
from broker.replication.partition import (
    PartitionState,
    follower_high_watermark,
    out_of_range_action,
    truncation_point,
)
from kraft.controller import ControllerConfig, ControllerResult, QuorumController
from kraft.delta import MetadataDelta
from kraft.image import NO_LEADER, MetadataImage, PartitionRegistration
from storage.error_codes import ErrorCode
from storage.leader_epoch import LeaderEpochFileCache
from tests.unit.test_controller_helpers import alter_request, hb_request, reg_request, topic_request

CONTROLLER = 0
CLIENT = -1
TOPIC = "t"
CONTROLLER_EPOCH = 1


class InvariantViolation(AssertionError):
    pass


# ---------------------------------------------------------------------------- logs


@dataclass(frozen=True, slots=True)
class Entry:
    offset: int
    epoch: int
    value: int


class MemoryEpochCache(LeaderEpochFileCache):
    """The product's leader-epoch cache without its file: the broker writes the file durably
    (temp, fsync, rename) at every change, so in memory it survives any crash as it is."""

    def __init__(self) -> None:
        self.path = Path("<memory>")
        self._lock = threading.RLock()
        self._entries = []

    def _persist(self) -> None:
        pass


class SimLog:
    """One replica's log: what ``storage.log.PartitionLog`` does with offsets, epochs and the
    leader-epoch cache, in memory, with a flushed prefix that a power loss keeps."""

    def __init__(self, flush_every: int) -> None:
        self.entries: list[Entry] = []
        self.start = 0
        self.flushed = 0
        self.flush_every = flush_every
        self.leader_epoch_cache = MemoryEpochCache()

    @property
    def log_start_offset(self) -> int:
        return self.start

    @property
    def log_end_offset(self) -> int:
        return self.start + len(self.entries)

    @property
    def latest_epoch(self) -> int | None:
        return self.leader_epoch_cache.latest_epoch

    def append(self, entries: list[Entry]) -> None:
        assert entries and entries[0].offset == self.log_end_offset, (entries, self.log_end_offset)
        cache = self.leader_epoch_cache
        latest = cache.latest_epoch
        for e in entries:
            if latest is None or e.epoch > latest:
                cache.assign(e.epoch, e.offset)
                latest = e.epoch
        self.entries.extend(entries)
        if self.log_end_offset - self.flushed >= self.flush_every:
            self.flushed = self.log_end_offset

    def read(self, offset: int, max_entries: int, max_offset: int | None = None) -> list[Entry]:
        end = self.log_end_offset if max_offset is None else min(max_offset, self.log_end_offset)
        lo = offset - self.start
        return self.entries[lo:max(lo, min(end - self.start, lo + max_entries))]

    def entry(self, offset: int) -> Entry | None:
        i = offset - self.start
        return self.entries[i] if 0 <= i < len(self.entries) else None

    def truncate_to(self, offset: int) -> list[Entry]:
        """Drop entries at and past ``offset``; returns them. At or past the log end nothing
        goes, but an epoch opened at the log end without records does (as in the product)."""
        if offset >= self.log_end_offset:
            self.leader_epoch_cache.truncate_from_end(self.log_end_offset)
            return []
        cut = self.entries[offset - self.start:]
        del self.entries[offset - self.start:]
        self.flushed = min(self.flushed, offset)
        self.leader_epoch_cache.truncate_from_end(self.log_end_offset)
        return cut

    def truncate_fully_and_start_at(self, offset: int) -> list[Entry]:
        cut, self.entries = self.entries, []
        self.start = self.flushed = offset
        self.leader_epoch_cache.clear()
        return cut

    def power_loss(self, rng: random.Random) -> list[Entry]:
        """What a power loss leaves: the flushed prefix and any part of what followed; then
        recovery trims the epoch cache to the log (``PartitionLog.open``)."""
        keep = rng.randint(self.flushed, self.log_end_offset)
        return self.truncate_to(keep)


# ---------------------------------------------------------------------------- brokers


@dataclass(slots=True)
class FollowerFetch:
    """``broker.replication.fetcher.FetchState``: following ``leader`` at ``leader_epoch``."""

    leader: int
    leader_epoch: int
    truncating: bool = True
    delayed_until: int = 0


@dataclass(slots=True)
class Replica:
    log: SimLog
    state: PartitionState
    fetch: FollowerFetch | None = None
    # Waiting acks=all produces: (leader epoch, offset, client request id, deadline).
    waiting: list[tuple[int, int, int, int]] = field(default_factory=list)


@dataclass(slots=True)
class SimBroker:
    broker_id: int
    logs: dict[int, SimLog]  # what survives a crash: partition -> log
    hw_checkpoint: dict[int, int] = field(default_factory=dict)
    incarnation: int = 0
    crashed: bool = False
    paused: bool = False
    held: list[tuple[str, Any]] = field(default_factory=list)
    broker_epoch: int = -1
    registering: bool = False
    image: MetadataImage = field(default_factory=MetadataImage)
    catch_up_target: int | None = None
    acting: bool = False
    meta_inflight: bool = False
    replicas: dict[int, Replica] = field(default_factory=dict)
    fetch_inflight: set[int] = field(default_factory=set)
    alters: dict[int, tuple[int, Any]] = field(default_factory=dict)  # token -> (pid, change)
    # Partitions whose log a power loss cut (cleared once the controller has it out of the
    # ISR and registered as the process that came back: ``_note_elections``).
    lost: set[int] = field(default_factory=set)


@dataclass
class ReplSimConfig:
    brokers: int = 3
    partitions: int = 2
    min_insync: int = 2
    tick_ms: int = 10
    min_delay_ms: int = 1
    max_delay_ms: int = 8
    drop_prob: float = 0.03
    dup_prob: float = 0.02
    chaos_ms: int = 5000
    fault_interval_ms: int = 200
    heartbeat_ms: int = 60
    session_timeout_ms: int = 400
    replica_lag_ms: int = 250
    fetch_backoff_ms: int = 15
    produce_interval_ms: int = 12
    produce_timeout_ms: int = 800
    checkpoint_ms: int = 100
    liveness_bound_ms: int = 8000


def controller_config(cfg: ReplSimConfig) -> ControllerConfig:
    """The product's defaults (``unclean.leader.election.enable`` among them), with the
    simulation's short timeouts."""
    kc = KafkaConfig({
        "node.id": "1", "process.roles": "broker,controller",
        "listeners": "PLAINTEXT://:9092,CONTROLLER://:9093",
        "controller.listener.names": "CONTROLLER",
        "controller.quorum.voters": "1@localhost:9093",
        "broker.session.timeout.ms": str(cfg.session_timeout_ms),
        "broker.heartbeat.interval.ms": str(cfg.heartbeat_ms),
        "auto.leader.rebalance.enable": "false",
    })
    return ControllerConfig.from_kafka_config(kc)


class ReplicationSim:
    def __init__(self, seed: int, config: ReplSimConfig | None = None) -> None:
        self.seed = seed
        self.cfg = cfg = config or ReplSimConfig()
        self.rng = random.Random(seed)
        self.now = 0
        self.steps = 0
        self.events: list[tuple[int, int, str, Any]] = []
        self._seq = 0
        self._tokens = 0
        self.history: list[str] = []
        self.stats: Counter[str] = Counter()
        self.faults = False
        self.drop_prob = self.dup_prob = 0.0
        ids = list(range(1, cfg.brokers + 1))
        # Per seed: how much a fetch carries and how often logs are flushed.
        self.max_fetch_entries = self.rng.choice([1, 2, 5, 50])
        flush_every = self.rng.choice([1, 4, 1 << 30])
        self.strike_alter = self.rng.choice([0.0, 0.2])
        self.brokers = {
            b: SimBroker(b, {p: SimLog(flush_every) for p in range(cfg.partitions)}) for b in ids
        }
        self.group: dict[int, int] = {i: 0 for i in [CONTROLLER, *ids]}
        self.cut_links: set[frozenset[int]] = set()  # single links down, both ways
        self.controller_paused = False
        self.controller_held: list[tuple[str, Any]] = []
        # The controller: one QuorumController whose writes commit at once.
        self.controller = QuorumController(controller_config(cfg), random.Random(seed))
        self.clog: list[tuple[int, Any]] = []
        self._commit(self.controller.become_active(CONTROLLER_EPOCH, 0))
        # The client: acks=all outcomes, for the final check.
        self.next_value = 0
        self.requests: dict[int, tuple[int, int, int]] = {}  # request id -> (pid, value, acks)
        self.acked: dict[tuple[int, int], int] = {}  # (pid, offset) -> value, acks=all
        # Invariant state: the committed prefix of each partition, and who ever held what.
        self.committed: dict[int, list[Entry]] = {p: [] for p in range(cfg.partitions)}
        self.last_hw: dict[tuple[int, int], int] = {}
        # Replicas that held each entry (a power loss does not undo that they did: the
        # leader counted their fetches; a truncation does).
        self.holders: dict[tuple[int, Entry], set[int]] = {}
        self.leaders: dict[int, tuple[int, int]] = {}  # pid -> (leader, leader epoch)
        # pid -> (leader, leader epoch) of a last replica standing elected after a power loss,
        # until it acts as leader (``_last_replica_leads``).
        self.last_replica: dict[int, tuple[int, int]] = {}
        # pid -> [(offset, leader epoch)]: records from that offset were lost with the last
        # replica standing when it was elected at that epoch (``_note_elections``).
        self.lost_from: dict[int, list[tuple[int, int]]] = {}
        self.topic_created = False
        for b in ids:
            self._boot(self.brokers[b])
            self._schedule(self.rng.randrange(cfg.tick_ms), "tick", b)
        self._schedule(cfg.tick_ms, "controller-tick", None)

    # ------------------------------------------------------------------ plumbing

    def fail(self, what: str) -> None:
        tail = "\n".join(self.history[-30:])
        raise InvariantViolation(
            f"seed={self.seed} step={self.steps} t={self.now}ms: {what}\nrecent events:\n{tail}")

    def note(self, what: str) -> None:
        self.history.append(f"t={self.now} {what}")
        if len(self.history) > 300:
            del self.history[:150]

    def _schedule(self, delay: int, kind: str, arg: Any) -> None:
        self._seq += 1
        heapq.heappush(self.events, (self.now + delay, self._seq, kind, arg))

    def connected(self, a: int, b: int) -> bool:
        if a == CLIENT or b == CLIENT:
            return True
        return self.group[a] == self.group[b] and frozenset((a, b)) not in self.cut_links

    def send(self, src: int, dest: int, kind: str, body: Any) -> None:
        """A message; a reply names the incarnation it answers (a restarted broker never gets
        answers meant for its previous process)."""
        if not self.connected(src, dest) or self.rng.random() < self.drop_prob:
            return
        copies = 2 if self.rng.random() < self.dup_prob else 1
        for _ in range(copies):
            self._schedule(self.rng.randint(self.cfg.min_delay_ms, self.cfg.max_delay_ms),
                           "deliver", (src, dest, kind, body))

    # ------------------------------------------------------------------ controller

    def _commit(self, result: ControllerResult | None) -> Any:
        if result is None:
            return None
        if result.records:
            last = len(self.clog) + len(result.records) - 1
            self.controller.record_written(result.records, last, CONTROLLER_EPOCH)
            self.clog.extend(result.records)
            self.controller.replay_committed(result.records, last, CONTROLLER_EPOCH)
            self._note_elections()
        return result.response

    def _note_elections(self) -> None:
        """The loss Kafka (before KIP-966's eligible leader replicas) does not prevent, and
        the README names: the last in-sync replica standing comes back having lost unflushed
        records to a power loss and is elected again with its shorter log. Records past its
        log end are then gone for good; the simulation counts them and stops expecting
        them, rather than calling their truncation a bug."""
        topic = self.image.topics.by_name.get(TOPIC)
        if topic is None:
            return
        for pid, reg in topic.partitions.items():
            for b in self.brokers.values():
                if pid in b.lost and b.broker_id not in reg.isr and self._reregistered(b):
                    # Out of the ISR as its new process: it must catch up to rejoin. (Before
                    # it registers again, an expansion its leader proposed on the fetches of
                    # the process that lost the records, with that process's broker epoch,
                    # may still be applied, as in Kafka: KIP-903 only refuses it once the
                    # broker epoch has changed.)
                    b.lost.discard(pid)
            now = (reg.leader, reg.leader_epoch)
            if self.leaders.get(pid) == now:
                continue
            self.leaders[pid] = now
            if reg.leader == NO_LEADER or reg.isr != (reg.leader,):
                continue
            b = self.brokers[reg.leader]
            if pid in b.lost:
                # What is lost shows once it acts as leader: it may still append before that,
                # as the leader of an older epoch it has not yet learnt is over.
                self.last_replica[pid] = now

    def _reregistered(self, b: SimBroker) -> bool:
        """The controller's registration of ``b`` is its current process's."""
        reg = self.image.cluster.brokers.get(b.broker_id)
        return (not b.crashed and reg is not None and reg.incarnation_id
                == reg_request(b.broker_id, b.incarnation).incarnation_id)

    def _last_replica_leads(self, b: SimBroker, pid: int, r: Replica) -> None:
        """The last replica standing, back from a power loss, now leads: committed records
        past its log end are gone (see ``_note_elections``)."""
        if self.last_replica.get(pid) != (b.broker_id, r.state.leader_epoch):
            return
        del self.last_replica[pid]
        end = r.log.log_end_offset
        self.lost_from.setdefault(pid, []).append((end, r.state.leader_epoch))
        gone = self.committed[pid][end:]
        self.note(f"p{pid}: last replica {b.broker_id} leads after a power loss at log end "
                  f"{end}; {len(gone)} committed records lost")
        del self.committed[pid][end:]
        self.stats["lost_last_replica_power_loss"] += len(gone)
        for e in gone:
            self.acked.pop((pid, e.offset), None)

    def _lost_lineage(self, pid: int, e: Entry) -> bool:
        """A record lost with the last replica standing: past its log end when it took over,
        and written in an earlier epoch (everything it wrote since has a later one)."""
        return any(e.offset >= end and e.epoch < epoch
                   for end, epoch in self.lost_from.get(pid, ()))

    @property
    def image(self) -> MetadataImage:
        return self.controller.image

    def _controller_handle(self, src: int, kind: str, body: Any) -> None:
        c = self.controller
        if kind == "register":
            incarnation = body
            reply = self._commit(c.register_broker(reg_request(src, incarnation), self.now,
                                                   len(self.clog)))
            self.send(CONTROLLER, src, "register-reply", (incarnation, reply))
        elif kind == "heartbeat":
            incarnation, epoch, offset = body
            reply = self._commit(c.broker_heartbeat(hb_request(src, epoch, offset), self.now))
            self.send(CONTROLLER, src, "heartbeat-reply", (incarnation, reply))
        elif kind == "alter":
            incarnation, token, epoch, pid, leader_epoch, partition_epoch, isr = body
            topic = self.image.topics.by_name[TOPIC]
            req = alter_request(src, epoch, topic, pid, leader_epoch, partition_epoch,
                                [m for m, _ in isr], epochs=[e for _, e in isr])
            before = self._registration(pid)
            reply = self._commit(c.alter_partition(req, self.now))
            after = self._registration(pid)
            if (self.faults and before is not None and after is not None
                    and set(after.isr) > set(before.isr) and self.rng.random() < self.strike_alter):
                # The worst moment for a network fault: the controller applied an ISR
                # expansion, its answer is lost with the link, and the replica that joined
                # stalls, so the leader cannot know whether the new member counts.
                self.cut_links.add(frozenset((CONTROLLER, src)))
                added = min(set(after.isr) - set(before.isr))
                self.pause(added)
                self._schedule(self.rng.randint(100, 3 * self.cfg.session_timeout_ms), "resume",
                               (added, self.brokers[added].incarnation))
                self.note(f"cut {src} from the controller as it expands the ISR of p{pid}")
            self.send(CONTROLLER, src, "alter-reply", (incarnation, token, reply))
        elif kind == "metadata":
            incarnation, offset = body
            records = self.clog[offset:offset + 50]
            self.send(CONTROLLER, src, "metadata-reply",
                      (incarnation, offset, records, len(self.clog)))

    def _controller_tick(self) -> None:
        self._commit(self.controller.tick(self.now))
        if not self.topic_created:
            brokers = self.image.cluster.brokers
            if len(brokers) == self.cfg.brokers and all(not b.fenced for b in brokers.values()):
                req = topic_request((TOPIC, self.cfg.partitions, self.cfg.brokers),
                                    configs={"min.insync.replicas": str(self.cfg.min_insync)})
                reply = self._commit(self.controller.create_topics(req, self.now))
                assert reply.topics[0].error_code == 0, reply
                self.topic_created = True
                self.note("topic created")

    # ------------------------------------------------------------------ broker lifecycle

    def _boot(self, b: SimBroker) -> None:
        b.incarnation += 1
        b.crashed = b.paused = False
        b.held = []
        b.broker_epoch = -1
        b.registering = False
        b.image = MetadataImage()
        b.catch_up_target = None
        b.acting = False
        b.meta_inflight = False
        b.replicas = {}
        b.fetch_inflight = set()
        b.alters = {}
        self.note(f"boot broker {b.broker_id} incarnation {b.incarnation}")

    def crash(self, bid: int, power_loss: bool = False) -> None:
        b = self.brokers[bid]
        if b.crashed:
            return
        if power_loss and not self._spare_copy_exists(bid):
            power_loss = False
        self.note(f"{'power loss' if power_loss else 'crash'} broker {bid}")
        self.stats["power_loss" if power_loss else "crash"] += 1
        b.crashed = True
        if b.paused:
            b.paused = False
            # What waited dies with the process, but the tick timer belongs to the sim.
            for kind, arg in b.held:
                if kind == "tick":
                    self._schedule(0, kind, arg)
        b.held = []
        if power_loss:
            for pid, log in b.logs.items():
                self._dropped(b, pid, log.power_loss(self.rng), power_loss=True)
        b.replicas = {}

    def restart(self, bid: int) -> None:
        b = self.brokers[bid]
        if b.crashed:
            self._boot(b)

    def _spare_copy_exists(self, victim: int) -> bool:
        """For every partition, another member of the ISR holds every committed record. (A
        power loss of every in-sync replica at once, or of the last one standing, loses
        unflushed records in Kafka too: README, "The last replica standing".)"""
        for pid, committed in self.committed.items():
            reg = self._registration(pid)
            isr = reg.isr if reg is not None else tuple(self.brokers)
            n = len(committed)
            if not any(o != victim and self.brokers[o].logs[pid].read(0, n) == committed
                       for o in isr):
                return False
        return True

    def _broker_tick(self, b: SimBroker) -> None:
        cfg = self.cfg
        if b.broker_epoch < 0:
            if not b.registering:
                b.registering = True
                self.send(b.broker_id, CONTROLLER, "register", b.incarnation)
                self._schedule(100, "register-retry", (b.broker_id, b.incarnation))
            return
        if self.now % cfg.heartbeat_ms < cfg.tick_ms:
            self.send(b.broker_id, CONTROLLER, "heartbeat",
                      (b.incarnation, b.broker_epoch, b.image.offset))
        if not b.meta_inflight:
            b.meta_inflight = True
            self.send(b.broker_id, CONTROLLER, "metadata", (b.incarnation, b.image.offset + 1))
            self._schedule(60, "metadata-retry", (b.broker_id, b.incarnation))
        if not b.acting:
            return
        if self.now % cfg.checkpoint_ms < cfg.tick_ms:
            for pid, r in b.replicas.items():
                b.hw_checkpoint[pid] = r.state.high_watermark
        if self.now % (cfg.replica_lag_ms // 2) < cfg.tick_ms:
            self._maybe_shrink_isrs(b)
        self._fetch_round(b)
        for pid, r in b.replicas.items():
            if r.waiting:
                self._check_waiting(b, pid, r)

    def _broker_handle(self, b: SimBroker, src: int, kind: str, body: Any) -> None:
        if kind.endswith("-reply") and body[0] != b.incarnation:
            return  # an answer to a previous process
        if kind == "register-reply":
            reply = body[1]
            b.registering = False
            if reply.error_code == 0:
                b.broker_epoch = reply.broker_epoch
                self.note(f"broker {b.broker_id} registered, epoch {b.broker_epoch}")
        elif kind == "heartbeat-reply":
            reply = body[1]
            if reply.error_code in (ErrorCode.STALE_BROKER_EPOCH,
                                    ErrorCode.BROKER_ID_NOT_REGISTERED):
                b.broker_epoch = -1  # register again (broker.controller.lifecycle)
        elif kind == "metadata-reply":
            self._on_metadata(b, *body[1:])
        elif kind == "alter-reply":
            self._on_alter_reply(b, body[1], body[2])
        elif kind == "fetch":
            self._on_fetch(b, src, body)
        elif kind == "fetch-reply":
            self._on_fetch_reply(b, src, body)
        elif kind == "ofle":
            self._on_ofle(b, src, body)
        elif kind == "ofle-reply":
            self._on_ofle_reply(b, src, body)
        elif kind == "produce":
            self._on_produce(b, body)

    # ------------------------------------------------------------------ metadata

    def _on_metadata(self, b: SimBroker, offset: int, records: list[tuple[int, Any]],
                     log_end: int) -> None:
        b.meta_inflight = False
        if offset != b.image.offset + 1:
            return  # a duplicate or stale answer
        if b.catch_up_target is None:
            b.catch_up_target = log_end
        if records:
            delta = MetadataDelta(b.image)
            delta.replay_all(records)
            delta.set_provenance(offset + len(records) - 1, CONTROLLER_EPOCH)
            b.image = delta.apply()
        # broker.node: act on partitions only once caught up with the log as it stood at
        # start-up and once the metadata holds this process's own registration.
        reg = b.image.cluster.brokers.get(b.broker_id)
        if (not b.acting and b.image.offset + 1 >= b.catch_up_target and reg is not None
                and reg.incarnation_id == reg_request(b.broker_id, b.incarnation).incarnation_id):
            b.acting = True
            self.note(f"broker {b.broker_id} acting at metadata offset {b.image.offset}")
        if b.acting:
            self._apply_partitions(b)
        if len(records) == 50:
            b.meta_inflight = True
            self.send(b.broker_id, CONTROLLER, "metadata", (b.incarnation, b.image.offset + 1))

    def _apply_partitions(self, b: SimBroker) -> None:
        """ReplicaManager._make_leader / _make_follower for every partition we host."""
        topic = b.image.topics.by_name.get(TOPIC)
        if topic is None:
            return
        for pid, reg in sorted(topic.partitions.items()):
            if b.broker_id not in reg.replicas:
                continue
            r = b.replicas.get(pid)
            if r is None:
                log = b.logs[pid]
                hw = max(min(b.hw_checkpoint.get(pid, 0), log.log_end_offset),
                         log.log_start_offset)
                r = b.replicas[pid] = Replica(log, PartitionState(b.broker_id, high_watermark=hw))
            if reg.leader == b.broker_id:
                if r.state.become_leader(reg, r.log, self.now):
                    r.fetch = None
                    self._last_replica_leads(b, pid, r)
                    self.note(f"broker {b.broker_id} leads p{pid} epoch {reg.leader_epoch} "
                              f"leo {r.log.log_end_offset} hw {r.state.high_watermark}")
                self._maybe_increment_hw(b, pid, r)
            else:
                new_epoch = r.state.become_follower(reg, r.log, self.now)
                r.waiting = []
                if not reg.has_leader:
                    r.fetch = None
                elif new_epoch or r.fetch is None or r.fetch.leader != reg.leader:
                    r.fetch = FollowerFetch(reg.leader, reg.leader_epoch)
                self._note_hw(b, pid, r)

    # ------------------------------------------------------------------ leader

    def _min_isr(self, b: SimBroker) -> int:
        raw = b.image.configs.topic_config(TOPIC).get("min.insync.replicas")
        return int(raw) if raw is not None else self.controller.config.min_insync_replicas

    def _eligible(self, b: SimBroker, broker_id: int) -> bool:
        """May ``broker_id`` join an ISR, as ``b``'s metadata says (ReplicaManager._eligible)."""
        reg = b.image.cluster.brokers.get(broker_id)
        return reg is not None and not reg.fenced and not reg.in_controlled_shutdown

    def _maybe_increment_hw(self, b: SimBroker, pid: int, r: Replica) -> None:
        if r.state.maybe_increment_hw(r.log.log_end_offset, self.now, self.cfg.replica_lag_ms,
                                      lambda m: self._eligible(b, m)):
            self._note_hw(b, pid, r)
            self._check_waiting(b, pid, r)

    def _check_waiting(self, b: SimBroker, pid: int, r: Replica) -> None:
        """The produce purgatory: answer acks=all requests whose outcome is known."""
        still = []
        for epoch, offset, req, deadline in r.waiting:
            status = r.state.produce_status(epoch, offset, self._min_isr(b))
            if status is None and self.now < deadline:
                still.append((epoch, offset, req, deadline))
                continue
            if status == ErrorCode.NONE:
                self._acknowledge(b, pid, r, offset, req)
            self.stats["produce_" + ("timeout" if status is None else "ok" if status == 0
                                     else status.name.lower())] += 1
        r.waiting = still

    def _acknowledge(self, b: SimBroker, pid: int, r: Replica, offset: int, req: int) -> None:
        e = r.log.entry(offset)
        _, value, acks = self.requests[req]
        assert e is not None and e.value == value, (e, value)
        if acks == -1 and self._lost_lineage(pid, e):
            self.stats["lost_last_replica_power_loss"] += 1  # a zombie leader's late answer
        elif acks == -1:
            held = self.holders.get((pid, e), set())
            if len(held) < self._min_isr(b):
                self.fail(f"acks=all answered for p{pid} offset {offset} held by {sorted(held)} "
                          f"only (min.insync.replicas {self._min_isr(b)})")
            self.acked[(pid, offset)] = value
            self.stats["acked"] += 1

    def _on_produce(self, b: SimBroker, body: tuple[int, int, int, int]) -> None:
        req, pid, value, acks = body
        r = b.replicas.get(pid)
        if r is None or not b.acting:
            return
        if r.state.produce_admission(acks, self._min_isr(b)):
            self.stats["produce_refused"] += 1
            return
        e = Entry(r.log.log_end_offset, r.state.leader_epoch, value)
        self._append(b, pid, r.log, [e])
        if acks == -1:
            r.waiting.append((r.state.leader_epoch, e.offset, req,
                              self.now + self.cfg.produce_timeout_ms))
        self._maybe_increment_hw(b, pid, r)

    def _append(self, b: SimBroker, pid: int, log: SimLog, entries: list[Entry]) -> None:
        log.append(entries)
        for e in entries:
            self.holders.setdefault((pid, e), set()).add(b.broker_id)

    def _maybe_shrink_isrs(self, b: SimBroker) -> None:
        for pid, r in b.replicas.items():
            st = r.state
            if not st.is_leader:
                continue
            change = st.shrink_candidate(r.log.log_end_offset, self.now, self.cfg.replica_lag_ms,
                                         lambda m: self._broker_epoch(b, m))
            if change is not None:
                self._alter(b, pid, r, change)
            else:
                self._maybe_increment_hw(b, pid, r)

    @staticmethod
    def _broker_epoch(b: SimBroker, member: int) -> int:
        """A broker's epoch in ``b``'s metadata (ReplicaManager._broker_epoch)."""
        reg = b.image.cluster.brokers.get(member)
        return reg.epoch if reg is not None else -1

    def _alter(self, b: SimBroker, pid: int, r: Replica, change: Any) -> None:
        """ReplicaManager._alter_isr: propose, and send until answered or settled."""
        self.note(f"broker {b.broker_id} proposes ISR {list(change.new_isr)} for p{pid}")
        r.state.begin_isr_change(change)
        self._send_alter(b, pid, change)

    def _send_alter(self, b: SimBroker, pid: int, change: Any) -> None:
        self._tokens += 1
        token = self._tokens
        b.alters[token] = (pid, change)
        self.send(b.broker_id, CONTROLLER, "alter",
                  (b.incarnation, token, b.broker_epoch, pid, change.leader_epoch,
                   change.partition_epoch, change.isr_with_epochs()))
        self._schedule(300, "alter-timeout", (b.broker_id, b.incarnation, token))

    def _alter_failed(self, b: SimBroker, pid: int, change: Any,
                      error: ErrorCode | None) -> None:
        r = b.replicas.get(pid)
        if r is not None and r.state.isr_change_failed(change, error):
            self._schedule(100, "alter-retry", (b.broker_id, b.incarnation, pid, change))

    def _on_alter_reply(self, b: SimBroker, token: int, reply: Any) -> None:
        entry = b.alters.pop(token, None)
        if entry is None:
            return
        pid, change = entry
        r = b.replicas.get(pid)
        if r is None:
            return
        code = reply.error_code
        p = None
        if code == 0 and reply.topics and reply.topics[0].partitions:
            p = reply.topics[0].partitions[0]
            code = p.error_code
        if code != 0 or p is None:
            self._alter_failed(b, pid, change, ErrorCode(code or ErrorCode.UNKNOWN_TOPIC_OR_PARTITION))
            return
        r.state.complete_isr_change(change, leader_epoch=p.leader_epoch, isr=p.isr,
                                    partition_epoch=p.partition_epoch)
        self._maybe_increment_hw(b, pid, r)

    def _on_fetch(self, b: SimBroker, src: int, body: Any) -> None:
        """ReplicaManager.read for a follower's fetch."""
        incarnation, parts = body
        out = []
        for pid, fetch_offset, current_epoch in parts:
            r = b.replicas.get(pid)
            if r is None or not b.acting:
                out.append((pid, fetch_offset, ErrorCode.NOT_LEADER_OR_FOLLOWER, None, [], -1))
                continue
            st = r.state
            code = st.check_leader_epoch(current_epoch)
            if not code and not st.is_leader:
                code = ErrorCode.NOT_LEADER_OR_FOLLOWER
            if code:
                out.append((pid, fetch_offset, code, None, [], -1))
                continue
            pos = st.fetch_position(r.log, fetch_offset=fetch_offset, last_fetched_epoch=-1,
                                    replica_id=src, now_ms=self.now,
                                    max_lag_ms=self.cfg.replica_lag_ms,
                                    eligible=lambda m: self._eligible(b, m))
            if pos.hw_moved:
                self._note_hw(b, pid, r)
                self._check_waiting(b, pid, r)
            if pos.progress:
                change = st.expand_candidate(src, self._eligible(b, src),
                                             lambda m: self._broker_epoch(b, m))
                if change is not None:
                    self._alter(b, pid, r, change)
            entries = (r.log.read(fetch_offset, self.max_fetch_entries, pos.max_offset)
                       if pos.error == 0 and pos.read else [])
            out.append((pid, fetch_offset, pos.error, pos.diverging_epoch, entries,
                        st.high_watermark))
        self.send(b.broker_id, src, "fetch-reply", (incarnation, out))

    def _on_ofle(self, b: SimBroker, src: int, body: Any) -> None:
        """OffsetsForLeaderEpoch from a follower (data_apis.handle_offset_for_leader_epoch)."""
        incarnation, parts = body
        out = []
        for pid, current_epoch, epoch in parts:
            r = b.replicas.get(pid)
            code = (ErrorCode.NOT_LEADER_OR_FOLLOWER if r is None or not b.acting
                    else r.state.check_leader_epoch(current_epoch))
            if not code and r is not None and not r.state.is_leader:
                code = ErrorCode.NOT_LEADER_OR_FOLLOWER
            if code or r is None:
                out.append((pid, epoch, code, -1, -1))
                continue
            le, end = r.log.leader_epoch_cache.end_offset_for(epoch, r.log.log_end_offset)
            out.append((pid, epoch, ErrorCode.NONE, le, end))
        self.send(b.broker_id, src, "ofle-reply", (incarnation, out))

    # ------------------------------------------------------------------ follower

    def _fetch_round(self, b: SimBroker) -> None:
        """broker.replication.fetcher: per leader, one request in flight; truncate first, then fetch."""
        by_leader: dict[int, list[tuple[int, Replica]]] = {}
        for pid, r in sorted(b.replicas.items()):
            f = r.fetch
            if f is None or r.state.is_leader or f.delayed_until > self.now:
                continue
            by_leader.setdefault(f.leader, []).append((pid, r))
        for leader, parts in by_leader.items():
            if leader in b.fetch_inflight:
                continue
            truncating = [(pid, r) for pid, r in parts if r.fetch and r.fetch.truncating]
            if truncating:
                asks = []
                for pid, r in truncating:
                    assert r.fetch is not None
                    epoch = r.log.latest_epoch
                    if epoch is None:
                        r.fetch.truncating = False  # nothing written under any epoch
                        continue
                    asks.append((pid, r.fetch.leader_epoch, epoch))
                if asks:
                    b.fetch_inflight.add(leader)
                    self.send(b.broker_id, leader, "ofle", (b.incarnation, asks))
                    self._schedule(200, "fetch-timeout", (b.broker_id, b.incarnation, leader))
                continue
            req = [(pid, r.log.log_end_offset, r.fetch.leader_epoch) for pid, r in parts
                   if r.fetch is not None]
            b.fetch_inflight.add(leader)
            self.send(b.broker_id, leader, "fetch", (b.incarnation, req))
            self._schedule(200, "fetch-timeout", (b.broker_id, b.incarnation, leader))

    def _on_ofle_reply(self, b: SimBroker, leader: int, body: Any) -> None:
        b.fetch_inflight.discard(leader)
        for pid, asked_epoch, code, leader_epoch, leader_end in body[1]:
            r = b.replicas.get(pid)
            f = r.fetch if r is not None else None
            if r is None or f is None or f.leader != leader or not f.truncating:
                continue
            if code:
                f.delayed_until = self.now + self.cfg.fetch_backoff_ms
                continue
            if r.log.latest_epoch != asked_epoch:
                continue  # our log changed since we asked
            offset, done = truncation_point(r.log, r.state.high_watermark, leader_epoch,
                                            leader_end)
            if offset is not None:
                self._truncate(b, pid, r, max(offset, 0))
            if done:
                f.truncating = False

    def _truncate(self, b: SimBroker, pid: int, r: Replica, offset: int) -> None:
        """Partition.truncate: the follower HW stays within the log."""
        log = r.log
        if offset < log.log_end_offset:
            self.note(f"broker {b.broker_id} truncates p{pid} {log.log_end_offset} -> {offset}")
        if offset < log.log_start_offset or offset > log.log_end_offset:
            self._dropped(b, pid, log.truncate_fully_and_start_at(offset))
        else:
            self._dropped(b, pid, log.truncate_to(offset))
        r.state.high_watermark = min(r.state.high_watermark, log.log_end_offset)

    def _on_fetch_reply(self, b: SimBroker, leader: int, body: Any) -> None:
        b.fetch_inflight.discard(leader)
        for pid, fetch_offset, code, diverging, entries, leader_hw in body[1]:
            r = b.replicas.get(pid)
            f = r.fetch if r is not None else None
            if r is None or f is None or f.leader != leader or r.state.is_leader:
                continue
            if r.log.log_end_offset != fetch_offset or f.truncating:
                continue
            if code == ErrorCode.OFFSET_OUT_OF_RANGE:
                self._out_of_range(b, pid, r, leader)
                continue
            if code:
                f.delayed_until = self.now + self.cfg.fetch_backoff_ms
                continue
            if diverging is not None:
                f.truncating = True
                continue
            if entries:
                self._append(b, pid, r.log, list(entries))
            r.state.high_watermark = follower_high_watermark(leader_hw, r.log)
            self._note_hw(b, pid, r)

    def _out_of_range(self, b: SimBroker, pid: int, r: Replica, leader: int) -> None:
        """The leader's log start and end (ListOffsets), read straight off its log: the
        simulation does not model retention, so only an unclean election gets here."""
        lb = self.brokers[leader]
        lr = lb.replicas.get(pid)
        if lb.crashed or lr is None or not lr.state.is_leader:
            return
        action = out_of_range_action(r.log, lr.log.log_start_offset, lr.log.log_end_offset)
        if action.truncate is not None:
            self._truncate(b, pid, r, action.truncate)
        elif action.restart is not None:
            self._dropped(b, pid, r.log.truncate_fully_and_start_at(action.restart))
            r.state.high_watermark = action.restart

    # ------------------------------------------------------------------ invariants

    def _note_hw(self, b: SimBroker, pid: int, r: Replica) -> None:
        """Entries below a replica's high watermark are committed: the same everywhere."""
        hw = r.state.high_watermark
        key = (b.broker_id, pid)
        last = self.last_hw.get(key, 0)
        if hw <= last:
            self.last_hw[key] = hw
            return
        self.last_hw[key] = hw
        committed = self.committed[pid]
        for off in range(max(last, r.log.log_start_offset), hw):
            e = r.log.entry(off)
            if e is not None and self._lost_lineage(pid, e):
                self.last_hw[key] = off  # a stale view of records lost with the last replica
                break
            if e is None:
                self.fail(f"broker {b.broker_id} p{pid} high watermark {hw} past its log end "
                          f"{r.log.log_end_offset}")
            if off < len(committed):
                if committed[off] != e:
                    self.fail(f"committed p{pid} offset {off} is {committed[off]} but broker "
                              f"{b.broker_id} has {e}")
            elif off == len(committed):
                committed.append(e)
            else:
                self.fail(f"broker {b.broker_id} p{pid} reports {off} committed past the "
                          f"committed end {len(committed)}")
        if r.state.is_leader:
            self._check_hw_within_isr(b, pid, r)

    def _check_hw_within_isr(self, b: SimBroker, pid: int, r: Replica) -> None:
        """The current leader's high watermark is within the log of every ISR member."""
        reg = self._registration(pid)
        if reg is None or reg.leader != b.broker_id or reg.leader_epoch != r.state.leader_epoch:
            return  # not (yet, or any more) the leader the controller knows
        hw = r.state.high_watermark
        # The controller's ISR is what an election picks from. (A member the leader still
        # counts but the controller has removed, e.g. fenced and back from a power loss, is
        # no longer promised anything.)
        for member in reg.isr:
            if member == b.broker_id:
                continue
            o = self.brokers[member]
            leo = o.logs[pid].log_end_offset
            if pid in o.lost:
                # Behind since a power loss, legitimately, until the controller took it out
                # of the ISR and it caught up to come back.
                continue
            if leo < hw:
                self.fail(f"leader {b.broker_id} p{pid} high watermark {hw} past the log end "
                          f"{leo} of ISR member {member} (controller's ISR {list(reg.isr)}, "
                          f"leader's {list(r.state.maximal_isr)})")

    def _dropped(self, b: SimBroker, pid: int, cut: list[Entry], power_loss: bool = False) -> None:
        """A replica lost entries: by a power loss (never the last copy of a committed one, as
        dealt by ``crash``), or by truncation, which must never take a committed entry from a
        member of the ISR. (A follower out of the ISR may act on a stale answer, from a leader
        since deposed, and truncate below its high watermark, as Kafka's fetcher may, with a
        warning; it fetches the records again before it can rejoin.)"""
        committed = self.committed[pid]
        reg = self._registration(pid)
        in_isr = reg is not None and b.broker_id in reg.isr
        for e in cut:
            held = self.holders.get((pid, e))
            if held is not None and not power_loss:
                held.discard(b.broker_id)
            if e.offset < len(committed) and committed[e.offset] == e:
                if power_loss:
                    self.stats["power_loss_committed"] += 1
                elif in_isr:
                    self.fail(f"broker {b.broker_id}, in the ISR, truncated committed p{pid} {e}")
                else:
                    self.stats["truncated_committed_out_of_isr"] += 1
        if power_loss and cut:
            b.lost.add(pid)
        key = (b.broker_id, pid)
        self.last_hw[key] = min(self.last_hw.get(key, 0), b.logs[pid].log_end_offset)

    # ------------------------------------------------------------------ client

    def produce(self, pid: int, acks: int) -> int | None:
        """Send one record to the partition's leader as the latest metadata names it; returns
        the request id (None: no leader)."""
        reg = self._registration(pid)
        if reg is None or reg.leader == NO_LEADER:
            return None
        self.next_value += 1
        req = value = self.next_value
        self.requests[req] = (pid, value, acks)
        self.send(CLIENT, reg.leader, "produce", (req, pid, value, acks))
        return req

    def _registration(self, pid: int) -> PartitionRegistration | None:
        topic = self.image.topics.by_name.get(TOPIC)
        return None if topic is None else topic.partitions.get(pid)

    # ------------------------------------------------------------------ faults

    def pause(self, bid: int) -> None:
        b = self.brokers[bid]
        if b.crashed or b.paused:
            return
        self.note(f"pause broker {bid}")
        self.stats["pause"] += 1
        b.paused = True

    def resume(self, bid: int) -> None:
        b = self.brokers[bid]
        if not b.paused:
            return
        self.note(f"resume broker {bid}")
        b.paused = False
        held, b.held = b.held, []
        for kind, arg in held:
            self._schedule(0, kind, arg)

    def resume_controller(self) -> None:
        if self.controller_paused:
            self.note("resume the controller")
            self.controller_paused = False
            held, self.controller_held = self.controller_held, []
            for kind, arg in held:
                self._schedule(0, kind, arg)

    def partition(self, groups: list[set[int]]) -> None:
        for g, members in enumerate(groups):
            for m in members:
                self.group[m] = g + 1
        self.note(f"partition {groups}")

    def heal(self) -> None:
        for i in self.group:
            self.group[i] = 0
        self.cut_links.clear()
        self.note("heal")

    def _leader_of_some_partition(self) -> int | None:
        leaders = [reg.leader for p in range(self.cfg.partitions)
                   if (reg := self._registration(p)) is not None and reg.leader != NO_LEADER]
        return self.rng.choice(leaders) if leaders else None

    def _random_fault(self) -> None:
        r = self.rng.random()
        ids = sorted(self.brokers)
        alive = [i for i in ids if not self.brokers[i].crashed]
        dead = [i for i in ids if self.brokers[i].crashed]
        leader = self._leader_of_some_partition()
        if r < 0.14 and alive:
            victim = leader if leader is not None and self.rng.random() < 0.5 else (
                self.rng.choice(alive))
            self.crash(victim, power_loss=self.rng.random() < 0.5)
            self._schedule(self.rng.randint(20, 800), "restart", victim)
        elif r < 0.26 and dead:
            self.restart(self.rng.choice(dead))
        elif r < 0.38 and alive:
            victim = leader if leader is not None and self.rng.random() < 0.5 else (
                self.rng.choice(alive))
            self.pause(victim)
            self._schedule(self.rng.randint(20, 3 * self.cfg.session_timeout_ms), "resume",
                           (victim, self.brokers[victim].incarnation))
        elif r < 0.52:
            nodes = [CONTROLLER, *ids]
            self.rng.shuffle(nodes)
            k = self.rng.randrange(1, len(nodes))
            self.partition([set(nodes[:k]), set(nodes[k:])])
        elif r < 0.68:
            victim = leader if leader is not None and self.rng.random() < 0.6 else (
                self.rng.choice([CONTROLLER, *ids]))
            self.group[victim] = 100 + victim
            self.note(f"isolate {victim}")
        elif r < 0.8:
            cut = [i for i in self.group if self.group[i] >= 100]
            if cut:
                victim = self.rng.choice(cut)
                others = Counter(g for i, g in self.group.items() if g < 100)
                self.group[victim] = max(others, key=lambda g: (others[g], -g)) if others else 0
                self.note(f"rejoin {victim}")
        elif r < 0.86:
            # A leader loses the controller but keeps its followers and clients: its session
            # expires, another replica is elected, and it serves on as a zombie meanwhile.
            victim = leader if leader is not None else self.rng.choice(ids)
            self.cut_links.add(frozenset((CONTROLLER, victim)))
            self.note(f"cut {victim} from the controller")
        elif r < 0.9:
            # The controller stalls (a long GC pause): brokers' requests time out, then it
            # answers them all, late, and fences whoever looks silent.
            if not self.controller_paused:
                self.note("pause the controller")
                self.stats["controller_pause"] += 1
                self.controller_paused = True
                self._schedule(self.rng.randint(50, 2 * self.cfg.session_timeout_ms), "resume",
                               (CONTROLLER, 0))
        elif r < 0.95:
            self.heal()
        elif alive:
            # Followers fall behind: pause all but one broker briefly (ISR shrinks to one).
            keep = leader if leader is not None else self.rng.choice(alive)
            for i in alive:
                if i != keep:
                    self.pause(i)
                    self._schedule(self.rng.randint(self.cfg.replica_lag_ms,
                                                     3 * self.cfg.replica_lag_ms),
                                   "resume", (i, self.brokers[i].incarnation))

    # ------------------------------------------------------------------ the run

    _BROKER_EVENTS = ("tick", "register-retry", "metadata-retry", "fetch-timeout",
                      "alter-timeout", "alter-retry")

    def run_until(self, end_ms: int) -> None:
        while self.events and self.events[0][0] <= end_ms:
            t, _, kind, arg = heapq.heappop(self.events)
            self.now = t
            self.steps += 1
            if kind in self._BROKER_EVENTS or (kind == "deliver" and arg[1] != CONTROLLER):
                bid = arg[1] if kind == "deliver" else arg if kind == "tick" else arg[0]
                b = self.brokers[bid]
                if b.paused and (kind != "deliver" or self.connected(arg[0], bid)):
                    b.held.append((kind, arg))
                    continue
            if self.controller_paused and (
                    kind == "controller-tick" or (kind == "deliver" and arg[1] == CONTROLLER
                                                  and self.connected(arg[0], CONTROLLER))):
                self.controller_held.append((kind, arg))
                continue
            if kind == "tick":
                self._schedule(self.cfg.tick_ms, "tick", arg)
                b = self.brokers[arg]
                if not b.crashed:
                    self._broker_tick(b)
            elif kind == "controller-tick":
                self._schedule(self.cfg.tick_ms * 5, "controller-tick", None)
                self._controller_tick()
            elif kind == "deliver":
                src, dest, mkind, body = arg
                if not self.connected(src, dest):
                    continue
                if dest == CONTROLLER:
                    self._controller_handle(src, mkind, body)
                elif not self.brokers[dest].crashed:
                    self._broker_handle(self.brokers[dest], src, mkind, body)
            elif kind in ("register-retry", "metadata-retry", "fetch-timeout", "alter-timeout",
                          "alter-retry"):
                b = self.brokers[arg[0]]
                if b.crashed or b.incarnation != arg[1]:
                    continue
                if kind == "register-retry":
                    b.registering = False
                elif kind == "metadata-retry":
                    b.meta_inflight = False
                elif kind == "fetch-timeout":
                    b.fetch_inflight.discard(arg[2])
                elif kind == "alter-timeout":
                    entry = b.alters.pop(arg[2], None)
                    if entry is not None:
                        self._alter_failed(b, entry[0], entry[1], None)
                else:
                    pid, change = arg[2], arg[3]
                    r = b.replicas.get(pid)
                    if r is not None and r.state.pending is change:
                        self._send_alter(b, pid, change)
            elif kind == "restart":
                if self.faults:
                    self.restart(arg)
            elif kind == "resume":
                bid, incarnation = arg
                if bid == CONTROLLER:
                    self.resume_controller()
                elif self.brokers[bid].incarnation == incarnation:
                    self.resume(bid)
            elif kind == "fault":
                if self.faults:
                    self._random_fault()
                    self._schedule(self.rng.randint(1, 2 * self.cfg.fault_interval_ms),
                                   "fault", None)
            elif kind == "client" and self.faults:
                self.produce(self.rng.randrange(self.cfg.partitions),
                             -1 if self.rng.random() < 0.85 else 1)
                self._schedule(self.rng.randint(1, 2 * self.cfg.produce_interval_ms),
                               "client", None)
        self.now = max(self.now, end_ms)

    def run(self) -> None:
        """Chaos with a client producing, then heal everything and require the cluster to
        settle: every acknowledged record on every replica, new records accepted."""
        cfg = self.cfg
        logging.getLogger("storage.leader_epoch").setLevel(logging.ERROR)
        self.run_until(600)  # brokers register, the topic is created
        if not self.topic_created:
            self.fail("the topic was not created within 600 ms")
        self.faults = True
        self.drop_prob, self.dup_prob = cfg.drop_prob, cfg.dup_prob
        self._schedule(self.rng.randint(1, cfg.fault_interval_ms), "fault", None)
        self._schedule(1, "client", None)
        self.run_until(self.now + cfg.chaos_ms)
        self.faults = False
        self.drop_prob = self.dup_prob = 0.0
        self.heal()
        self.resume_controller()
        for bid in sorted(self.brokers):
            self.resume(bid)
            self.restart(bid)
        self._settle()

    def _settle(self) -> None:
        deadline = self.now + self.cfg.liveness_bound_ms
        probes: dict[int, int] = {}
        while self.now < deadline:
            self.run_until(self.now + 50)
            for pid in range(self.cfg.partitions):
                req = probes.get(pid)
                if req is None or (self.requests[req][1] not in self.acked.values()
                                   and self.rng.random() < 0.1):
                    got = self.produce(pid, -1)
                    if got is not None:
                        probes[pid] = got
            acked_values = set(self.acked.values())
            if (len(probes) == self.cfg.partitions
                    and all(self.requests[req][1] in acked_values for req in probes.values())
                    and self._in_sync()):
                self._final_check()
                return
        self.fail(f"liveness: not settled {self.cfg.liveness_bound_ms} ms after healing: "
                  f"{self._describe()}")

    def _in_sync(self) -> bool:
        for pid in range(self.cfg.partitions):
            reg = self._registration(pid)
            if reg is None or reg.leader == NO_LEADER or len(reg.isr) != self.cfg.brokers:
                return False
            ends = set()
            for b in self.brokers.values():
                r = b.replicas.get(pid)
                if r is None:
                    return False
                ends.add(r.log.log_end_offset)
                ends.add(r.state.high_watermark)
            if len(ends) != 1:
                return False
        return True

    def _describe(self) -> str:
        out = []
        for pid in range(self.cfg.partitions):
            reg = self._registration(pid)
            out.append(f"p{pid} {reg}")
            for b in self.brokers.values():
                r = b.replicas.get(pid)
                out.append(f"  broker {b.broker_id} acting={b.acting} crashed={b.crashed} "
                           f"leo={b.logs[pid].log_end_offset} "
                           f"hw={r.state.high_watermark if r else None} "
                           f"fetch={r.fetch if r else None}")
        return "\n".join(out)

    def _final_check(self) -> None:
        for (pid, offset), value in sorted(self.acked.items()):
            for b in self.brokers.values():
                e = b.logs[pid].entry(offset)
                if e is None or e.value != value:
                    self.fail(f"acknowledged p{pid} offset {offset} value {value} is {e} on "
                              f"broker {b.broker_id}")
        for pid in range(self.cfg.partitions):
            logs = [b.logs[pid].entries for b in self.brokers.values()]
            if any(log != logs[0] for log in logs):
                self.fail(f"replicas of p{pid} differ after settling: {self._describe()}")
        self.stats["settled"] += 1
