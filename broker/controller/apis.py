"""Controller-listener handlers: wire request -> domain request -> ``QuorumController`` op ->
domain reply -> wire response.

``submit(op)`` is provided by the node: it runs ``op(controller, now_ms)`` on the active
controller, writes the result's records to Raft, waits until they are committed and returns
``result.response``, or raises ``kraft.controller.NotController`` (mapped to NOT_CONTROLLER
here). Both translations live in ``broker.controller.translation``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from broker.controller import acl_translation as acl_tr
from broker.controller import feature_translation as ftr
from broker.controller import quota_translation as qtr
from broker.controller import translation as tr
from broker.controller.scram_translation import alter_scram_request, alter_scram_response
from broker.protocol.api_keys import ApiKey
from broker.protocol.framing import RequestHeader
from kraft.controller import ControllerResult, NotController, QuorumController

__all__ = ["ControllerApis", "Submit"]

Op = Callable[[QuorumController, int], ControllerResult]
Submit = Callable[[Op], Awaitable[Any]]
Handler = Callable[[Any, RequestHeader, Any], Awaitable[Any]]

# API key -> (wire to domain request, controller operation, domain reply to wire response).
_OPERATIONS: dict[int, tuple[Callable[[Any, int], Any],
                             Callable[[QuorumController, Any, int], ControllerResult],
                             Callable[[Any, Any, int], Any]]] = {
    ApiKey.CREATE_TOPICS: (
        tr.create_topics_request, QuorumController.create_topics, tr.create_topics_response),
    ApiKey.DELETE_TOPICS: (
        tr.delete_topics_request, QuorumController.delete_topics, tr.delete_topics_response),
    ApiKey.CREATE_PARTITIONS: (
        tr.create_partitions_request, QuorumController.create_partitions,
        tr.create_partitions_response),
    ApiKey.BROKER_REGISTRATION: (
        tr.broker_registration_request, QuorumController.register_broker,
        tr.broker_registration_response),
    ApiKey.BROKER_HEARTBEAT: (
        tr.broker_heartbeat_request, QuorumController.broker_heartbeat,
        tr.broker_heartbeat_response),
    ApiKey.ASSIGN_REPLICAS_TO_DIRS: (
        tr.assign_replicas_to_dirs_request, QuorumController.assign_replicas_to_dirs,
        tr.assign_replicas_to_dirs_response),
    ApiKey.UNREGISTER_BROKER: (
        tr.unregister_broker_request, QuorumController.unregister_broker,
        tr.unregister_broker_response),
    ApiKey.ALTER_PARTITION: (
        tr.alter_partition_request, QuorumController.alter_partition,
        tr.alter_partition_response),
    ApiKey.ALLOCATE_PRODUCER_IDS: (
        tr.allocate_producer_ids_request, QuorumController.allocate_producer_ids,
        tr.allocate_producer_ids_response),
    ApiKey.INCREMENTAL_ALTER_CONFIGS: (
        tr.incremental_alter_configs_request, QuorumController.incremental_alter_configs,
        tr.incremental_alter_configs_response),
    ApiKey.ALTER_CONFIGS: (
        tr.alter_configs_request, QuorumController.alter_configs, tr.alter_configs_response),
    ApiKey.ELECT_LEADERS: (
        tr.elect_leaders_request, QuorumController.elect_leaders, tr.elect_leaders_response),
    ApiKey.ALTER_PARTITION_REASSIGNMENTS: (
        tr.alter_partition_reassignments_request, QuorumController.alter_partition_reassignments,
        tr.alter_partition_reassignments_response),
    ApiKey.ALTER_USER_SCRAM_CREDENTIALS: (
        alter_scram_request, QuorumController.alter_user_scram_credentials,
        alter_scram_response),
    ApiKey.LIST_PARTITION_REASSIGNMENTS: (
        tr.list_partition_reassignments_request, QuorumController.list_partition_reassignments,
        tr.list_partition_reassignments_response),
    ApiKey.CREATE_ACLS: (
        acl_tr.create_acls_request, QuorumController.create_acls, acl_tr.create_acls_response),
    ApiKey.DELETE_ACLS: (
        acl_tr.delete_acls_request, QuorumController.delete_acls, acl_tr.delete_acls_response),
    ApiKey.ALTER_CLIENT_QUOTAS: (
        qtr.alter_client_quotas_request, QuorumController.alter_client_quotas,
        qtr.alter_client_quotas_response),
    ApiKey.UPDATE_FEATURES: (
        ftr.update_features_request, QuorumController.update_features,
        ftr.update_features_response),
}


class ControllerApis:
    def __init__(self, submit: Submit) -> None:
        self._submit = submit
        self.handlers: dict[int, Handler] = {
            key: self._handler(*ops) for key, ops in _OPERATIONS.items()}

    async def _run(self, op: Op) -> Any:
        """The reply, or None when this node is not the active controller."""
        try:
            return await self._submit(op)
        except NotController:
            return None

    def _handler(self, to_domain: Callable[[Any, int], Any],
                 operation: Callable[[QuorumController, Any, int], ControllerResult],
                 to_wire: Callable[[Any, Any, int], Any]) -> Handler:
        async def handle(ctx: Any, header: RequestHeader, request: Any) -> Any:
            version = header.api_version
            domain = to_domain(request, version)
            reply = await self._run(lambda c, now: operation(c, domain, now))
            return to_wire(request, reply, version)
        return handle
