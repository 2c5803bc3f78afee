"""A broker's usage meters for one quota key (Kafka's ``ClientQuotaManager``), pure apart from
the clock it is given.

``update(image)`` takes the image's quotas (a change applies to the next request; meters are
kept). ``record(user, client_id, value, now_ms)`` adds to the meter the resolved quota names
and returns the throttle time in ms (0 within quota, or no quota): the value is recorded first
and the excess is paid by a delay afterwards, as in Kafka. ``unrecord`` takes a value back (a
fetch answered empty because it was throttled). Meters idle for an hour are dropped.
"""

from __future__ import annotations

from broker.quotas.rate import WindowedRate
from broker.quotas.resolve import QuotaKeyIndex, Resolved
from kraft.client_quotas import ClientQuotasImage

__all__ = ["QuotaManager"]

_IDLE_MS = 3_600_000
_PURGE_EVERY = 4096


class QuotaManager:
    __slots__ = ("_cache", "_meters", "_records", "active", "index", "key", "max_throttle_ms",
                 "samples", "window_ms")

    def __init__(self, key: str, samples: int = 11, window_ms: int = 1000,
                 max_throttle_ms: int | None = None) -> None:
        self.key = key
        self.samples = samples
        self.window_ms = window_ms
        self.max_throttle_ms = max_throttle_ms
        self.index = QuotaKeyIndex(ClientQuotasImage(), key)
        self.active = False  # any quota of this key configured: the hooks' one check
        self._cache: dict[tuple[str, str], Resolved | None] = {}
        self._meters: dict[tuple[str, str], list[object]] = {}  # tags -> [rate, last used]
        self._records = 0

    def update(self, image: ClientQuotasImage) -> None:
        index = QuotaKeyIndex(image, self.key)
        if index.values == self.index.values:
            return
        self.index = index
        self._cache = {}
        self.active = bool(index)

    def resolve(self, user: str, client_id: str) -> Resolved | None:
        k = (user, client_id)
        try:
            return self._cache[k]
        except KeyError:
            r = self._cache[k] = self.index.resolve(user, client_id)
            if len(self._cache) > 100_000:
                self._cache.clear()
            return r

    def _meter(self, tags: tuple[str, str], now_ms: float) -> WindowedRate:
        entry = self._meters.get(tags)
        if entry is None:
            entry = self._meters[tags] = [WindowedRate(self.samples, self.window_ms, now_ms),
                                          now_ms]
        else:
            entry[1] = now_ms
        self._records += 1
        if self._records % _PURGE_EVERY == 0:
            self._meters = {t: e for t, e in self._meters.items()
                            if now_ms - e[1] < _IDLE_MS}  # type: ignore[operator]
            self._meters.setdefault(tags, entry)
        return entry[0]  # type: ignore[return-value]

    def record(self, user: str, client_id: str, value: float, now_ms: float) -> int:
        resolved = self.resolve(user, client_id)
        if resolved is None:
            return 0
        bound, tags = resolved
        meter = self._meter(tags, now_ms)
        meter.record(value, now_ms)
        ms = meter.throttle_ms(bound, now_ms)
        if self.max_throttle_ms is not None:
            ms = min(ms, self.max_throttle_ms)
        return ms

    def unrecord(self, user: str, client_id: str, value: float, now_ms: float) -> None:
        resolved = self.resolve(user, client_id)
        if resolved is not None:
            self._meter(resolved[1], now_ms).record(-value, now_ms)

    def throttle_ms(self, user: str, client_id: str, now_ms: float) -> int:
        """The current throttle time without recording anything."""
        resolved = self.resolve(user, client_id)
        if resolved is None:
            return 0
        entry = self._meters.get(resolved[1])
        if entry is None:
            return 0
        return entry[0].throttle_ms(resolved[0], now_ms)  # type: ignore[attr-defined]

    def max_value_in_window(self, user: str, client_id: str) -> float | None:
        """What the quota allows over the measured window (Kafka caps a throttled consumer's
        fetch size with it); None: no quota."""
        resolved = self.resolve(user, client_id)
        if resolved is None:
            return None
        return resolved[0] * (self.samples - 1) * self.window_ms / 1000.0
