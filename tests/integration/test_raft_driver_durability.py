"""The KRaft driver (broker/controller/raft_driver.py) makes the epoch and the vote durable before it sends
any message that depends on them: a voter that answered "granted" and then crashed must not
come back without its vote and vote again in the same epoch.

One real ``RaftManager`` (voter 1 of 3) behind a real ``KafkaServer`` controller listener; the
test plays candidate and then leader 2 over a real connection. The driver's outbound boundary
(``_send_all``, where the Ready's messages go to the network) is wrapped to read the
``quorum-state`` file at the moment each message leaves, and the quorum-state write is slowed
down (a slow disk), so that a write still in flight when its messages go out is seen.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from broker.client import KafkaConnection
from broker.controller import raft_wire as wire
from broker.controller.quorum_state_file import (
    QuorumStateData,
    quorum_state_path,
    read_quorum_state,
)
from broker.controller.raft_driver import RAFT_API_VERSIONS, RaftManager
from broker.network.context import ListenerSpec
from broker.network.server import KafkaServer
from broker.protocol.api_keys import ApiKey
from kraft.messages import BeginQuorumEpoch, FetchRequest, Message, VoteRequest, VoteResponse
from tools.proc_cluster import free_ports

CLUSTER = "raft-durability-test"
SLOW_WRITE_S = 0.2


async def wait_for(pred: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


def test_epoch_and_vote_are_on_disk_before_the_messages_that_depend_on_them(
        tmp_path: Path) -> None:
    async def main() -> None:
        port, port2, port3 = free_ports(3)
        voters = {1: ("127.0.0.1", port), 2: ("127.0.0.1", port2), 3: ("127.0.0.1", port3)}
        # Long timeouts: node 1 never starts an election of its own during the test.
        m = RaftManager(1, CLUSTER, voters, str(tmp_path), election_timeout_ms=60_000,
                        fetch_timeout_ms=120_000, request_timeout_ms=500, seed=1)
        path = quorum_state_path(tmp_path)
        sent: list[tuple[Message, QuorumStateData | None]] = []
        send_all = m._send_all
        write = m._qs.write

        def recording_send_all(messages: list[tuple[int, Message]]) -> None:
            on_disk = read_quorum_state(path)
            sent.extend((msg, on_disk) for _dest, msg in messages)
            send_all(messages)

        def slow_write(epoch: int, voted_for: int | None, leader_id: int | None) -> None:
            time.sleep(SLOW_WRITE_S)
            write(epoch, voted_for, leader_id)

        m._send_all = recording_send_all  # type: ignore[method-assign]
        m._qs.write = slow_write  # type: ignore[method-assign]
        handlers = m.handlers
        server = KafkaServer(
            [ListenerSpec("CONTROLLER", port=port, kind="controller")],
            lambda ctx, header, request: handlers[header.api_key](ctx, header, request),
            advertised={ApiKey.API_VERSIONS: (0, 3), **RAFT_API_VERSIONS})
        await server.start()
        await m.start()
        conn = await KafkaConnection.connect("127.0.0.1", port)
        try:
            # Candidate 2 asks for node 1's vote in epoch 5 (both logs are empty).
            vote = VoteRequest(2, 5, last_epoch=0, end_offset=0)
            v = conn.version_for(ApiKey.VOTE)
            resp = await conn.send(ApiKey.VOTE, wire.vote_request_to_wire(vote, CLUSTER, 1, v),
                                   v, timeout_s=5)
            answer = wire.vote_response_from_wire(resp, 1, vote)
            assert answer is not None and answer.granted and answer.epoch == 5
            # Then 2 announces itself leader of epoch 6: node 1 follows and fetches from it.
            begin = wire.begin_quorum_epoch_request_to_wire(BeginQuorumEpoch(2, 6), CLUSTER, 1)
            resp = await conn.send(ApiKey.BEGIN_QUORUM_EPOCH, begin, timeout_s=5)
            assert wire.check_begin_quorum_epoch_response(resp) == 0
            await wait_for(lambda: any(isinstance(msg, FetchRequest) for msg, _ in sent), 5,
                           "a Fetch to the new leader")
        finally:
            await conn.close()
            await m.shutdown(graceful=False)
            await server.stop()

        [(granted, at_vote)] = [(msg, d) for msg, d in sent if isinstance(msg, VoteResponse)]
        assert isinstance(granted, VoteResponse) and granted.granted
        assert at_vote is not None, "the vote was sent before quorum-state existed on disk"
        assert (at_vote.leader_epoch, at_vote.voted_id) == (5, 2), at_vote
        fetch, at_fetch = next((msg, d) for msg, d in sent if isinstance(msg, FetchRequest))
        assert isinstance(fetch, FetchRequest) and fetch.epoch == 6
        assert at_fetch is not None and (at_fetch.leader_epoch, at_fetch.leader_id) == (6, 2), \
            at_fetch
        # No message of any epoch left before that epoch was durable.
        for msg, on_disk in sent:
            epoch = getattr(msg, "epoch", getattr(msg, "candidate_epoch", 0))
            assert on_disk is not None and on_disk.leader_epoch >= epoch, (msg, on_disk)

    asyncio.run(main())
