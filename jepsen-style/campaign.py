"""A campaign of fault-suite runs across cluster shapes and nemeses, summed up in one table (the
figures the README shows).

    python jepsen-style/campaign.py --out jepsen-campaign               # every shape, 60 s runs
    python jepsen-style/campaign.py --scale 0.25 --time-limit 60        # a quarter of the runs
    python jepsen-style/campaign.py --only rf3-combined,rf5-combined --seed 1000

Each shape runs its share of seeded runs (``jepsen-style/run.py`` with that shape's arguments);
after every run ``<out>/campaign.json`` and ``<out>/campaign.md`` are rewritten, so a long
campaign can be watched and stopped at any time. Exit status 0 when every run was VALID.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import run

DEFAULT_FAULTS = "kill,pause,partition,lose-unsynced"
# Whole-cluster power loss loses unflushed records by design (the default flush policy leaves
# durability to replication), so it runs with every message fsynced.
ALL_FAULTS = "kill,pause,partition,lose-unsynced,lose-unsynced-all"

# (name, description, runs at scale 1, run.py arguments)
SHAPES: list[tuple[str, str, int, list[str]]] = [
    ("rf3-combined", "RF 3 / min.insync 2, 3 combined nodes", 60,
     ["--nodes", "3", "--nemesis", DEFAULT_FAULTS]),
    ("rf5-combined", "RF 5 / min.insync 3, 5 combined nodes", 30,
     ["--nodes", "5", "--nemesis", DEFAULT_FAULTS]),
    ("rf3-controllers", "RF 3 / min.insync 2, 3 brokers + 3 controllers", 30,
     ["--nodes", "3", "--controllers", "3", "--nemesis", DEFAULT_FAULTS]),
    ("rf3-combined-fsync", "RF 3, 3 combined nodes, every message fsynced", 40,
     ["--nodes", "3", "--nemesis", ALL_FAULTS, "--flush-every-message"]),
    ("rf5-combined-fsync", "RF 5, 5 combined nodes, every message fsynced", 20,
     ["--nodes", "5", "--nemesis", ALL_FAULTS, "--flush-every-message"]),
    ("rf3-controllers-fsync", "RF 3, 3 brokers + 3 controllers, every message fsynced", 20,
     ["--nodes", "3", "--controllers", "3", "--nemesis", ALL_FAULTS, "--flush-every-message"]),
]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("jepsen-campaign"))
    ap.add_argument("--time-limit", type=float, default=60.0, help="seconds of faults per run")
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies every shape's runs")
    ap.add_argument("--only", help="comma-separated shape names")
    ap.add_argument("--seed", type=int, default=100_000, help="seed of each shape's first run")
    return ap.parse_args(argv)


def _row(name: str, description: str, nemesis: str) -> dict[str, Any]:
    return {"shape": name, "setup": description, "nemesis": nemesis, "runs": 0,
            "fault_minutes": 0.0, "sends_acknowledged": 0, "anomalies": {},
            "verdicts": {"valid": 0, "invalid": 0, "unknown": 0}, "stuck_clients": 0,
            "seeds": [], "not_valid": []}


def write_table(out: Path, rows: list[dict[str, Any]], started: float) -> None:
    (out / "campaign.json").write_text(json.dumps(
        {"elapsed_s": round(time.monotonic() - started), "shapes": rows}, indent=2))
    header = ("| Setup | Nemeses | Runs | Minutes of faults | Sends acknowledged | Anomalies "
              "| Verdicts |")
    lines = [header, "|---|---|---|---|---|---|---|"]
    for r in rows:
        if not r["runs"]:
            continue
        anomalies = ", ".join(f"{k} {v}" for k, v in sorted(r["anomalies"].items()) if v)
        v = r["verdicts"]
        lines.append(f"| {r['setup']} | {r['nemesis']} | {r['runs']} | "
                     f"{r['fault_minutes']:.1f} | {r['sends_acknowledged']:,} | "
                     f"{anomalies or 'none'} | {v['valid']} valid, {v['unknown']} unknown, "
                     f"{v['invalid']} invalid |")
    (out / "campaign.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if not run.netns_available():
        print("network namespaces are not available (needs root and iproute2)", file=sys.stderr)
        return 2
    only = set(a.only.split(",")) if a.only else None
    shapes = [s for s in SHAPES if only is None or s[0] in only]
    a.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    rows = [_row(name, desc, args[args.index("--nemesis") + 1]) for name, desc, _, args in shapes]
    plan = [(i, k) for i, (_, _, n, _) in enumerate(shapes) for k in range(round(n * a.scale))]
    # Interleave the shapes, so a campaign stopped early still covers every one.
    plan.sort(key=lambda ik: (ik[1], ik[0]))
    for i, k in plan:
        name, _, _, args = shapes[i]
        seed = a.seed + k
        ra = run.parse_args(["--profile", "long", "--time-limit", str(a.time_limit), *args])
        report = run.run_once(ra, seed, a.out / name / f"run-{k + 1}-seed-{seed}")
        row = rows[i]
        row["runs"] += 1
        row["fault_minutes"] += report["fault_seconds"] / 60
        row["sends_acknowledged"] += report["stats"]["sends_acknowledged"]
        for key, count in report["anomalies"].items():
            row["anomalies"][key] = row["anomalies"].get(key, 0) + count
        row["verdicts"][report["verdict"]] += 1
        row["stuck_clients"] += len(report.get("stuck_clients", []))
        row["seeds"].append(seed)
        if report["verdict"] != "valid":
            row["not_valid"].append({"seed": seed, "verdict": report["verdict"],
                                     "reproduce": report["reproduce"]})
        print(f"[{name}] seed {seed}: {report['verdict'].upper()}, "
              f"{report['stats']['sends_acknowledged']} acknowledged, "
              f"{report['fault_seconds']:.0f} s of faults", flush=True)
        write_table(a.out, rows, started)
    write_table(a.out, rows, started)
    print((a.out / "campaign.md").read_text())
    return 0 if all(r["verdicts"]["valid"] == r["runs"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
