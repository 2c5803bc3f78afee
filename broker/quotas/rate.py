"""Kafka's windowed rate (``SampledStat`` + ``Rate``, as the quota sensors use it), pure.

``samples`` windows of ``window_ms`` each; a value is added to the current window, which is
replaced by the next (restarted at the time of the record) once it is ``window_ms`` old.
Windows older than ``samples * window_ms`` count as empty. The rate is the sum of the windows
over the elapsed time since the oldest window started, that time being at least
``samples - 1`` full windows (so a first burst is not measured over a few milliseconds).

``throttle_ms`` is Kafka's ``QuotaUtils.throttleTime``: for an observed rate O above a bound T
measured over W, the delay X that brings O * W / (W + X) down to T: X = (O - T) / T * W.
"""

from __future__ import annotations

__all__ = ["WindowedRate"]


class WindowedRate:
    __slots__ = ("_current", "_starts", "_values", "samples", "window_ms")

    def __init__(self, samples: int, window_ms: int, now_ms: float) -> None:
        if samples < 1 or window_ms < 1:
            raise ValueError("samples and window_ms must be at least 1")
        self.samples = samples
        self.window_ms = window_ms
        self._starts = [float(now_ms)]
        self._values = [0.0]
        self._current = 0

    def record(self, value: float, now_ms: float) -> None:
        i = self._current
        if now_ms - self._starts[i] >= self.window_ms:
            i = (i + 1) % self.samples
            if i >= len(self._starts):
                self._starts.append(float(now_ms))
                self._values.append(0.0)
            else:
                self._starts[i] = float(now_ms)
                self._values[i] = 0.0
            self._current = i
        self._values[i] += value

    def _purge(self, now_ms: float) -> None:
        expire = self.samples * self.window_ms
        starts, values = self._starts, self._values
        for i, start in enumerate(starts):
            if now_ms - start >= expire:
                starts[i] = float(now_ms)
                values[i] = 0.0

    def window_size_ms(self, now_ms: float) -> float:
        """The time the rate is measured over (Kafka's ``Rate.windowSize``)."""
        self._purge(now_ms)
        elapsed = now_ms - min(self._starts)
        full = int(elapsed // self.window_ms)
        if full < self.samples - 1:
            elapsed += (self.samples - 1 - full) * self.window_ms
        return elapsed if elapsed > 0 else 1.0

    def rate(self, now_ms: float) -> float:
        """Units per second."""
        size = self.window_size_ms(now_ms)
        return sum(self._values) * 1000.0 / size

    def throttle_ms(self, bound: float, now_ms: float) -> int:
        """0 while the rate is within ``bound`` (per second); else the delay that brings it
        back to the bound if nothing more is recorded."""
        size = self.window_size_ms(now_ms)
        observed = sum(self._values) * 1000.0 / size
        if observed <= bound:
            return 0
        return round((observed - bound) / bound * size)
