"""The lines every workload's report printer shares (run.py, metadata_run.py, membership.py):
the header, the faults by kind, and the findings (anomalies, their first examples, notes)."""

from __future__ import annotations

import json
from typing import Any


def print_header(r: dict[str, Any], label: str = "", *, fault_seconds: bool = False) -> None:
    """``== seed S (label): VERDICT (why)  (D s[, F s of faults])``."""
    why = f" ({r['unknown_reason']})" if r.get("unknown_reason") else ""
    tag = f" ({label})" if label else ""
    took = f"{r['duration_s']} s" + (f", {r['fault_seconds']} s of faults" if fault_seconds
                                     else "")
    print(f"== seed {r['seed']}{tag}: {r['verdict'].upper()}{why}  ({took})")


def print_faults(r: dict[str, Any]) -> None:
    kinds: dict[str, int] = {}
    for f in r["faults"]:
        kinds[f["f"]] = kinds.get(f["f"], 0) + 1
    print("   faults: " + (", ".join(f"{k} x{v}" for k, v in sorted(kinds.items())) or "none"))


def print_findings(r: dict[str, Any]) -> None:
    found = {k: v for k, v in r["anomalies"].items() if v}
    print("   anomalies: " + (", ".join(f"{k} {v}" for k, v in found.items()) or "none"))
    for k, ex in r["examples"].items():
        print(f"     {k}: {json.dumps(ex[:2], default=str)}")
    for n in r["notes"]:
        print(f"   note: {n}")
