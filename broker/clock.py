"""The clock the broker's logic reads time from, as an object, so that a simulation or a test
can hand it another one (the pure cores in ``kraft`` and ``broker.replication.partition`` take
``now_ms`` arguments instead).

``monotonic_ms`` for intervals and timeouts; ``wall_ms`` for what is written down (record and
producer timestamps, expiry by age).
"""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock"]


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds, for intervals."""
        ...

    def monotonic_ms(self) -> int: ...

    def wall_ms(self) -> int:
        """Milliseconds since the epoch."""
        ...


class SystemClock:
    """The real one."""

    __slots__ = ()

    @staticmethod
    def monotonic() -> float:
        return time.monotonic()

    @staticmethod
    def monotonic_ms() -> int:
        return int(time.monotonic() * 1000)

    @staticmethod
    def wall_ms() -> int:
        return int(time.time() * 1000)


SYSTEM_CLOCK: Clock = SystemClock()
