"""Plots for the benchmarks as one self-contained HTML page of inline SVG (no plotting library,
nothing loaded from elsewhere): ``BenchReport.latency_cdf`` (a latency CDF, log-scaled
milliseconds, one curve per run) and ``BenchReport.series`` (a value over time, e.g. records/s
per interval), then ``BenchReport.write(path)``.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path

__all__ = ["BenchReport"]

W, H, PAD_L, PAD_R, PAD_T, PAD_B = 860, 320, 70, 300, 20, 45
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
          "#7f7f7f")


def _fmt(v: float) -> str:
    if v >= 1_000_000:
        return f"{v / 1e6:.3g}M"
    if v >= 1000:
        return f"{v / 1e3:.3g}K"
    return f"{v:.3g}"


class _Axes:
    def __init__(self, x0: float, x1: float, y0: float, y1: float, log_x: bool) -> None:
        self.log_x = log_x
        self.x0, self.x1 = (math.log10(x0), math.log10(x1)) if log_x else (x0, x1)
        if self.x1 <= self.x0:
            self.x1 = self.x0 + 1
        self.y0, self.y1 = y0, (y1 if y1 > y0 else y0 + 1)

    def x(self, v: float) -> float:
        v = math.log10(max(v, 1e-9)) if self.log_x else v
        return PAD_L + (W - PAD_L - PAD_R) * (v - self.x0) / (self.x1 - self.x0)

    def y(self, v: float) -> float:
        return PAD_T + (H - PAD_T - PAD_B) * (1 - (v - self.y0) / (self.y1 - self.y0))


class BenchReport:
    def __init__(self, title: str) -> None:
        self.title = title
        self.sections: list[str] = []

    def latency_cdf(self, title: str, runs: Sequence[tuple[str, Sequence[float]]]) -> None:
        """``runs``: (label, latencies in ms). x: latency (log scale), y: fraction <= x."""
        runs = [(label, sorted(v)) for label, v in runs if v]
        if not runs:
            return
        lo = max(min(v[0] for _, v in runs), 0.01)
        hi = max(v[-1] for _, v in runs)
        ax = _Axes(lo, max(hi, lo * 10), 0.0, 1.0, log_x=True)
        parts = []
        for i, (label, v) in enumerate(runs):
            n = len(v)
            step = max(1, n // 600)
            pts = [(ax.x(v[j]), ax.y((j + 1) / n)) for j in range(0, n, step)]
            pts.append((ax.x(v[-1]), ax.y(1.0)))
            p50, p99 = v[n // 2], v[min(n - 1, int(n * 0.99))]
            parts.append(self._line(pts, COLORS[i % len(COLORS)],
                                    f"{label}: p50 {p50:.2f} ms, p99 {p99:.2f} ms", i))
        ticks = [10 ** e for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)]
        self.sections.append(self._svg(title, ax, parts, [(t, _fmt(t)) for t in ticks],
                                       [(f / 4, f"{f * 25}%") for f in range(5)],
                                       "latency (ms, log scale)", "fraction of records"))

    def series(self, title: str, runs: Sequence[tuple[str, Sequence[tuple[float, float]]]],
               x_label: str, y_label: str) -> None:
        """``runs``: (label, [(x, y), ...]), e.g. seconds since start -> records/s."""
        runs = [(label, list(pts)) for label, pts in runs if pts]
        if not runs:
            return
        xs = [x for _, pts in runs for x, _ in pts]
        ys = [y for _, pts in runs for _, y in pts]
        ax = _Axes(min(xs), max(xs), 0.0, max(ys) * 1.05, log_x=False)
        parts = [self._line([(ax.x(x), ax.y(y)) for x, y in pts], COLORS[i % len(COLORS)],
                            label, i) for i, (label, pts) in enumerate(runs)]
        xt = [ax.x0 + (ax.x1 - ax.x0) * k / 5 for k in range(6)]
        yt = [ax.y1 * k / 4 for k in range(5)]
        self.sections.append(self._svg(title, ax, parts, [(t, f"{t:.3g}") for t in xt],
                                       [(t, _fmt(round(t))) for t in yt], x_label, y_label))

    @staticmethod
    def _line(pts: Sequence[tuple[float, float]], color: str, label: str, i: int) -> str:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
        ly = PAD_T + 14 + 16 * i
        # Few points (a short run): each one marked, so a single sample is still visible.
        dots = "".join(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{color}"/>'
                       for x, y in pts) if len(pts) <= 40 else ""
        return (f'{dots}<polyline fill="none" stroke="{color}" stroke-width="1.6" points="{path}"/>'
                f'<rect x="{W - PAD_R + 10}" y="{ly - 9}" width="10" height="10" fill="{color}"/>'
                f'<text x="{W - PAD_R + 24}" y="{ly}" font-size="11">{html.escape(label)}</text>')

    @staticmethod
    def _svg(title: str, ax: _Axes, parts: list[str], xticks: list[tuple[float, str]],
             yticks: list[tuple[float, str]], x_label: str, y_label: str) -> str:
        g = [(f'<rect x="{PAD_L}" y="{PAD_T}" width="{W - PAD_L - PAD_R}" '
              f'height="{H - PAD_T - PAD_B}" fill="none" stroke="#888"/>')]
        for v, text in xticks:
            x = ax.x(v)
            if PAD_L - 1 <= x <= W - PAD_R + 1:
                g.append(f'<line x1="{x:.1f}" y1="{PAD_T}" x2="{x:.1f}" y2="{H - PAD_B}" '
                         f'stroke="#eee"/><text x="{x:.1f}" y="{H - PAD_B + 14}" font-size="10" '
                         f'text-anchor="middle">{html.escape(text)}</text>')
        for v, text in yticks:
            y = ax.y(v)
            g.append(f'<line x1="{PAD_L}" y1="{y:.1f}" x2="{W - PAD_R}" y2="{y:.1f}" '
                     f'stroke="#eee"/><text x="{PAD_L - 5}" y="{y + 3:.1f}" font-size="10" '
                     f'text-anchor="end">{html.escape(text)}</text>')
        g.append(f'<text x="{(PAD_L + W - PAD_R) / 2}" y="{H - 8}" font-size="11" '
                 f'text-anchor="middle">{html.escape(x_label)}</text>')
        g.append(f'<text x="14" y="{(PAD_T + H - PAD_B) / 2}" font-size="11" text-anchor="middle" '
                 f'transform="rotate(-90 14 {(PAD_T + H - PAD_B) / 2})">'
                 f'{html.escape(y_label)}</text>')
        return (f"<h2>{html.escape(title)}</h2>"
                f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
                f'font-family="sans-serif">{"".join(g + parts)}</svg>')

    def write(self, path: Path) -> None:
        path.write_text(
            f"<!doctype html><html><head><meta charset='utf-8'><title>"
            f"{html.escape(self.title)}</title></head><body style='font-family:sans-serif'>"
            f"<h1>{html.escape(self.title)}</h1>{''.join(self.sections)}</body></html>\n",
            encoding="utf-8")
