"""Running kafkajs (node, ``tests/clients/kafkajs/driver.js``) from the tests: whether it is
installed, and one driver scenario as a list of JSON events."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CLIENT_DIR = REPO / "tests" / "clients" / "kafkajs"
RUN_TIMEOUT_S = 150
# kafkajs warns about its default partitioner on every producer without it.
ENV = {**os.environ, "KAFKAJS_NO_PARTITIONER_WARNING": "1"}


def why_not_installed() -> str | None:
    """None when node and the pinned packages (package-lock.json) are installed, else why the
    kafkajs tests skip."""
    if shutil.which("node") is None:
        return "node is not installed (make system-deps installs nodejs and npm)"
    lock = json.loads((CLIENT_DIR / "package-lock.json").read_text())
    for path, meta in lock["packages"].items():
        if not path.startswith("node_modules/"):
            continue
        installed = CLIENT_DIR / path / "package.json"
        if not installed.exists() or json.loads(installed.read_text())["version"] != \
                meta["version"]:
            return (f"{path} {meta['version']} is not installed: run `npm ci` in "
                    f"{CLIENT_DIR.relative_to(REPO)} (make system-deps does)")
    return None


def driver_command(spec: dict[str, Any]) -> list[str]:
    return ["node", "driver.js", json.dumps(spec)]


def run_driver(bootstrap: str, scenario: str, **spec: Any) -> list[dict[str, Any]]:
    """Runs one scenario against ``bootstrap``; its JSON lines, the last of which must be
    ``end``. kafkajs's own log (warnings) is printed, shown with -s or on failure."""
    spec = {"scenario": scenario, "brokers": bootstrap.split(","), **spec}
    out = subprocess.run(driver_command(spec), cwd=CLIENT_DIR, env=ENV, capture_output=True,
                         text=True, timeout=RUN_TIMEOUT_S, check=False)
    events = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert out.returncode == 0 and events and events[-1]["event"] == "end", \
        f"kafkajs {scenario} failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-5000:]}"
    print(out.stderr[-3000:])
    return events
