"""The benchmark plots (tools/bench_plot.py): a well-formed page whose curves go where the
data says."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from tools.bench_plot import PAD_B, PAD_T, BenchReport, H


def _polylines(svg: ET.Element) -> list[list[tuple[float, float]]]:
    out = []
    for pl in svg.iter("{http://www.w3.org/2000/svg}polyline"):
        out.append([tuple(map(float, p.split(","))) for p in pl.get("points", "").split()])
    return out


def test_cdf_and_series_are_valid_svg_with_monotone_cdfs(tmp_path: Path) -> None:
    r = BenchReport("t <&> t")
    r.latency_cdf("latency", [("fast", [1.0, 1.2, 1.1, 0.9] * 100),
                              ("slow", [10.0, 20.0, 30.0, 400.0]), ("empty", [])])
    r.series("tput", [("a", [(0.5, 100.0), (1.0, 300.0), (1.5, 200.0)])], "s", "rec/s")
    r.latency_cdf("nothing", [])
    path = tmp_path / "p.html"
    r.write(path)
    text = path.read_text()
    assert "t &lt;&amp;&gt; t" in text and "p50 1.10 ms" in text and "p99 400.00 ms" in text
    svgs = [ET.fromstring(m) for m in re.findall(r"<svg.*?</svg>", text, re.DOTALL)]
    assert len(svgs) == 2  # the empty CDF adds nothing
    fast, slow = _polylines(svgs[0])
    for line in (fast, slow):
        xs, ys = [p[0] for p in line], [p[1] for p in line]
        assert xs == sorted(xs) and ys == sorted(ys, reverse=True)  # y grows upwards
        assert abs(ys[-1] - PAD_T) < 0.01  # ends at 100 %
    assert max(x for x, _ in fast) < min(x for x, _ in slow[1:])  # slower lies to the right
    (series,) = _polylines(svgs[1])
    assert [round(y, 1) for _, y in series][1] < series[0][1]  # 300 is higher than 100
    assert all(PAD_T <= y <= H - PAD_B for _, y in series)
