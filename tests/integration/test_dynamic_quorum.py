"""KIP-853 inside the quorum, with real processes: a controller formatted ``--standalone``
grows to three voters through AddRaftVoter and shrinks through RemoveRaftVoter (of the leader
itself), and no committed metadata is lost.

The two joining controllers are formatted ``--no-initial-controllers`` and start as observers
with ``controller.quorum.bootstrap.servers`` naming the first controller
(broker/controller/quorum_bootstrap.py finds the voters through it); from then on they follow
the voter set in the log (the VotersRecord the first leader wrote, then each change). Each step is checked over the wire: DescribeQuorum v2 (voters with directory ids, the
Nodes endpoints), a metadata write to the active controller after each step (AlterClientQuotas:
a ClientQuotaRecord, which needs no broker), the refusals (DUPLICATE_VOTER, VOTER_NOT_FOUND);
at the end the stopped controllers' metadata logs are read back: every record written is in
each of them, and so are the voter sets. (The refusal of a new voter that has not caught up,
and of a second change while one is pending, are the simulation's, tests/sim/.)
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from broker.client import KafkaConnection, KafkaConnectionError, KafkaTimeoutError
from broker.controller.metadata_log import MetadataLog
from broker.controller.raft_voters import snapshot_voters
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import (
    add_raft_voter,
    alter_client_quotas,
    describe_quorum,
    remove_raft_voter,
    update_raft_voter,
)
from kraft.metadata_records import MetadataRecordType, decode_metadata_record
from kraft.voters import VOTERS_TYPE, decode_voters
from storage.meta_properties import parse_uuid, read_meta_properties
from tools.launcher import (
    CONTROLLER,
    LOOPBACK,
    READY_LINE,
    NodeProcess,
    NodeSpec,
    free_ports,
    random_cluster_id,
    server_properties,
)

FAST = {"controller.quorum.election.timeout.ms": "500",
        "controller.quorum.fetch.timeout.ms": "1000"}


def call(address: tuple[str, int], api_key: int, req: Any, timeout_s: float = 10.0) -> Any:
    async def run() -> Any:
        conn = await KafkaConnection.connect(*address, timeout_s=timeout_s)
        try:
            return await conn.send(api_key, req, timeout_s=timeout_s)
        finally:
            await conn.close()
    return asyncio.run(run())


def describe(nodes: dict[int, NodeProcess]) -> Any | None:
    R = describe_quorum.REQUEST
    req = R.cls(topics=[R.TopicData(topic_name="__cluster_metadata",
                                    partitions=[R.PartitionData(partition_index=0)])])
    for n in nodes.values():
        if not n.alive():
            continue
        try:
            resp = call((LOOPBACK, n.spec.controller_port), ApiKey.DESCRIBE_QUORUM, req, 2.0)
        except (KafkaConnectionError, KafkaTimeoutError, OSError):
            continue
        p = resp.topics[0].partitions[0] if resp.topics else None
        if resp.error_code == 0 and p is not None and p.error_code == 0:
            return resp
    return None


def wait_for(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last: {last})")


def leader_port(nodes: dict[int, NodeProcess]) -> int | None:
    resp = describe(nodes)
    if resp is None:
        return None
    leader = resp.topics[0].partitions[0].leader_id
    return nodes[leader].spec.controller_port if leader in nodes else None


def write_marker(nodes: dict[int, NodeProcess], name: str) -> None:
    """A metadata write through the active controller: a quota for user ``name``."""
    R = alter_client_quotas.REQUEST
    req = R.cls(entries=[R.EntryData(
        entity=[R.EntityData(entity_type="user", entity_name=name)],
        ops=[R.OpData(key="producer_byte_rate", value=1024.0, remove=False)])],
        validate_only=False)

    def attempt() -> bool:
        port = leader_port(nodes)
        if port is None:
            return False
        try:
            e = call((LOOPBACK, port), ApiKey.ALTER_CLIENT_QUOTAS, req).entries[0]
        except (KafkaConnectionError, KafkaTimeoutError, OSError):
            return False
        return e.error_code == 0

    wait_for(attempt, 60, f"the quota of {name} to be written")


def directory_of(node: NodeProcess) -> uuid.UUID:
    meta = read_meta_properties(node.data_dir)
    assert meta is not None and meta.directory_id
    return uuid.UUID(bytes=parse_uuid(meta.directory_id))


def add_voter(nodes: dict[int, NodeProcess], new: NodeProcess) -> int:
    R = add_raft_voter.REQUEST
    req = R.cls(cluster_id=None, timeout_ms=20000, voter_id=new.node_id,
                voter_directory_id=directory_of(new),
                listeners=[R.Listener(name="CONTROLLER", host=LOOPBACK,
                                      port=new.spec.controller_port)])
    port = wait_for(lambda: leader_port(nodes), 30, "a leader")
    return call((LOOPBACK, port), ApiKey.ADD_RAFT_VOTER, req, 30.0).error_code


def voters_of(resp: Any) -> dict[int, uuid.UUID]:
    return {v.replica_id: v.replica_directory_id
            for v in resp.topics[0].partitions[0].current_voters}


def markers_in_log(node: NodeProcess) -> tuple[set[str], list[list[int]]]:
    log = MetadataLog.open(node.data_dir)
    try:
        mem = log.memory
        names: set[str] = set()
        voter_sets: list[list[int]] = []
        for e in mem.entries_from(mem.start_offset, mem.end_offset - mem.start_offset):
            if e.control:
                if e.control_type == VOTERS_TYPE:
                    voter_sets.append(sorted(decode_voters(e.data).ids))
                continue
            rtype, _v, rec = decode_metadata_record(e.data)
            if rtype == MetadataRecordType.CLIENT_QUOTA_RECORD:
                names.add(rec.entity[0].entity_name)
        return names, voter_sets
    finally:
        log.close()


@pytest.fixture
def controllers(tmp_path: Path) -> Any:
    ports = free_ports(3)
    nodes: dict[int, NodeProcess] = {}
    for i, port in enumerate(ports, start=1):
        spec = NodeSpec(i, (CONTROLLER,), controller_port=port)
        nodes[i] = NodeProcess(spec, tmp_path / f"node-{i}")
        nodes[i].dir.mkdir(parents=True)
    yield nodes
    for n in nodes.values():
        if n.alive():
            n.kill()


def test_standalone_grows_to_three_and_shrinks_without_losing_metadata(
        controllers: dict[int, NodeProcess]) -> None:
    nodes = controllers
    cluster_id = random_cluster_id()
    first = nodes[1]
    props = server_properties(first.spec, "", first.data_dir, settings=FAST)
    del props["controller.quorum.voters"]
    props["controller.quorum.bootstrap.servers"] = f"{LOOPBACK}:{first.spec.controller_port}"
    first.write_config(props)
    first.format(cluster_id, extra_args=["--standalone"])
    # The bootstrap checkpoint holds the first voter set, with its directory id and endpoint.
    checkpoint = first.data_dir / "__cluster_metadata-0" / "00000000000000000000-0000000000.checkpoint"
    boot = snapshot_voters(checkpoint.read_bytes())
    assert boot is not None and [(n.voter_id, n.directory_id, n.endpoints[0].port)
                                 for n in boot.nodes] == \
        [(1, directory_of(first), first.spec.controller_port)]
    first.start()
    first.wait_for(READY_LINE, 60)
    resp = wait_for(lambda: describe({1: first}), 30, "the standalone controller to lead")
    assert voters_of(resp) == {1: directory_of(first)}
    write_marker(nodes, "before")

    # Two more controllers, formatted to join: observers until added.
    for i in (2, 3):
        n = nodes[i]
        p = server_properties(n.spec, "", n.data_dir, settings=FAST)
        del p["controller.quorum.voters"]
        p["controller.quorum.bootstrap.servers"] = f"{LOOPBACK}:{first.spec.controller_port}"
        n.write_config(p)
        n.format(cluster_id, extra_args=["--no-initial-controllers"])
        n.start()
        n.wait_for(READY_LINE, 60)

    def observing(i: int) -> bool:
        r = describe(nodes)
        return r is not None and i in {o.replica_id for o in r.topics[0].partitions[0].observers}

    for i in (2, 3):
        wait_for(lambda i=i: observing(i), 30, f"node {i} to fetch as an observer")
        assert add_voter(nodes, nodes[i]) == ErrorCode.NONE
    resp = wait_for(lambda: describe(nodes), 30, "a leader")
    assert voters_of(resp) == {i: directory_of(nodes[i]) for i in (1, 2, 3)}
    assert sorted(n.node_id for n in resp.nodes) == [1, 2, 3]
    assert {n.node_id: n.listeners[0].port for n in resp.nodes} == \
        {i: nodes[i].spec.controller_port for i in (1, 2, 3)}
    # A voter already in the set is refused as Kafka does; so is a node that is not fetching
    # (it cannot catch up within the request's timeout), and a follower sends the caller on.
    assert add_voter(nodes, nodes[2]) == ErrorCode.DUPLICATE_VOTER
    R = add_raft_voter.REQUEST
    ghost = R.cls(cluster_id=cluster_id, timeout_ms=300, voter_id=9,
                  voter_directory_id=uuid.uuid4(),
                  listeners=[R.Listener(name="CONTROLLER", host=LOOPBACK, port=1)])
    leader_id = resp.topics[0].partitions[0].leader_id
    follower = next(i for i in (1, 2, 3) if i != leader_id)
    assert call((LOOPBACK, nodes[leader_id].spec.controller_port), ApiKey.ADD_RAFT_VOTER,
                ghost).error_code == ErrorCode.REQUEST_TIMED_OUT
    assert call((LOOPBACK, nodes[follower].spec.controller_port), ApiKey.ADD_RAFT_VOTER,
                ghost).error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER
    ghost.cluster_id = "another-cluster"
    assert call((LOOPBACK, nodes[leader_id].spec.controller_port), ApiKey.ADD_RAFT_VOTER,
                ghost).error_code == ErrorCode.INCONSISTENT_CLUSTER_ID
    # UpdateRaftVoter: voter 3 re-announces its endpoint under another listener name.
    U = update_raft_voter.REQUEST
    upd = U.cls(cluster_id=cluster_id, current_leader_epoch=-1, voter_id=3,
                voter_directory_id=directory_of(nodes[3]),
                listeners=[U.Listener(name="CONTROLLER2", host=LOOPBACK,
                                      port=nodes[3].spec.controller_port)],
                kraft_version_feature=U.KRaftVersionFeature(min_supported_version=0,
                                                            max_supported_version=1))
    uresp = call((LOOPBACK, nodes[leader_id].spec.controller_port), ApiKey.UPDATE_RAFT_VOTER,
                 upd)
    assert uresp.error_code == ErrorCode.NONE and uresp.current_leader.leader_id == leader_id
    named = {n.node_id: n.listeners[0].name for n in describe(nodes).nodes}
    assert named[3] == "CONTROLLER2" and named[2] == "CONTROLLER"
    write_marker(nodes, "grown")

    # Remove the leader itself (the standalone controller): it leads until the removal
    # commits, then steps down, and one of the other two takes over.
    R = remove_raft_voter.REQUEST
    removed = nodes[leader_id]
    rresp = call((LOOPBACK, removed.spec.controller_port), ApiKey.REMOVE_RAFT_VOTER,
                 R.cls(cluster_id=None, voter_id=leader_id,
                       voter_directory_id=directory_of(removed)), 30.0)
    assert rresp.error_code == ErrorCode.NONE, rresp
    rest = {i: n for i, n in nodes.items() if i != leader_id}

    def shrunk() -> Any:
        r = describe(rest)
        return r if r is not None and set(voters_of(r)) == set(rest) else None

    resp = wait_for(shrunk, 30, "the two remaining voters to lead")
    assert resp.topics[0].partitions[0].leader_id in rest
    # Removing it again: not a voter any more.
    again = call((LOOPBACK, nodes[resp.topics[0].partitions[0].leader_id].spec.controller_port),
                 ApiKey.REMOVE_RAFT_VOTER, R.cls(cluster_id=None, voter_id=leader_id,
                                                 voter_directory_id=directory_of(removed)))
    assert again.error_code == ErrorCode.VOTER_NOT_FOUND
    write_marker(rest, "shrunk")

    # A remaining voter restarts and still knows the voter set (from its log).
    other = next(iter(rest.values()))
    other.stop()
    other.start()
    other.wait_for(READY_LINE, 60)
    write_marker(rest, "restarted")
    hw_resp = wait_for(shrunk, 30, "the quorum after the restart")
    hw = hw_resp.topics[0].partitions[0].high_watermark

    def caught_up() -> bool:
        r = describe(rest)
        if r is None:
            return False
        rows = r.topics[0].partitions[0].current_voters
        return all(v.log_end_offset >= hw for v in rows)

    wait_for(caught_up, 30, "the voters to reach the high watermark")
    for n in nodes.values():
        n.stop()
    expected = {"before", "grown", "shrunk", "restarted"}
    for i, n in nodes.items():
        names, voter_sets = markers_in_log(n)
        if i in rest:
            assert expected <= names, (i, names)
        else:
            assert {"before", "grown"} <= names, (i, names)
        assert voter_sets[0] == [1] and [1, 2, 3] in voter_sets, (i, voter_sets)
