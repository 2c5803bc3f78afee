"""AddRaftVoter (80), RemoveRaftVoter (81) and UpdateRaftVoter (82) on the controller listener
(KIP-853): wire requests to ``RaftManager.add_voter`` / ``remove_voter`` / ``update_voter``
and back.

Only the active controller (the Raft leader) changes the voter set; another controller answers
NOT_LEADER_OR_FOLLOWER (the tool then asks the leader). A request for another cluster gets
INCONSISTENT_CLUSTER_ID, a malformed one INVALID_REQUEST; the node's own refusals (a change
pending, kraft.version 0, a duplicate or unknown voter, a new voter that has not caught up)
come back with Kafka's codes and messages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import add_raft_voter, remove_raft_voter, update_raft_voter
from kraft.codec import ZERO_UUID

if TYPE_CHECKING:
    from broker.controller.raft_driver import RaftManager
    from broker.network.context import RequestContext

__all__ = ["MEMBERSHIP_API_VERSIONS", "MembershipApis"]

MEMBERSHIP_API_VERSIONS: dict[int, tuple[int, int]] = {
    ApiKey.ADD_RAFT_VOTER: (0, 1),
    ApiKey.REMOVE_RAFT_VOTER: (0, 0),
    ApiKey.UPDATE_RAFT_VOTER: (0, 0),
}


class MembershipApis:
    def __init__(self, mgr: RaftManager) -> None:
        self.mgr = mgr
        self.handlers = {
            ApiKey.ADD_RAFT_VOTER: self.handle_add_raft_voter,
            ApiKey.REMOVE_RAFT_VOTER: self.handle_remove_raft_voter,
            ApiKey.UPDATE_RAFT_VOTER: self.handle_update_raft_voter,
        }

    def _precheck(self, cluster_id: str | None, voter_id: int,
                  directory_id: Any) -> tuple[int, str | None] | None:
        if cluster_id is not None and cluster_id != self.mgr.cluster_id:
            return ErrorCode.INCONSISTENT_CLUSTER_ID, None
        if voter_id < 0 or directory_id is None or directory_id == ZERO_UUID:
            return ErrorCode.INVALID_REQUEST, "a voter needs a non-negative id and a directory id"
        if not self.mgr.is_leader():
            return ErrorCode.NOT_LEADER_OR_FOLLOWER, "this controller is not the active one"
        return None

    def handle_add_raft_voter(self, ctx: RequestContext, header: Any, request: Any) -> Any:
        R = add_raft_voter.RESPONSE

        def answer(err: int, message: str | None) -> Any:
            return R.cls(throttle_time_ms=0, error_code=err, error_message=message)

        bad = self._precheck(request.cluster_id, request.voter_id, request.voter_directory_id)
        if bad is not None:
            return answer(*bad)
        endpoints = [(x.name, x.host, x.port) for x in request.listeners]
        if not endpoints:
            return answer(ErrorCode.INVALID_REQUEST, "the new voter has no listeners")

        async def run() -> Any:
            err, message = await self.mgr.add_voter(
                request.voter_id, request.voter_directory_id, endpoints,
                timeout_ms=request.timeout_ms,
                ack_when_committed=bool(getattr(request, "ack_when_committed", True)))
            return answer(err, message)

        return run()

    def handle_remove_raft_voter(self, ctx: RequestContext, header: Any, request: Any) -> Any:
        R = remove_raft_voter.RESPONSE

        def answer(err: int, message: str | None) -> Any:
            return R.cls(throttle_time_ms=0, error_code=err, error_message=message)

        bad = self._precheck(request.cluster_id, request.voter_id, request.voter_directory_id)
        if bad is not None:
            return answer(*bad)

        async def run() -> Any:
            return answer(*await self.mgr.remove_voter(request.voter_id,
                                                       request.voter_directory_id))

        return run()

    def handle_update_raft_voter(self, ctx: RequestContext, header: Any, request: Any) -> Any:
        R = update_raft_voter.RESPONSE
        mgr = self.mgr

        def answer(err: int) -> Any:
            leader = mgr.leader_and_epoch
            host, port = ("", 0)
            if leader.leader_id is not None and leader.leader_id in mgr.voters:
                host, port = mgr.voters[leader.leader_id]
            return R.cls(throttle_time_ms=0, error_code=err, current_leader=R.CurrentLeader(
                leader_id=-1 if leader.leader_id is None else leader.leader_id,
                leader_epoch=leader.epoch, host=host, port=port))

        bad = self._precheck(request.cluster_id, request.voter_id, request.voter_directory_id)
        if bad is not None:
            return answer(bad[0])
        if request.current_leader_epoch not in (-1, mgr.leader_and_epoch.epoch):
            return answer(ErrorCode.FENCED_LEADER_EPOCH
                          if request.current_leader_epoch < mgr.leader_and_epoch.epoch
                          else ErrorCode.UNKNOWN_LEADER_EPOCH)
        f = request.kraft_version_feature
        endpoints = [(x.name, x.host, x.port) for x in request.listeners]

        async def run() -> Any:
            err, _message = await mgr.update_voter(
                request.voter_id, request.voter_directory_id, endpoints,
                f.min_supported_version, f.max_supported_version)
            return answer(err)

        return run()
