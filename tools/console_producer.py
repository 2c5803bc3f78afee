"""``kafka-console-producer``: one record per stdin line (Kafka's ConsoleProducer).

    kafka-console-producer --bootstrap-server B --topic T \\
        [--property parse.key=true --property key.separator=:] \\
        [--property parse.headers=true] [--producer-property acks=all] \\
        [--compression-codec [gzip|snappy|lz4|zstd]] [--sync]

Reader properties (``--property``): ``parse.key`` (default false), ``key.separator`` (tab),
``parse.headers`` (false), ``headers.delimiter`` (tab), ``headers.separator`` (,),
``headers.key.separator`` (:), ``null.marker`` (a key/value equal to it is sent as null),
``ignore.error`` (false: a line without the key separator is an error).

Producer properties (``--producer-property k=v`` or ``--producer.config FILE``): ``acks``
(all/-1, 0, 1; default all as in Kafka 3), ``linger.ms``, ``batch.size``, ``compression.type``,
``request.timeout.ms``, ``max.in.flight.requests.per.connection``, ``client.id``; unknown keys
are ignored with a warning, as Kafka's client logs unknown configs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from storage.properties import parse_properties
from tools.cli_client import CliError, admin_client, parse_properties_args, run_tool
from tools.cli_produce import COMPRESSION_CODECS, Producer

PROG = "kafka-console-producer"
KNOWN_PRODUCER_PROPS = {
    "acks", "linger.ms", "batch.size", "compression.type", "request.timeout.ms",
    "max.in.flight.requests.per.connection", "client.id", "bootstrap.servers",
    "key.serializer", "value.serializer", "retries", "enable.idempotence", "delivery.timeout.ms",
    "buffer.memory", "max.request.size",
}


@dataclass(frozen=True, slots=True)
class ProducerSettings:
    acks: int
    linger_ms: float
    batch_size: int
    compression: int
    request_timeout_ms: int
    max_in_flight: int
    client_id: str


def producer_settings(props: dict[str, str], *, default_linger_ms: float = 5,
                      default_batch_size: int = 16384) -> ProducerSettings:
    """Kafka producer properties -> our Producer's settings; bad values are ``CliError``s."""
    for key in props:
        if key not in KNOWN_PRODUCER_PROPS:
            print(f"WARN The configuration '{key}' was supplied but isn't a known config.",
                  file=sys.stderr)
    acks_text = props.get("acks", "all").strip().lower()
    acks_map = {"all": -1, "-1": -1, "0": 0, "1": 1}
    if acks_text not in acks_map:
        raise CliError(f"Invalid value {acks_text} for configuration acks: "
                       "String must be one of: all, -1, 0, 1")
    codec_name = props.get("compression.type", "none").strip().lower()
    if codec_name not in COMPRESSION_CODECS:
        raise CliError(f"Invalid value {codec_name} for configuration compression.type: "
                       f"String must be one of: {', '.join(COMPRESSION_CODECS)}")

    def number(key: str, default: float, lo: float) -> float:
        raw = props.get(key)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise CliError(f"Invalid value {raw} for configuration {key}: "
                           "Not a number") from None
        if value < lo:
            raise CliError(f"Invalid value {raw} for configuration {key}: "
                           f"Value must be at least {lo:g}")
        return value

    return ProducerSettings(
        acks=acks_map[acks_text],
        linger_ms=number("linger.ms", default_linger_ms, 0),
        batch_size=int(number("batch.size", default_batch_size, 0)),
        compression=COMPRESSION_CODECS[codec_name],
        request_timeout_ms=int(number("request.timeout.ms", 30000, 1)),
        max_in_flight=int(number("max.in.flight.requests.per.connection", 5, 1)),
        client_id=props.get("client.id", PROG),
    )


def load_config_file(path: str | None) -> dict[str, str]:
    if not path:
        return {}
    try:
        return parse_properties(Path(path).read_text())
    except OSError as e:
        raise CliError(f"cannot read {path}: {e.strerror}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Read lines from stdin and send each "
                                "as a record to a topic.")
    p.add_argument("--bootstrap-server", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--property", action="append", help="reader property key=value")
    p.add_argument("--reader-property", action="append", dest="property")
    p.add_argument("--producer-property", action="append", help="producer property key=value")
    p.add_argument("--producer.config", dest="producer_config", help="producer properties file")
    p.add_argument("--compression-codec", nargs="?", const="gzip",
                   help="none, gzip (the default when the flag is given alone), snappy, lz4, zstd")
    p.add_argument("--sync", action="store_true", help="send each record and wait for it")
    p.add_argument("--request-required-acks", help="acks (default all)")
    p.add_argument("--batch-size", type=int, help="records per batch (default 16384 bytes)")
    p.add_argument("--timeout", type=int, help="linger in ms (default 1000)")
    p.add_argument("--request-timeout-ms", type=int)
    p.add_argument("--line-reader", help="accepted for compatibility; not used")
    return p


@dataclass(frozen=True, slots=True)
class ReaderSettings:
    parse_key: bool = False
    key_separator: str = "\t"
    parse_headers: bool = False
    headers_delimiter: str = "\t"
    headers_separator: str = ","
    headers_key_separator: str = ":"
    null_marker: str | None = None
    ignore_error: bool = False


def reader_settings(props: dict[str, str]) -> ReaderSettings:
    def flag(key: str) -> bool:
        return props.get(key, "false").strip().lower() == "true"

    s = ReaderSettings(
        parse_key=flag("parse.key"),
        key_separator=props.get("key.separator", "\t"),
        parse_headers=flag("parse.headers"),
        headers_delimiter=props.get("headers.delimiter", "\t"),
        headers_separator=props.get("headers.separator", ","),
        headers_key_separator=props.get("headers.key.separator", ":"),
        null_marker=props.get("null.marker"),
        ignore_error=flag("ignore.error"),
    )
    if s.parse_key and not s.key_separator:
        raise CliError("key.separator must not be empty")
    return s


@dataclass(frozen=True, slots=True)
class ParsedLine:
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]


def parse_line(line: str, s: ReaderSettings, line_no: int) -> ParsedLine:
    """One stdin line -> key, value, headers (Kafka's LineMessageReader rules)."""
    rest = line
    headers: list[tuple[str, bytes | None]] = []
    if s.parse_headers:
        head, sep, tail = rest.partition(s.headers_delimiter)
        if not sep:
            if not s.ignore_error:
                raise CliError(f"No headers delimiter found on line number {line_no}: '{line}'")
        else:
            rest = tail
            for h in filter(None, head.split(s.headers_separator)):
                hk, hsep, hv = h.partition(s.headers_key_separator)
                value = hv if hsep else None
                headers.append((hk, None if value is None or value == s.null_marker
                                else value.encode()))
    key: str | None = None
    if s.parse_key:
        k, sep, v = rest.partition(s.key_separator)
        if not sep:
            if not s.ignore_error:
                raise CliError(f"No key separator found on line number {line_no}: '{line}'")
            value = rest
        else:
            key, value = k, v
    else:
        value = rest

    def enc(x: str | None) -> bytes | None:
        if x is None or (s.null_marker is not None and x == s.null_marker):
            return None
        return x.encode()

    return ParsedLine(enc(key), enc(value), tuple(headers))


def _start_reader(loop: asyncio.AbstractEventLoop,
                  queue: asyncio.Queue[list[str] | None]) -> threading.Thread:
    """A thread that hands stdin lines to the loop, one chunk per read: ``os.read`` returns
    what is there, so an interactive line goes out at once and a large piped input costs one
    thread hop per 64 KiB."""

    def run() -> None:
        fd = sys.stdin.fileno()
        partial = b""
        try:
            while True:
                data = os.read(fd, 65536)
                if not data:
                    break
                *lines, partial = (partial + data).split(b"\n")
                if lines:
                    chunk = [ln.decode("utf-8", errors="replace").rstrip("\r") for ln in lines]
                    loop.call_soon_threadsafe(queue.put_nowait, chunk)
        finally:
            if partial:
                last = [partial.decode("utf-8", errors="replace").rstrip("\r")]
                loop.call_soon_threadsafe(queue.put_nowait, last)
            loop.call_soon_threadsafe(queue.put_nowait, None)

    t = threading.Thread(target=run, name="stdin-reader", daemon=True)
    t.start()
    return t


async def _main(args: argparse.Namespace) -> int:
    props = load_config_file(args.producer_config)
    props.update(parse_properties_args(args.producer_property, "--producer-property"))
    if args.request_required_acks is not None:
        props["acks"] = args.request_required_acks
    if args.compression_codec is not None:
        props["compression.type"] = args.compression_codec
    if args.batch_size is not None:
        props["batch.size"] = str(args.batch_size)
    if args.timeout is not None:
        props["linger.ms"] = str(args.timeout)
    if args.request_timeout_ms is not None:
        props["request.timeout.ms"] = str(args.request_timeout_ms)
    settings = producer_settings(props, default_linger_ms=1000)
    reader = reader_settings(parse_properties_args(args.property, "--property"))

    client = await admin_client(args.bootstrap_server, props=props)
    failures: list[str] = []
    try:
        producer = Producer(client, acks=settings.acks, linger_ms=settings.linger_ms,
                            batch_size=settings.batch_size, compression=settings.compression,
                            max_in_flight=settings.max_in_flight,
                            request_timeout_ms=settings.request_timeout_ms)
        await producer.partition_count(args.topic)
        queue: asyncio.Queue[list[str] | None] = asyncio.Queue()
        _start_reader(asyncio.get_running_loop(), queue)
        line_no = 0

        def on_done_for(line: int) -> Callable[[int, BaseException | None], None]:
            def on_done(_offset: int, error: BaseException | None) -> None:
                if error is not None:
                    failures.append(f"Error when sending message to topic {args.topic} "
                                    f"(line {line}): {error}")
            return on_done

        while True:
            lines = await queue.get()
            if lines is None:
                break
            for text in lines:
                line_no += 1
                rec = parse_line(text, reader, line_no)
                await producer.send(args.topic, rec.value, rec.key, rec.headers,
                                    callback=on_done_for(line_no))
                if args.sync:
                    await producer.flush()
            if failures:
                break
        # Each failure is already recorded by its record's callback.
        with contextlib.suppress(Exception):
            await producer.flush()
    finally:
        await client.close()
    for f in failures[:10]:
        print(f"ERROR {f}", file=sys.stderr)
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_tool(PROG, lambda: _main(args))


if __name__ == "__main__":
    sys.exit(main())
