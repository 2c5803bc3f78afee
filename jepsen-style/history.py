"""The history: one JSON object per line, in the order events happened.

Every operation is written twice: an ``invoke`` when it starts and a completion with the same
``process`` and ``f``: ``ok`` (it happened), ``fail`` (it certainly did not happen) or ``info``
(outcome unknown: a timeout, a lost connection). Fields:

- ``index`` (position in the history), ``type``, ``f``, ``process``, ``time`` (ns since start)
- send: ``key``, ``partition``, ``value``; its ``ok`` adds ``offset``
- poll / final-read: ``reads`` = [[partition, offset, value], ...], ``session``;
  poll adds ``watermarks`` = {partition: high watermark seen by that consumer}
- assign: ``session``, ``offsets`` = {partition: start offset, -2 = beginning, -1001 = committed}
- commit / committed: ``offsets`` = {partition: offset}
- nemesis faults: ``process`` = "nemesis", ``f`` = "start-<kind>" / "stop-<kind>", ``value``
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

Op = dict[str, Any]


class History:
    def __init__(self, path: Path | None = None) -> None:
        self.ops: list[Op] = []
        self._lock = threading.Lock()
        self._t0 = time.monotonic_ns()
        self._file = path.open("w") if path is not None else None

    def now(self) -> int:
        return time.monotonic_ns() - self._t0

    def add(self, type_: str, f: str, process: int | str, **fields: Any) -> Op:
        with self._lock:
            op: Op = {"index": len(self.ops), "type": type_, "f": f, "process": process,
                      "time": self.now(), **fields}
            self.ops.append(op)
            if self._file is not None:
                self._file.write(json.dumps(op, separators=(",", ":")) + "\n")
                self._file.flush()
            return op

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def load(path: Path) -> list[Op]:
    """Read a history written by ``History``; JSON turns int dict keys into strings, so
    partition-keyed maps are converted back."""
    ops: list[Op] = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        op = json.loads(line)
        for k in ("watermarks", "offsets"):
            if isinstance(op.get(k), dict):
                op[k] = {int(p): v for p, v in op[k].items()}
        ops.append(op)
    return ops
