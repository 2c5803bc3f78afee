"""``kafka-server-start CONFIG [--override key=value ...]``: validate, check storage, run a node.

Start-up order, as Kafka's ``KafkaRaftServer``: load and validate the configuration (a bad value
exits 1 naming the key and value), check ``meta.properties`` in every log directory and the
metadata log directory (unformatted or mismatched exits 1), set up logging, run the node until
SIGTERM/SIGINT (exit 0 on a clean stop).
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from broker.config import KafkaConfig
from broker.node import run_node
from storage.errors import ConfigError, MetaPropertiesError
from storage.log_dir_ids import prepare_log_dirs
from storage.properties import PropertiesError
from tools.launcher import parse_overrides
from tools.node_workers import Workers, follow_parent, node_rack, plan_workers

PROG = "kafka-server-start"
LOG_FORMAT = "[%(asctime)s] %(levelname)s [node.id=%(node_id)s] %(message)s (%(name)s)"


class _NodeIdFilter(logging.Filter):
    """Stamps every record with the node id (``-`` until the config is loaded)."""

    def __init__(self) -> None:
        super().__init__()
        self.node_id = "-"

    def filter(self, record: logging.LogRecord) -> bool:
        record.node_id = self.node_id
        return True


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per line: ts (ISO 8601, UTC), level, node_id, logger, message, and
    exception (the formatted traceback) when there is one; for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"),
            "level": record.levelname,
            "node_id": getattr(record, "node_id", "-"),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def setup_logging(level: str = "INFO", log_format: str = "text") -> _NodeIdFilter:
    """Log to stdout (as Kafka's default log4j console appender) with timestamp, level, node
    id; ``log_format="json"`` writes JSON lines instead."""
    node_filter = _NodeIdFilter()
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonLinesFormatter() if log_format == "json"
                         else logging.Formatter(LOG_FORMAT))
    handler.addFilter(node_filter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return node_filter


def _stop_before_start(signum: int, _frame: FrameType | None) -> None:
    """SIGTERM/SIGINT before the node's own handlers exist: nothing is running yet, stop now."""
    raise SystemExit(0)


def _error(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description="Start a broker and/or controller.")
    parser.add_argument("config", help="server.properties file")
    parser.add_argument(
        "--override", action="append", default=[], metavar="KEY=VALUE",
        help="override a property of the config file (repeatable)",
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="root log level (default INFO)",
    )
    parser.add_argument(
        "--log-format", default="text", choices=["text", "json"],
        help="text (default: [time] LEVEL [node.id=N] message (logger)) or json (one JSON "
             "object per line)",
    )
    args = parser.parse_args(argv)
    follow_parent()  # a worker process of a node dies with it (tools/node_workers.py)
    try:
        overrides = parse_overrides(args.override)
    except ValueError as e:
        parser.error(str(e))
    # Until run_node installs its handlers (on the event loop), a stop signal just exits 0.
    signal.signal(signal.SIGTERM, _stop_before_start)
    signal.signal(signal.SIGINT, _stop_before_start)

    node_filter = setup_logging(args.log_level, args.log_format)
    log = logging.getLogger("tools.server_start")
    try:
        config = KafkaConfig.load(args.config, overrides)
    except FileNotFoundError:
        return _error(f"config file {args.config} not found")
    except (OSError, PropertiesError) as e:
        return _error(f"cannot read config file {args.config}: {e}")
    except ConfigError as e:
        return _error(str(e))
    node_filter.node_id = str(config.node_id)

    try:
        dirs = prepare_log_dirs(config.log_dirs, config.metadata_log_dir, config.node_id)
    except MetaPropertiesError as e:
        return _error(str(e))
    cluster_id = dirs.cluster_id
    log.info(
        "Storage verified: cluster.id=%s, %d director%s%s",
        cluster_id, len(dirs.metas), "y" if len(dirs.metas) == 1 else "ies",
        f"; offline: {', '.join(dirs.offline)}" if dirs.offline else "",
    )
    for key, value in sorted(config.values().items()):
        log.debug("config %s = %s", key, value)

    workers: Workers | None = None
    try:
        specs = plan_workers(config)
        if specs:
            if not config.get("broker.rack"):
                config = KafkaConfig.load(args.config, {**overrides,
                                                        "broker.rack": node_rack(config)})
            workers = Workers(args.config, overrides, specs, cluster_id,
                              ["--log-level", args.log_level, "--log-format", args.log_format])
            workers.start()
    except (ConfigError, MetaPropertiesError, OSError) as e:
        if workers is not None:
            workers.stop()
        return _error(str(e))

    try:
        return run_node(config, cluster_id, workers.stop if workers is not None else None)
    except Exception:
        log.exception("Fatal error during node run, exiting")
        return 1
    finally:
        if workers is not None:
            workers.stop()


if __name__ == "__main__":
    sys.exit(main())
