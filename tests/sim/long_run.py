"""The long simulation runs (``make sim-long``): every seed of the range runs, failures are
collected rather than ending the run, progress goes to stderr, and the test fails at the end
with the failing seeds and their first lines."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

PROGRESS_EVERY = 1000
MAX_REPORTED = 20


def run_long(run_one: Callable[[int], None], seeds: range, shape: str) -> None:
    failures: list[tuple[int, str]] = []
    started = time.monotonic()
    for i, seed in enumerate(seeds, 1):
        try:
            run_one(seed)
        except AssertionError as e:
            failures.append((seed, str(e).splitlines()[0]))
            print(f"[{shape}] FAILED seed {seed}: {failures[-1][1]}", file=sys.stderr, flush=True)
        if i % PROGRESS_EVERY == 0 or i == len(seeds):
            print(f"[{shape}] {i}/{len(seeds)} seeds, {len(failures)} failed, "
                  f"{time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    assert not failures, (f"{len(failures)} of {len(seeds)} seeds failed ({shape}):\n"
                          + "\n".join(f"  {s}: {m}" for s, m in failures[:MAX_REPORTED]))
