"""The boundary between the metadata quorum's users and the engine that replicates its log.

The controller (``host.ControllerService``), the metadata loader (``metadata_loader``) and the
node (``broker/node.py``, the admin API's quorum views, metrics) use one ``QuorumEngine``:
they append encoded metadata records as the leader of an epoch, and learn of committed
batches, loaded snapshots and leadership changes as a ``QuorumListener``. Two engines
implement it:

- ``kraft`` (the default): ``raft_driver.RaftManager``, KIP-595 Raft over the Kafka wire
  protocol; brokers are observers that Fetch the log from the leader.
- ``pysyncobj`` (``pysyncobj_engine.PysyncobjEngine``, controllers only): the controllers
  replicate the same batches of encoded KIP-631 records through the pysyncobj library and
  keep the committed ones as an ordinary metadata log, which they serve read-only to the
  brokers over the same Fetch / FetchSnapshot, so brokers keep their KRaft observer.

``controller.quorum.engine`` picks it (``create_engine``); nothing of pysyncobj is imported
when the engine is kraft.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from broker.controller.raft_driver import CommittedBatch, LeaderAndEpoch, RaftManager
from broker.controller.raft_voters import dynamic_quorum
from kraft.messages import QuorumDescription, SnapshotId

if TYPE_CHECKING:
    from broker.config import KafkaConfig
    from broker.controller.snapshot_files import FileSnapshotStore

__all__ = ["ENGINES", "CommittedBatch", "LeaderAndEpoch", "QuorumEngine", "QuorumListener",
           "create_engine"]

ENGINES = ("kraft", "pysyncobj")


@runtime_checkable
class QuorumListener(Protocol):
    """What an engine tells its users, in log order, on the event loop. A listener may also
    have ``handle_load_snapshot(snapshot_id, data)``: the whole state below
    ``snapshot_id.end_offset``, given before any batch above it."""

    def handle_commit(self, batch: CommittedBatch) -> None: ...

    def handle_leader_change(self, leader: LeaderAndEpoch) -> None: ...


@runtime_checkable
class QuorumEngine(Protocol):
    """A node's metadata quorum (see the module doc). Offsets and epochs are those of the
    metadata log: committed batches carry them, ``append`` returns them, brokers fetch by
    them."""

    node_id: int
    cluster_id: str
    voters: dict[int, tuple[str, int]]
    security: Any
    failed: BaseException | None
    on_failure: Callable[[BaseException], None] | None

    @property
    def handlers(self) -> Mapping[int, Callable[..., Any]]:
        """The API handlers the engine serves on the controller listener (by API key)."""

    async def start(self) -> None: ...

    async def shutdown(self, *, graceful: bool = True) -> None: ...

    def register(self, listener: Any) -> None:
        """Before ``start``: the listener sees every committed entry from the log start (or
        the snapshot below it)."""

    @property
    def leader_and_epoch(self) -> LeaderAndEpoch: ...

    @property
    def high_watermark(self) -> int: ...

    @property
    def epoch(self) -> int: ...

    @property
    def log_end_offset(self) -> int: ...

    @property
    def epoch_start_offset(self) -> int | None:
        """As leader, the offset of its epoch's first entry; once that entry is handed to the
        listeners as committed, everything before it has been too."""

    def is_leader(self) -> bool: ...

    def append(self, records: list[bytes], *, epoch: int) -> int:
        """Append as the leader of ``epoch``; the offset of the last record, committed or
        not later (``handle_commit`` says which). ``kraft.raft.NotLeader`` otherwise."""

    def describe_quorum(self) -> QuorumDescription:
        """The leader's view of voters and observers (``NotLeader`` elsewhere)."""

    def snapshot_taken(self, snapshot_id: SnapshotId) -> None:
        """A snapshot of the state below ``snapshot_id.end_offset`` is in the snapshot store:
        the log below it may go."""


def create_engine(config: KafkaConfig, cluster_id: str, voters: dict[int, tuple[str, int]],
                  snapshots: FileSnapshotStore) -> QuorumEngine:
    """The engine ``controller.quorum.engine`` names, for this node. A broker-only node is an
    observer of either engine through KRaft's Fetch, so it always runs ``RaftManager``."""
    name = config.get("controller.quorum.engine")
    if name == "pysyncobj" and config.is_controller:
        from broker.controller.pysyncobj_engine import PysyncobjEngine

        return PysyncobjEngine.from_config(config, cluster_id, voters, snapshots)
    return RaftManager(
        config.node_id, cluster_id, voters, config.metadata_log_dir,
        election_timeout_ms=config.get("controller.quorum.election.timeout.ms"),
        fetch_timeout_ms=config.get("controller.quorum.fetch.timeout.ms"),
        request_timeout_ms=config.get("controller.quorum.request.timeout.ms"),
        snapshots=snapshots, **dynamic_quorum(config),
    )
