"""``kafka-server-stop``: send SIGTERM to running ``kafka-server-start`` processes (Kafka's
``kafka-server-stop.sh``).

    kafka-server-stop [--process-role=broker|controller|broker,controller] [--node-id=N]
                      [--signal TERM] [--wait SECONDS] [--config-under DIR]

Processes are found through ``/proc/*/cmdline``: a ``kafka-server-start`` console script or
``python -m tools.server_start``. With a filter, each one's config file (resolved against its
working directory, ``--override`` arguments applied) gives its ``node.id`` and
``process.roles``; ``--node-id`` wins over ``--process-role`` when both are given, as in Kafka.
``--config-under DIR`` (ours) limits it to the nodes of one cluster directory. Prints
``No kafka server to stop`` and exits 1 when nothing matches. ``--wait`` waits for the
signalled processes to exit (exit code 1 if one is still running then).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from storage.properties import parse_properties
from tools.launcher import pid_alive

PROG = "kafka-server-stop"
_SCRIPT = "kafka-server-start"
_MODULE = "tools.server_start"


@dataclass(frozen=True, slots=True)
class ServerProcess:
    pid: int
    config: Path | None
    overrides: dict[str, str]

    def properties(self) -> dict[str, str]:
        props: dict[str, str] = {}
        if self.config is not None:
            try:
                props = parse_properties(self.config.read_text())
            except (OSError, ValueError):
                props = {}
        props.update(self.overrides)
        return props


def parse_server_cmdline(argv: Sequence[str], cwd: Path | None) -> tuple[Path | None,
                                                                          dict[str, str]] | None:
    """(config path, overrides) when ``argv`` runs our server, else None."""
    rest: list[str] | None = None
    for i, arg in enumerate(argv):
        if Path(arg).name == _SCRIPT:
            rest = list(argv[i + 1:])
            break
        if arg == _MODULE and i > 0 and argv[i - 1] == "-m":
            rest = list(argv[i + 1:])
            break
    if rest is None:
        return None
    config: Path | None = None
    overrides: dict[str, str] = {}
    it = iter(rest)
    for arg in it:
        if arg == "--override":
            kv = next(it, "")
            key, _, value = kv.partition("=")
            overrides[key.strip()] = value
        elif arg.startswith("--override="):
            key, _, value = arg[len("--override="):].partition("=")
            overrides[key.strip()] = value
        elif arg.startswith("-"):
            continue
        elif config is None:
            p = Path(arg)
            config = p if p.is_absolute() or cwd is None else cwd / p
    return config, overrides


def find_servers(proc: Path = Path("/proc")) -> list[ServerProcess]:
    out: list[ServerProcess] = []
    me = os.getpid()
    try:
        entries = [e for e in proc.iterdir() if e.name.isdigit()]
    except OSError:
        return out
    for entry in entries:
        pid = int(entry.name)
        if pid == me:
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # exited meanwhile, or not ours to read
        argv = [a.decode(errors="replace") for a in raw.split(b"\0") if a]
        try:
            cwd: Path | None = Path(os.readlink(entry / "cwd"))
        except OSError:
            cwd = None
        parsed = parse_server_cmdline(argv, cwd)
        if parsed is not None:
            out.append(ServerProcess(pid, parsed[0], parsed[1]))
    return sorted(out, key=lambda s: s.pid)


def matches(server: ServerProcess, node_id: str | None, role: str | None) -> bool:
    if node_id is None and role is None:
        return True
    props = server.properties()
    if node_id is not None:
        return props.get("node.id", "").strip() == node_id
    roles = {r.strip() for r in props.get("process.roles", "").split(",") if r.strip()}
    return roles == {r.strip() for r in (role or "").split(",") if r.strip()}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description="Stop running Kafka servers.")
    p.add_argument("--process-role", help="broker, controller or broker,controller")
    p.add_argument("--node-id", help="only the node with this node.id")
    p.add_argument("--signal", default=os.environ.get("SIGNAL", "TERM"),
                   help="signal name (default TERM, or $SIGNAL)")
    p.add_argument("--config-under", metavar="DIR",
                   help="only servers whose config file is inside DIR (one cluster of many)")
    p.add_argument("--wait", type=float, default=0.0,
                   help="seconds to wait for the processes to exit (default: do not wait)")
    args = p.parse_args(argv)
    name = args.signal.upper()
    name = name if name.startswith("SIG") else f"SIG{name}"
    try:
        sig = signal.Signals[name]
    except KeyError:
        print(f"Error: unknown signal {args.signal}", file=sys.stderr)
        return 1
    if args.node_id is not None and args.process_role is not None:
        print("When both node-id and process-role are provided, the value for node-id will "
              "take precedence")
    servers = find_servers()
    if not servers:
        print("No kafka server to stop")
        return 1
    if args.config_under:
        root = Path(args.config_under).resolve()
        servers = [s for s in servers
                   if s.config is not None and s.config.resolve().is_relative_to(root)]
    targets = [s for s in servers if matches(s, args.node_id, args.process_role)]
    if not targets:
        print("No kafka server to stop")
        return 1
    for s in targets:
        try:
            os.kill(s.pid, sig)
            print(f"Sent {sig.name} to kafka-server-start pid {s.pid}"
                  + (f" ({s.config})" if s.config else ""))
        except ProcessLookupError:
            continue
        except PermissionError:
            print(f"Error: not permitted to signal pid {s.pid}", file=sys.stderr)
            return 1
    if args.wait > 0:
        deadline = time.monotonic() + args.wait
        pending = [s.pid for s in targets]
        while pending and time.monotonic() < deadline:
            time.sleep(0.1)
            pending = [pid for pid in pending if pid_alive(pid)]
        if pending:
            print(f"Error: still running after {args.wait:g}s: "
                  f"{', '.join(map(str, pending))}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
