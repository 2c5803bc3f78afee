"""Admin requests forwarded to the active controller (Kafka's ForwardingManager), and the wait
until this node's metadata image shows what the controller committed.

``ControllerForwarder.send`` is the one place that sends to the controller: the
``ControllerChannel`` retries on another controller while one answers NOT_CONTROLLER (at the
top level, or in any entry of the answer's per-topic/per-resource list named by
``errors_in``), and a controller that cannot be reached before the deadline gives the caller's
REQUEST_TIMED_OUT answer, as Kafka's forwarding timeout does. ``forward`` adds what every
metadata-changing admin API does around it: the forwarding timeout taken from the request's
own (bounded), the wait (until the same deadline) for the image to show the change, and a zero
throttle time. We wait on the image's *content* (the topic id exists, the config has the
value, ...) rather than on an offset: the image offset only moves on data records, so an offset
taken from the quorum's high watermark could point at a control record and never be reached.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from broker.controller.channel import ControllerUnavailableError
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode
from kraft.image import MetadataImage

__all__ = [
    "DEFAULT_FORWARD_TIMEOUT_S",
    "TIMED_OUT_MESSAGE",
    "ControllerForwarder",
    "ImageCheck",
    "forward_timeouts",
]

logger = logging.getLogger(__name__)

# Forwarding deadline when the request carries no timeout of its own (Kafka's
# request.timeout.ms for the broker-to-controller channel is 30 s).
DEFAULT_FORWARD_TIMEOUT_S = 30.0
MIN_FORWARD_TIMEOUT_S = 1.0
TIMED_OUT_MESSAGE = "The controller did not answer in time."

ImageCheck = Callable[[MetadataImage], bool]
# What a forwarded answer asks to wait for: (what, for the log; the image predicate), or None.
ImageWait = tuple[str, ImageCheck] | None
T = TypeVar("T")


def forward_timeouts(timeout_ms: int | None) -> tuple[float, float]:
    """(forwarding timeout, deadline for the image wait) for a request's ``timeout_ms``."""
    if timeout_ms is None or timeout_ms <= 0:
        forward = DEFAULT_FORWARD_TIMEOUT_S
    else:
        forward = max(MIN_FORWARD_TIMEOUT_S, min(timeout_ms / 1000, DEFAULT_FORWARD_TIMEOUT_S))
    return forward, time.monotonic() + forward


class _ImageWaiters:
    def __init__(self, loader: Any) -> None:
        self._loader = loader
        self._waiters: list[tuple[ImageCheck, asyncio.Future[None]]] = []
        loader.add_publisher(self._published)

    def _published(self, _delta: Any, image: MetadataImage) -> None:
        if not self._waiters:
            return
        keep = []
        for pred, fut in self._waiters:
            if fut.done():
                continue
            try:
                ok = pred(image)
            except Exception:
                logger.exception("image predicate failed")
                ok = True
            if ok:
                fut.set_result(None)
            else:
                keep.append((pred, fut))
        self._waiters = keep

    async def wait(self, pred: ImageCheck, timeout_s: float) -> bool:
        if pred(self._loader.image):
            return True
        if timeout_s <= 0:
            return False
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((pred, fut))
        try:
            await asyncio.wait_for(fut, timeout_s)
            return True
        except TimeoutError:
            return False
        finally:
            if not fut.done():
                fut.cancel()


class ControllerForwarder:
    """Sends admin requests to the active controller over ``channel`` and waits on the image
    published by ``loader``."""

    def __init__(self, channel: Any, loader: Any) -> None:
        self.channel = channel
        self._image_waiters = _ImageWaiters(loader)

    async def send(self, api_key: int, request: Any, timeout_s: float, *,
                   timed_out: Callable[[], T], errors_in: str | None = None) -> Any | T:
        """The controller's answer, or ``timed_out()`` when no controller answered within
        ``timeout_s``. ``errors_in``: the answer's list whose entries carry their own error
        code (NOT_CONTROLLER there is retried like a top-level one)."""
        retry_on: Callable[[Any], bool] | None = None
        if errors_in is not None:
            field = errors_in

            def retry_on(resp: Any) -> bool:
                return any(x.error_code == ErrorCode.NOT_CONTROLLER
                           for x in getattr(resp, field))
        try:
            return await self.channel.send(api_key, request, timeout_s=timeout_s,
                                           retry_on=retry_on)
        except ControllerUnavailableError as e:
            logger.warning("Forwarding %s to the controller failed: %s",
                           ApiKey(api_key).name, e)
            return timed_out()

    async def forward(self, api_key: int, request: Any, *, timeout_ms: int | None,
                      timed_out: Callable[[], Any], errors_in: str | None,
                      shown: Callable[[Any], ImageWait]) -> Any:
        """A metadata-changing admin request, forwarded: the answer (the controller's, or
        ``timed_out()`` with REQUEST_TIMED_OUT in every entry) once the image shows what
        ``shown(answer)`` asks for or the request's deadline passed; throttle time 0."""
        forward_s, deadline = forward_timeouts(timeout_ms)
        resp = await self.send(api_key, request, forward_s, timed_out=timed_out,
                               errors_in=errors_in)
        wait = shown(resp)
        if wait is not None:
            await self.await_image(wait[0], wait[1], deadline)
        resp.throttle_time_ms = 0
        return resp

    async def await_image(self, what: str, pred: ImageCheck, deadline: float) -> None:
        if not await self._image_waiters.wait(pred, deadline - time.monotonic()):
            logger.warning("Metadata image did not show %s before the request deadline", what)
