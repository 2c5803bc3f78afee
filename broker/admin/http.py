"""The HTTP admin API of a node (aiohttp + orjson), on every ``admin.listeners`` endpoint.

Routes and their OpenAPI description come from one table (``broker.admin.openapi.ROUTES``); each
route's ``operation_id`` is the name of its handler method on ``AdminHttpServer``, which
gathers the route families: ``http_cluster`` (cluster, brokers, quorum, status, metrics, the
OpenAPI document), ``http_topics`` (topics, partitions, leader elections), ``http_groups``
(consumer groups) and ``http_transactions`` (transactions, a partition's producers), over
``http_common`` (errors, request validation, the shared node state and clients). Every node,
broker or controller, serves every route:

- **Reads** come from this node's metadata image (brokers, topics, partitions, ISR, configs),
  its Raft manager (the quorum: locally on the Raft leader, otherwise DescribeQuorum sent to
  the active controller) and, for partition offsets, the leader's log when this node leads the
  partition, otherwise ListOffsets to the leader over the Kafka protocol.
- **Writes** (create / delete / alter topics, new partitions, leader elections) reuse the
  broker-side forwarding of ``AdminApis``: the request goes to the active controller (retried
  on another controller while leadership moves, up to the deadline) and is answered only once
  the controller committed it and this node's image shows it. A controller-only node builds
  its own ``ControllerChannel`` + ``AdminApis`` for that.
- **Consumer groups** and **transactions** are read over the Kafka wire protocol
  (FindCoordinator, ListGroups, DescribeGroups, OffsetFetch, ListOffsets; ListTransactions,
  DescribeTransactions, DescribeProducers) from the brokers in the image, so this API does
  not depend on the coordinators' internals.
- With an authorizer, writes are checked for the request's principal
  (``http_authz.py``: the operation Kafka checks for the same change; 403 otherwise).
- ``POST /v1/brokers/{id}/shutdown`` stops *this* node (controlled shutdown first on a broker);
  another id gets 421 Misdirected Request: send it to that node's own admin listener.

Errors are JSON ``{"error_code", "message"[, "field"]}``: 400 for bad input naming the field,
404 unknown resource, 409 conflict, 421 wrong node, 503 no controller / broker reachable, 504
the controller did not answer in time; Kafka error names are kept as ``error_code``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from broker.admin.http_auth import HttpAuthenticator
from broker.admin.http_authz import authorize_writes
from broker.admin.http_cluster import ClusterRoutes
from broker.admin.http_common import MAX_BODY_BYTES, HttpError, json_response
from broker.admin.http_groups import GroupRoutes
from broker.admin.http_metadata import MetadataImageRoutes
from broker.admin.http_records import RecordRoutes
from broker.admin.http_topics import TopicRoutes
from broker.admin.http_transactions import TransactionRoutes
from broker.admin.http_ui import add_ui_routes
from broker.admin.metrics import NodeMetrics
from broker.admin.openapi import ROUTES
from broker.security.listener_security import (
    SecurityConfigError,
    listener_prop,
    listener_tls_context,
)
from broker.security.principal import USER_TYPE, KafkaPrincipal
from broker.security.scram import verify_password
from broker.security.ssl_principal import PrincipalMapper, peer_dn
from kraft.scram_image import ScramCredentialData, ScramMechanism
from storage.errors import ConfigError

__all__ = ["AdminHttpServer"]

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class AdminHttpServer(ClusterRoutes, TopicRoutes, GroupRoutes, RecordRoutes,
                      TransactionRoutes, MetadataImageRoutes):
    """``await start()`` binds every ``admin.listeners`` endpoint; ``await stop()`` closes."""

    def __init__(self, node: Any, metrics: NodeMetrics | None = None) -> None:
        super().__init__(node, metrics)
        self.tls = self._tls_context()
        rules = listener_prop(self.config.originals, "admin", "ssl.principal.mapping.rules")
        try:
            self._mapper = PrincipalMapper(rules)
        except ValueError as e:
            raise ConfigError("ssl.principal.mapping.rules", rules, str(e)) from None
        self.auth = HttpAuthenticator.from_config(
            self.config, credentials=self._scram_credentials, verify=verify_password,
            certificate=self._certificate_principal if self.tls is not None else None)
        self.app = self.build_app()
        self._runner: web.AppRunner | None = None
        self.addresses: list[tuple[str, int]] = []

    def _tls_context(self) -> ssl.SSLContext | None:
        """The https listeners' TLS context: ``listener.name.admin.ssl.*`` falling back to
        ``ssl.*`` (keystore, truststore, ``ssl.client.auth`` for mutual TLS, protocols), built as
        a Kafka SSL listener's (broker/security/listener_security.py); None without https."""
        if not any(e.name == "https" for e in self.config.admin_listeners):
            return None
        try:
            return listener_tls_context(self.config.originals, "admin")
        except SecurityConfigError as e:
            raise ConfigError("admin.listeners",
                              ",".join(str(e) for e in self.config.admin_listeners),
                              f"{e} (https needs listener.name.admin.ssl.* or ssl.* keys)"
                              ) from None

    def _certificate_principal(self, request: web.Request) -> KafkaPrincipal | None:
        """``User:<mapped name>`` of the request's verified client certificate (https with
        ``ssl.client.auth``), None without one."""
        transport = request.transport
        dn = peer_dn(None if transport is None else transport.get_extra_info("ssl_object"))
        return None if dn is None else KafkaPrincipal(USER_TYPE, self._mapper.name(dn))

    def _scram_credentials(self, user: str) -> tuple[ScramCredentialData, ...]:
        """Basic authentication's credentials: the user's SCRAM credentials (both mechanisms)
        in this node's metadata image as it is now, so users created, altered or deleted with
        AlterUserScramCredentials (``kafka-configs``) count from the next request on."""
        scram = self.node.loader.image.scram
        return tuple(c for m in (ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512)
                     if (c := scram.get(user, m)) is not None)

    # -- application ------------------------------------------------------------------------

    def build_app(self) -> web.Application:
        middlewares: list[Any] = [self._logged, self.auth.middleware, self._errors]
        checker = getattr(self.node, "authz", None)
        if checker is not None:  # authorizer.class.name set: writes are checked
            middlewares.append(authorize_writes(checker))
        app = web.Application(middlewares=middlewares, client_max_size=MAX_BODY_BYTES)
        for route in ROUTES:
            app.router.add_route(route.method, route.path, getattr(self, route.operation_id),
                                 name=route.operation_id)
        add_ui_routes(app)
        return app

    @web.middleware
    async def _logged(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Writes are logged at INFO (who changed what, and the outcome); reads at DEBUG."""
        started = time.monotonic()
        resp = await handler(request)
        level = logging.DEBUG if request.method == "GET" else logging.INFO
        if logger.isEnabledFor(level):
            logger.log(level, "Admin API %s %s from %s: %d in %.0f ms", request.method,
                       request.path_qs, request.remote, resp.status,
                       (time.monotonic() - started) * 1000)
        return resp

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except HttpError as e:
            return json_response(e.body(), e.status)
        except web.HTTPException as e:
            # aiohttp's own answers (unknown path, method not allowed, body too large): JSON.
            if e.status < 400:
                raise
            code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED",
                    413: "REQUEST_ENTITY_TOO_LARGE"}.get(e.status, "HTTP_ERROR")
            resp = json_response({"error_code": code, "message": e.reason
                                  + (f": {request.method} {request.path}"
                                     if e.status in (404, 405) else "")}, e.status)
            allow = e.headers.get("Allow")
            if allow:
                resp.headers["Allow"] = allow
            return resp
        except (asyncio.CancelledError, KeyboardInterrupt):
            raise
        except Exception as e:
            logger.exception("Admin API %s %s failed", request.method, request.path)
            return json_response({"error_code": "UNKNOWN_SERVER_ERROR",
                                  "message": f"{type(e).__name__}: {e}"}, 500)

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False,
                                     shutdown_timeout=2.0)
        await self._runner.setup()
        for e in self.config.admin_listeners:
            tls = self.tls if e.name == "https" else None
            known = len(self._runner.addresses)
            site = web.TCPSite(self._runner, e.host or None, e.port, reuse_address=True,
                               ssl_context=tls)
            try:
                await site.start()
            except OSError as exc:
                await self.stop()
                raise OSError(exc.errno, f"cannot listen on admin.listeners entry "
                              f"{e}: {exc.strerror or exc}") from exc
            for addr in self._runner.addresses[known:]:
                self.addresses.append((addr[0], addr[1]))
                logger.info("Admin API listening on %s://%s:%d", e.name, addr[0], addr[1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self._own_channel is not None:
            await self._own_channel.close()
            self._own_channel = None
