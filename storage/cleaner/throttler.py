"""Cleaner I/O throttling: ``Throttler`` (Kafka's ``log.cleaner.io.max.bytes.per.second``),
one instance shared by several cleaner threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Throttler:
    """Sleep to keep a byte rate under ``bytes_per_second`` (Kafka's ``Throttler``).

    Call ``maybe_throttle(n)`` after each read or write of ``n`` bytes. Every ``check_interval_s``
    of clock time (or as soon as the bytes seen would take that long at the desired rate) it
    compares the bytes seen with the time spent and sleeps off the difference, then starts a new
    period -- so bursts are bounded by one interval's worth and idle time is not banked.
    Thread-safe; a shared instance bounds the sum over its users (the sleeping thread holds the
    lock, as in Kafka). ``clock`` returns seconds; ``sleep`` takes seconds.
    """

    def __init__(
        self,
        bytes_per_second: float,
        *,
        check_interval_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not bytes_per_second > 0:
            raise ValueError(f"bytes_per_second must be positive, not {bytes_per_second}")
        self.bytes_per_second = float(bytes_per_second)
        self.check_interval_s = check_interval_s
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._period_start = clock()
        self._observed = 0.0
        self.total_bytes = 0
        self.total_sleep_s = 0.0

    def maybe_throttle(self, observed: int) -> None:
        if observed <= 0:
            return
        with self._lock:
            self.total_bytes += observed
            if self.bytes_per_second == float("inf"):
                return
            self._observed += observed
            elapsed = self._clock() - self._period_start
            due = self._observed / self.bytes_per_second  # seconds the bytes should have taken
            if elapsed > self.check_interval_s or due > self.check_interval_s:
                if due > elapsed:
                    self._sleep(due - elapsed)
                    self.total_sleep_s += due - elapsed
                self._period_start = self._clock()
                self._observed = 0.0

    __call__ = maybe_throttle


def _no_throttle(_n: int) -> None:
    pass
