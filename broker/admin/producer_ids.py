"""Producer ids for idempotent producers: InitProducerId, answered from blocks of ids the
controller hands out (AllocateProducerIds); the next block is fetched once 90% of the current
one is used (Kafka's RPCProducerIdManager). A request with a transactional id is the
transaction coordinator's (``broker.transactions.apis``), which takes its ids from here too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from broker.protocol.errors import ErrorCode
from broker.protocol.messages import init_producer_id
from kraft.controller.results import ApiError

__all__ = ["ProducerIdManager", "init_producer_id_response"]

logger = logging.getLogger(__name__)

NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
# How long InitProducerId waits for a producer id block before answering
# COORDINATOR_LOAD_IN_PROGRESS (retriable: the client asks again).
PRODUCER_ID_WAIT_S = 5.0




class ProducerIdManager:
    """Hands out producer ids from blocks the controller allocates (Kafka's
    RPCProducerIdManager): the next block is requested when the id at 90% of the current block
    is handed out, so a busy broker rarely waits. ``allocate()`` returns
    ``(error_code, first_id, length)``."""

    PREFETCH_THRESHOLD = 0.90
    RETRY_BACKOFF_S = 0.05

    def __init__(self, allocate: Callable[[], Awaitable[tuple[int, int, int]]]) -> None:
        self._allocate = allocate
        self._block: tuple[int, int] | None = None  # (first, length)
        self._next_id = 0
        self._next_block: tuple[int, int] | None = None
        self._inflight: asyncio.Task[None] | None = None
        self._backoff_until = 0.0
        self.last_error = ErrorCode.NONE
        self.requests = 0

    def _claim(self) -> int | None:
        if self._block is None:
            return None
        first, length = self._block
        if self._next_id >= first + length:
            return None
        pid = self._next_id
        self._next_id += 1
        if pid == first + int(length * self.PREFETCH_THRESHOLD):
            self._maybe_request()
        return pid

    def _maybe_request(self) -> None:
        if self._next_block is not None or self._inflight is not None:
            return
        if time.monotonic() < self._backoff_until:
            return
        self.requests += 1
        self._inflight = asyncio.create_task(self._fetch(), name="allocate producer ids")

    async def _fetch(self) -> None:
        try:
            code, first, length = await self._allocate()
        except Exception:
            logger.exception("AllocateProducerIds failed")
            code, first, length = int(ErrorCode.UNKNOWN_SERVER_ERROR), -1, 0
        finally:
            self._inflight = None
        if code == ErrorCode.NONE and length > 0 and first >= 0:
            self._next_block = (first, length)
            self.last_error = ErrorCode.NONE
            logger.debug("Got producer id block [%d, %d)", first, first + length)
        else:
            self.last_error = ErrorCode(code)
            self._backoff_until = time.monotonic() + self.RETRY_BACKOFF_S
            logger.info("AllocateProducerIds answered error %s", self.last_error.name)

    async def generate(self, wait_s: float = PRODUCER_ID_WAIT_S) -> int:
        """The next producer id; ApiError(COORDINATOR_LOAD_IN_PROGRESS) if no block arrives
        within ``wait_s`` (Kafka's retriable answer while a block is being fetched)."""
        deadline = time.monotonic() + wait_s
        while True:
            pid = self._claim()
            if pid is not None:
                return pid
            if self._next_block is not None:
                self._block, self._next_block = self._next_block, None
                self._next_id = self._block[0]
                continue
            self._maybe_request()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            task = self._inflight
            if task is not None:
                await asyncio.wait({task}, timeout=remaining)
            else:
                await asyncio.sleep(min(remaining, self.RETRY_BACKOFF_S))
        raise ApiError(ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
                       "Producer ID block is full. Waiting for next block")


async def init_producer_id_response(producer_ids: ProducerIdManager, request: Any) -> Any:
    """The InitProducerId response: a fresh id at epoch 0 for an idempotent producer."""
    R = init_producer_id.RESPONSE

    def error(code: int) -> Any:
        return R.cls(throttle_time_ms=0, error_code=code, producer_id=NO_PRODUCER_ID,
                     producer_epoch=NO_PRODUCER_EPOCH)

    pid, epoch = request.producer_id, request.producer_epoch
    if (pid == NO_PRODUCER_ID) != (epoch == NO_PRODUCER_EPOCH):
        return error(ErrorCode.INVALID_REQUEST)
    if request.transactional_id is not None:
        if request.transactional_id == "":
            return error(ErrorCode.INVALID_REQUEST)
        # Only without the transaction coordinator (it answers these on a broker).
        return error(ErrorCode.COORDINATOR_NOT_AVAILABLE)
    # Idempotent producer (KIP-360 included: an existing id and epoch are not fenced or
    # bumped without a transactional id; Kafka's coordinator always gives a fresh id at
    # epoch 0, and so do we).
    try:
        new_id = await producer_ids.generate()
    except ApiError as e:
        return error(int(e.code))
    return R.cls(throttle_time_ms=0, error_code=0, producer_id=new_id, producer_epoch=0)
