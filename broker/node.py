"""A node's lifecycle: start the roles, run until told to stop, stop in reverse order.

Start order (Kafka's KafkaRaftServer): the Raft manager over the metadata log (a voter on
controllers, an observer on brokers) with a ``MetadataLoader`` that keeps the committed
``MetadataImage``; the controller role's ``ControllerService`` (active while this node leads the
quorum); the broker role's partition logs (``LogManager``) and periodic log work; the Kafka
listeners (controller listener: Raft and controller RPCs; broker listeners: client APIs); then
Raft itself, and for a broker the registration and heartbeats, waiting until the controller
unfences it. Shutdown: a broker first asks for a controlled shutdown (leadership moves away),
then listeners, controller, Raft (a leader resigns) and logs stop, in that order.

``run_node`` owns the event loop (uvloop when importable), so the caller stays synchronous.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from broker.admin.apis import AdminApis
from broker.admin.client_quotas import ClientQuotaApis
from broker.admin.http import AdminHttpServer
from broker.admin.topic_partitions import TopicPartitionsApi
from broker.client.security import inter_node_security
from broker.config import KafkaConfig
from broker.controller.apis import ControllerApis
from broker.controller.channel import ControllerChannel, ControllerUnavailableError
from broker.controller.engine import QuorumEngine, create_engine
from broker.controller.host import ControllerService
from broker.controller.lifecycle import BrokerLifecycleManager
from broker.controller.metadata_loader import MetadataLoader
from broker.controller.quorum_bootstrap import local_kraft_version, quorum_voters
from broker.controller.raft_driver import RAFT_API_VERSIONS
from broker.controller.scram_translation import alter_scram_timed_out
from broker.controller.snapshot_files import FileSnapshotStore
from broker.controller.voter_forwarding import voter_change_forwarders
from broker.groups.apis import GroupApis
from broker.log_tasks import start_log_tasks
from broker.network.context import ApiFeatures, ListenerSpec, RequestContext
from broker.network.dispatch import ApiDispatcher
from broker.network.limits import LimitsConfig, raise_fd_limit
from broker.network.server import KafkaServer
from broker.protocol.api_keys import API_SPECS, ApiKey
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import describe_cluster
from broker.quotas.enforce import ClientQuotas
from broker.replication.apis import ADVERTISED as DATA_API_VERSIONS
from broker.replication.apis import DataApis
from broker.replication.log_dirs import LogDirApis
from broker.replication.replica_manager import ReplicaManager
from broker.security.acl_apis import AclApis
from broker.security.api_authz import AuthzChecker, secure_handlers
from broker.security.authorizer import AuthorizerConfig, AuthorizerHolder
from broker.security.listener_security import listener_security
from broker.security.sasl_server import sasl_handlers
from broker.security.scram_apis import describe_scram_handler
from broker.transactions.apis import ADVERTISED as TXN_API_VERSIONS
from broker.transactions.apis import TransactionApis
from kraft.controller import ControllerConfig, QuorumController
from kraft.controller.feature_control import KRAFT_VERSION, SUPPORTED_FEATURES
from kraft.image import Endpoint as BrokerEndpoint
from kraft.metadata_records import decode_metadata_record
from storage.errors import StorageError
from storage.fileutil import make_dirs
from storage.log_config import LogConfig
from storage.log_dir_ids import read_directory_ids
from storage.log_manager import LogManager, fatal_log_dir_failure
from storage.meta_properties import metadata_version_level, read_bootstrap

__all__ = ["Node", "run_node"]

logger = logging.getLogger(__name__)

STARTED_MESSAGE = "Kafka Server started"


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


METADATA_PARTITION_DIR = "__cluster_metadata-0"
SECURITY_PROTOCOL_IDS = {"PLAINTEXT": 0, "SSL": 1, "SASL_PLAINTEXT": 2, "SASL_SSL": 3}
CONTROLLED_SHUTDOWN_TIMEOUT_S = 30.0
QUORUM_LOST_GRACE_S = 2.0


class Node:
    """One process running the broker role, the controller role, or both."""

    def __init__(self, config: KafkaConfig, cluster_id: str) -> None:
        self.config = config
        self.cluster_id = cluster_id
        self.server: KafkaServer | None = None
        self._shutdown: asyncio.Event | None = None
        self.shutdown_reason: str | None = None
        self.exit_code = 0  # 1 after a fatal failure (``fatal``)
        self.log_manager: LogManager | None = None
        self._log_tasks: list[asyncio.Task[None]] = []
        self.raft: QuorumEngine | None = None
        self.loader = MetadataLoader(config.node_id)
        self.controller: ControllerService | None = None
        self.channel: ControllerChannel | None = None
        self.lifecycle: BrokerLifecycleManager | None = None
        self.replica_manager: ReplicaManager | None = None
        self.admin: AdminApis | None = None
        self.group_coordinator: GroupApis | None = None
        self.txn_coordinator: TransactionApis | None = None
        self.data_apis: DataApis | None = None
        self.client_quotas: ClientQuotas | None = None
        self.admin_http: AdminHttpServer | None = None
        self.voters: dict[int, tuple[str, int]] = {}
        self.before_stop: Callable[[], None] | None = None
        # The authorizer (authorizer.class.name), over the ACLs of this node's image.
        authz = AuthorizerConfig.from_config(config.get)
        self.authz: AuthzChecker | None = None if authz is None else AuthzChecker(
            AuthorizerHolder(authz, lambda: self.loader.image), lambda: self.loader.image)

    async def start(self) -> None:
        cfg = self.config
        roles = ",".join(sorted(cfg.process_roles))
        logger.info("Starting node %d with process.roles=%s", cfg.node_id, roles)
        logger.info("Listeners: %s", ", ".join(str(e) for e in cfg.listeners))
        if cfg.is_broker:
            logger.info(
                "Advertised broker listeners: %s (inter-broker: %s)",
                ", ".join(str(e) for e in cfg.effective_advertised_broker_listeners),
                cfg.inter_broker_listener_name,
            )
        voters = await quorum_voters(
            cfg, self.cluster_id, security=self._controller_security(),
            stopping=lambda: self._shutdown is not None and self._shutdown.is_set())
        if voters is None:  # told to stop while asking the bootstrap servers
            return
        self.voters = voters
        logger.info("Controller quorum voters: %s", ", ".join(
            f"{i}@{h}:{p}" for i, (h, p) in sorted(self.voters.items())))
        logger.info("Admin API listeners: %s", ", ".join(str(e) for e in cfg.admin_listeners))
        logger.info(
            "Log dirs: %s; metadata log dir: %s", ", ".join(cfg.log_dirs), cfg.metadata_log_dir
        )
        metadata_dir = Path(cfg.metadata_log_dir) / METADATA_PARTITION_DIR
        make_dirs(metadata_dir)  # durable: quorum-state and the metadata log live in it
        snapshots = FileSnapshotStore(metadata_dir)
        # controller.quorum.engine: kraft or pysyncobj (broker/controller/engine.py).
        self.raft = raft = create_engine(cfg, self.cluster_id, self.voters, snapshots)
        raft.register(self.loader)
        raft.on_failure = lambda e: self.fatal(
            f"the metadata log dir {cfg.metadata_log_dir} has failed ({e})"
            if isinstance(e, (OSError, StorageError)) else
            f"the metadata quorum driver failed ({e!r})")
        raft.security = self._controller_security()
        self.loader.catch_up_with(lambda: raft.high_watermark)
        self.loader.enable_snapshots(
            snapshots, raft,
            max_bytes=cfg.get("metadata.log.max.record.bytes.between.snapshots"),
            max_interval_ms=cfg.get("metadata.log.max.snapshot.interval.ms"))
        controller_handlers: dict[int, Any] = {}
        if cfg.is_controller:
            controller_config = ControllerConfig.from_kafka_config(cfg)
            boot = read_bootstrap(cfg.metadata_log_dir)
            if boot is not None:
                # The metadata.version chosen at format time (--release-version).
                controller_config = dataclasses.replace(
                    controller_config,
                    metadata_version=metadata_version_level(boot.metadata_version),
                    kraft_version=boot.kraft_version,
                    bootstrap_records=tuple(
                        decode_metadata_record(bytes.fromhex(r))[::2] for r in boot.records))
            qc = QuorumController(controller_config,
                                  random.Random(uuid.uuid4().int))
            self.controller = ControllerService(cfg.node_id, raft, qc, self.loader)
            raft.register(self.controller)
            controller_handlers.update(raft.handlers)
            controller_handlers.update(ControllerApis(self.controller.submit).handlers)
            controller_handlers[ApiKey.DESCRIBE_CLUSTER] = self._describe_cluster_controller
        broker_handlers: dict[int, Any] = {}
        if cfg.is_broker:
            self._start_log_manager()
            self.channel = ControllerChannel(
                cfg.node_id, raft.voters, lambda: raft.leader_and_epoch.leader_id)
            self.channel.security = raft.security
            broker_handlers[ApiKey.DESCRIBE_QUORUM] = self._forward(ApiKey.DESCRIBE_QUORUM)
            broker_handlers[ApiKey.UPDATE_FEATURES] = self._forward(ApiKey.UPDATE_FEATURES)
            broker_handlers.update(voter_change_forwarders(lambda: self.channel))
            self._start_replica_manager(broker_handlers)
            broker_handlers[ApiKey.DESCRIBE_CLUSTER] = self._describe_cluster_broker
            broker_handlers.update(TopicPartitionsApi(lambda: self.loader.image).handlers)
            self.admin = AdminApis(
                cfg.node_id, self.cluster_id, cfg, self.channel, self.loader,
                broker_epoch=lambda: self.lifecycle.broker_epoch if self.lifecycle else -1)
            broker_handlers.update(self.admin.handlers)
            broker_handlers.update(
                AclApis(lambda: self.loader.image, self.admin.forwarder, self.authz).handlers)
            self._start_client_quotas(broker_handlers)
            assert self.replica_manager is not None
            self.group_coordinator = GroupApis(
                cfg, self.replica_manager, lambda: self.loader.image, self.admin.auto_create)
            self.replica_manager.add_leadership_listener(self.group_coordinator.on_leadership)
            self.loader.add_publisher(self.group_coordinator.on_metadata)
            broker_handlers.update(self.group_coordinator.handlers)
            self.group_coordinator.start()
            self.txn_coordinator = TransactionApis(
                cfg, self.replica_manager, lambda: self.loader.image, self.admin.producer_ids)
            self.replica_manager.add_leadership_listener(self.txn_coordinator.on_leadership)
            broker_handlers.update(self.txn_coordinator.handlers)
            self.txn_coordinator.start()
        controller_handlers.update(sasl_handlers())
        describe_scram = describe_scram_handler(lambda: self.loader.image)
        controller_handlers[ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS] = describe_scram
        if cfg.is_broker:
            broker_handlers.update(sasl_handlers())
            broker_handlers[ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS] = describe_scram
            broker_handlers[ApiKey.ALTER_USER_SCRAM_CREDENTIALS] = self._forward(
                ApiKey.ALTER_USER_SCRAM_CREDENTIALS, alter_scram_timed_out)
        await self._start_listeners(controller_handlers, broker_handlers)
        if self.client_quotas is not None:
            self.client_quotas.attach(self.server)
        if cfg.admin_listeners:
            self.admin_http = AdminHttpServer(self)
            assert self.server is not None
            self.server.request_observer = self.admin_http.metrics.requests.observe
            await self.admin_http.start()
        await raft.start()
        if self.controller is not None:
            self.controller.start()
        if cfg.is_broker:
            await self._start_broker_lifecycle()
            # Like Kafka's broker, clients reach it only once it has caught up with the
            # metadata and been unfenced; until then connections are refused and retried.
            assert self.server is not None and self.lifecycle is not None
            if self.lifecycle.unfenced.is_set():
                await self.server.start_serving("broker")
        logger.info("%s", STARTED_MESSAGE)

    def _start_replica_manager(self, broker_handlers: dict[int, Any]) -> None:
        """Partitions on this broker: created after the log manager, fed by the metadata
        loader, serving Produce/Fetch/ListOffsets/OffsetForLeaderEpoch."""
        assert self.log_manager is not None and self.channel is not None
        channel = self.channel
        self.replica_manager = rm = ReplicaManager(
            self.config, self.log_manager, send_to_controller=channel.send,
            broker_epoch=lambda: self.lifecycle.broker_epoch if self.lifecycle else -1)
        cfg = self.config
        name = cfg.inter_broker_listener_name
        rm.inter_broker_security = inter_node_security(
            cfg.originals, name, cfg.listener_security_protocol_map.get(name, "PLAINTEXT"),
            "sasl.mechanism.inter.broker.protocol")
        self.loader.add_publisher(self._replica_publisher(rm))
        rm.log_dir_failure_listeners.append(self._log_dir_failed)
        rm.start()
        self.data_apis = DataApis(rm)
        broker_handlers.update(self.data_apis.handlers)
        broker_handlers.update(LogDirApis(self.log_manager, rm.hosted).handlers)

    def _start_client_quotas(self, broker_handlers: dict[int, Any]) -> None:
        """Client quotas (broker/quotas/): the image's quotas feed the Produce and Fetch hooks;
        DescribeClientQuotas and AlterClientQuotas."""
        assert self.admin is not None
        self.client_quotas = quotas = ClientQuotas.from_config(self.config,
                                                               lambda: self.loader.image)
        self.loader.add_publisher(quotas.on_metadata)
        broker_handlers.update(ClientQuotaApis(self.admin.forwarder,
                                               lambda: self.loader.image).handlers)
        broker_handlers[ApiKey.PRODUCE] = quotas.wrap_produce(broker_handlers[ApiKey.PRODUCE])
        broker_handlers[ApiKey.FETCH] = quotas.wrap_fetch(broker_handlers[ApiKey.FETCH])
        quotas.wrap_mutations(broker_handlers)

    def _replica_publisher(self, rm: ReplicaManager) -> Any:
        """The replica manager acts on metadata only once the image holds this process's own
        registration (Kafka installs its publishers only after the broker registered and caught
        up). A broker restarted within its session timeout is still the leader of record of its
        partitions, perhaps with less data than it had acknowledged (writes it had not fsynced
        are gone); acting on that image would make the followers truncate to its shorter log
        and lose committed records. The controller refuses the new registration until the old
        incarnation's session expired, and fencing it moved those leaderships away first."""
        held = True

        def publish(delta: Any, image: Any) -> None:
            nonlocal held
            if held:
                lc = self.lifecycle
                reg = image.cluster.brokers.get(self.config.node_id)
                if lc is None or reg is None or reg.incarnation_id != lc.incarnation_id:
                    return
                held = False
                delta = None  # reconcile with the whole image once
                logger.info("This broker's registration is in the metadata (offset %d): "
                            "partitions follow the metadata from now on", image.offset)
            rm.on_metadata(delta, image)

        return publish

    async def _start_broker_lifecycle(self) -> None:
        cfg = self.config
        assert self.server is not None and self.channel is not None
        endpoints = []
        for e in cfg.effective_advertised_broker_listeners:
            port = e.port or self.server.port(e.name)
            host = e.host or "localhost"
            proto = cfg.listener_security_protocol_map.get(e.name, "PLAINTEXT")
            endpoints.append(BrokerEndpoint(e.name, host, port, SECURITY_PROTOCOL_IDS[proto]))
        self.lifecycle = lifecycle = BrokerLifecycleManager(
            cfg.node_id, self.cluster_id, self.channel, listeners=endpoints,
            rack=cfg.get("broker.rack"), metadata_offset=lambda: self.loader.offset,
            heartbeat_interval_ms=cfg.get("broker.heartbeat.interval.ms"),
            log_dirs=self._log_dir_ids)
        if self.replica_manager is not None:
            self.replica_manager.log_dir_failure_listeners.append(lambda _d: lifecycle.wake())
        lifecycle.start()
        # Kafka's broker start-up waits until the controller unfences it (metadata caught up);
        # a shutdown request ends the wait.
        assert self._shutdown is not None
        unfenced = asyncio.create_task(lifecycle.unfenced.wait())
        stop = asyncio.create_task(self._shutdown.wait())
        await asyncio.wait({unfenced, stop}, return_when=asyncio.FIRST_COMPLETED)
        for t in (unfenced, stop):
            t.cancel()
        if lifecycle.unfenced.is_set():
            logger.info("Broker %d registered (epoch %d) and unfenced", cfg.node_id,
                        lifecycle.broker_epoch)

    def _forward(self, api_key: int, timed_out: Callable[[Any], Any] | None = None) -> Any:
        async def forward(ctx: RequestContext, header: Any, request: Any) -> Any:
            assert self.channel is not None
            try:
                return await self.channel.send(api_key, request, timeout_s=15.0)
            except ControllerUnavailableError:
                if timed_out is not None:
                    return timed_out(request)
                return API_SPECS[api_key].response.cls(error_code=ErrorCode.REQUEST_TIMED_OUT)
        return forward

    def _describe_cluster_controller(self, ctx: RequestContext, header: Any,
                                     request: Any) -> Any:
        """On the controller listener: the controllers themselves (endpoint type 2)."""
        resp = describe_cluster.RESPONSE
        assert self.raft is not None
        if header.api_version >= 1 and request.endpoint_type not in (1, 2):
            return resp.cls(error_code=ErrorCode.UNSUPPORTED_ENDPOINT_TYPE, cluster_id="")
        nodes = [resp.DescribeClusterBroker(broker_id=i, host=h, port=p)
                 for i, (h, p) in sorted(self.raft.voters.items())]
        leader = self.raft.leader_and_epoch.leader_id
        return resp.cls(error_code=0, endpoint_type=2, cluster_id=self.cluster_id,
                        controller_id=-1 if leader is None else leader, brokers=nodes)

    def _describe_cluster_broker(self, ctx: RequestContext, header: Any, request: Any) -> Any:
        resp = describe_cluster.RESPONSE
        if header.api_version >= 1 and request.endpoint_type != 1:
            return resp.cls(error_code=ErrorCode.UNSUPPORTED_ENDPOINT_TYPE, cluster_id="")
        listener = ctx.connection.listener_name
        # v2 (KIP-1073): fenced brokers too when asked, marked as such.
        with_fenced = header.api_version >= 2 and request.include_fenced_brokers
        brokers = []
        for b in sorted(self.loader.image.cluster.brokers.values(), key=lambda b: b.broker_id):
            ep = b.listener(listener)
            if (b.fenced and not with_fenced) or ep is None:
                continue
            brokers.append(resp.DescribeClusterBroker(broker_id=b.broker_id, host=ep.host,
                                                      port=ep.port, rack=b.rack,
                                                      is_fenced=b.fenced))
        ids = [b.broker_id for b in brokers if not b.is_fenced]
        controller_id = self.config.node_id if self.config.node_id in ids else (
            ids[0] if ids else -1)
        return resp.cls(error_code=0, endpoint_type=1, cluster_id=self.cluster_id,
                        controller_id=controller_id, brokers=brokers)

    async def _start_listeners(self, controller_handlers: dict[int, Any],
                               broker_handlers: dict[int, Any]) -> None:
        cfg = self.config
        controller_names = set(cfg.controller_listener_names)
        advertised = cfg.effective_advertised_broker_listeners if cfg.is_broker else []
        host = advertised[0].host if advertised and advertised[0].host else None
        dispatcher = ApiDispatcher(
            cfg.node_id,
            self.cluster_id,
            advertised={ApiKey.API_VERSIONS: (0, 4), ApiKey.METADATA: (0, 13),
                        **_full_ranges(broker_handlers),
                        **{k: v for k, v in DATA_API_VERSIONS.items()
                           if k in broker_handlers},
                        **{k: v for k, v in TXN_API_VERSIONS.items()
                           if k in broker_handlers}},
            advertised_host=host,
            advertised_port=advertised[0].port if host else None,
            rack=cfg.get("broker.rack"),
            image=lambda: self.loader.image,
            extra_handlers=broker_handlers,
            auto_create=self.admin.auto_create
            if self.admin is not None and cfg.get("auto.create.topics.enable") else None,
        )
        controller_table = {int(k): h for k, h in controller_handlers.items()}
        broker_table: Any = dispatcher.handlers
        if self.authz is not None:  # no authorizer: the plain handlers, nothing in between
            broker_table = secure_handlers(broker_table, self.authz, "broker")
            controller_table = secure_handlers(controller_table, self.authz, "controller")
        controller_advertised = {ApiKey.API_VERSIONS: (0, 4), **_full_ranges(controller_table)}
        controller_advertised.update(
            {k: v for k, v in RAFT_API_VERSIONS.items() if k in controller_advertised})
        specs = []
        for endpoint in cfg.listeners:
            kind = "controller" if endpoint.name in controller_names else "broker"
            if (kind == "controller" and not cfg.is_controller) or (
                kind == "broker" and not cfg.is_broker
            ):
                continue
            security = listener_security(
                cfg.originals, endpoint.name, endpoint.security_protocol, self._scram_credential)
            if kind == "controller":
                specs.append(ListenerSpec(
                    name=endpoint.name, host=endpoint.host, port=endpoint.port, kind=kind,
                    advertised=controller_advertised, handlers=controller_table,
                    features=self._api_features, security=security))
            else:
                specs.append(ListenerSpec(
                    name=endpoint.name, host=endpoint.host, port=endpoint.port, kind=kind,
                    advertised=dispatcher.advertised, handlers=broker_table,
                    features=self._api_features, security=security))
        raise_fd_limit()
        self.server = KafkaServer(specs, max_request_bytes=cfg.get("socket.request.max.bytes"),
                                  backlog=cfg.get("socket.listen.backlog.size"),
                                  limits=LimitsConfig.from_config(cfg))
        await self.server.start(deferred_kinds=frozenset({"broker"}))

    def _controller_security(self) -> Any:
        """TLS/SASL of this node's connections to the controllers (their first controller
        listener, sasl.mechanism.controller.protocol)."""
        cfg = self.config
        name = cfg.controller_listener_names[0]
        return inter_node_security(
            cfg.originals, name, cfg.listener_security_protocol_map.get(name, "PLAINTEXT"),
            "sasl.mechanism.controller.protocol")

    def _scram_credential(self, user: str, mechanism: int) -> Any:
        return self.loader.image.scram.get(user, mechanism)

    def _api_features(self) -> ApiFeatures:
        """ApiVersions v3+: the feature levels this node runs (metadata.version, kraft.version),
        and the cluster's finalized levels as of the metadata offset this node has applied."""
        image = self.loader.image
        finalized = dict(image.features.levels)
        kraft_version = local_kraft_version(self.config, self.raft)
        if finalized and kraft_version is not None:
            finalized[KRAFT_VERSION] = kraft_version
        return ApiFeatures(supported=tuple(sorted(
                               (name, *r) for name, r in SUPPORTED_FEATURES.items())),
                           finalized=tuple(sorted(finalized.items())),
                           epoch=image.offset if image.features.levels else -1)

    def _high_watermarks(self) -> dict[tuple[str, int], int] | None:
        rm = self.replica_manager
        return None if rm is None else rm.high_watermarks()

    def _log_dir_ids(self) -> tuple[list[Any], list[Any]]:
        """(online, offline) log dir ids for the broker's registration and heartbeats: offline
        as the replica manager has them (broker/replication/log_dir_failure.py, whose
        log_dir_failure_listeners wake the heartbeat)."""
        m = self.log_manager
        if m is None:
            return ([], [])
        rm = self.replica_manager
        offline = m.offline_dirs if rm is None else rm.offline_log_dirs()
        ids = m.directory_ids
        return ([i for d, i in ids.items() if d not in offline],
                [i for d, i in ids.items() if d in offline])

    def _start_log_manager(self) -> None:
        cfg = self.config
        defaults = LogConfig.from_topic_configs(cfg.log_config_defaults())
        started = time.monotonic()
        self.log_manager = manager = LogManager.open(cfg.log_dirs, defaults)
        manager.directory_ids = read_directory_ids(cfg.log_dirs)
        logger.info(
            "Loaded %d partition log(s) in %.0f ms; offline log dirs: %s",
            len(manager.all_logs()),
            (time.monotonic() - started) * 1000,
            ", ".join(str(d) for d in sorted(manager.offline_dirs)) or "none",
        )
        fatal = fatal_log_dir_failure(cfg.metadata_log_dir, manager)
        if fatal is not None:
            raise StorageError(f"Shutdown broker because {fatal}")
        self._log_tasks.extend(start_log_tasks(cfg, manager, self._high_watermarks,
                                               lambda: self.replica_manager))

    def _log_dir_failed(self, directory: Path) -> None:
        assert self.log_manager is not None
        fatal = fatal_log_dir_failure(self.config.metadata_log_dir, self.log_manager)
        if fatal is not None:
            self.fatal(fatal)

    def fatal(self, reason: str) -> None:
        """A failure the node cannot serve through (Kafka exits): stop, exit code 1."""
        logger.critical("Shutdown broker because %s", reason)
        self.exit_code = 1
        self.request_shutdown(f"a fatal failure: {reason}")

    def request_shutdown(self, reason: str) -> None:
        """Ask the node to stop (idempotent; safe to call from a signal handler)."""
        if self._shutdown is None:  # not running yet: nothing to stop
            return
        if self._shutdown.is_set():
            logger.info("Shutdown already in progress (%s)", reason)
            return
        self.shutdown_reason = reason
        logger.info("Received %s, shutting down", reason)
        self._shutdown.set()

    async def stop(self) -> None:
        if self.before_stop is not None:  # the node's worker processes (tools/node_workers.py)
            await asyncio.to_thread(self.before_stop)
        if self.lifecycle is not None:
            await self._controlled_shutdown(self.lifecycle)
            await self.lifecycle.stop()
        if self.admin_http is not None:
            await self.admin_http.stop()
        if self.channel is not None:
            await self.channel.close()
        if self.server is not None:
            await self.server.stop()
        if self.controller is not None:
            await self.controller.stop()
        if self.raft is not None:
            await self.raft.shutdown()
        if self.group_coordinator is not None:
            await self.group_coordinator.stop()
        if self.txn_coordinator is not None:
            await self.txn_coordinator.stop()
        if self.data_apis is not None:
            await self.data_apis.close()
        if self.replica_manager is not None:
            await self.replica_manager.stop()
        for task in self._log_tasks:
            task.cancel()
        for task in self._log_tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.log_manager is not None:
            self.log_manager.shutdown(self._high_watermarks())
            logger.info("Partition logs flushed and closed")
        logger.info("Kafka Server shut down cleanly")

    async def _controlled_shutdown(self, lifecycle: BrokerLifecycleManager) -> None:
        """Ask the controller to move leadership away; give up after
        CONTROLLED_SHUTDOWN_TIMEOUT_S, or sooner once no controller has led the quorum for
        QUORUM_LOST_GRACE_S (e.g. the whole cluster is stopping: nobody is left to ask)."""
        raft = self.raft
        done = asyncio.create_task(lifecycle.controlled_shutdown(CONTROLLED_SHUTDOWN_TIMEOUT_S))
        leaderless_since: float | None = None
        while not done.done():
            await asyncio.wait({done}, timeout=0.1)
            leader = raft.leader_and_epoch.leader_id if raft is not None else None
            if leader is not None:
                leaderless_since = None
                continue
            now = time.monotonic()
            leaderless_since = leaderless_since or now
            if now - leaderless_since >= QUORUM_LOST_GRACE_S:
                logger.warning("No active controller for %.0fs: shutting down without a "
                               "controlled shutdown", QUORUM_LOST_GRACE_S)
                done.cancel()
                break
        with contextlib.suppress(asyncio.CancelledError):
            await done

    async def run(self) -> int:
        self._shutdown = asyncio.Event()
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self.request_shutdown, sig.name)
                installed.append(sig)
            except (NotImplementedError, RuntimeError):  # not the main thread, or no support
                pass
        try:
            await self.start()
            await self._shutdown.wait()
            await self.stop()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
        return self.exit_code


def _full_ranges(handlers: dict[int, Any]) -> dict[int, tuple[int, int]]:
    """Advertise every version of each API we have a handler for."""
    out = {}
    for key in handlers:
        v = API_SPECS[key].valid_versions
        out[int(key)] = (v.lowest, v.highest)
    return out


def run_node(config: KafkaConfig, cluster_id: str,
             before_stop: Callable[[], None] | None = None) -> int:
    """Run a node until SIGTERM/SIGINT; return the process exit code (0 on a clean stop).
    ``before_stop`` (blocking, run in a thread) is called first when the node stops."""
    node = Node(config, cluster_id)
    node.before_stop = before_stop
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(node.run())
