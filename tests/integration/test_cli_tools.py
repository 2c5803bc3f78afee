"""The CLI tools end to end: console scripts run as subprocesses against real nodes, checked
against confluent-kafka on the same topics (both directions), dump-log on segments the broker
wrote from confluent-kafka data, consumer groups shared with a confluent-kafka consumer, the
perf tools' output, kafka-server-stop and kraft-cluster --separate-roles."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.proc_cluster import ProcCluster, free_port_offset

ck = pytest.importorskip("confluent_kafka")

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MODULES = {
    "kafka-topics": "tools.topics:main",
    "kafka-configs": "tools.configs:main",
    "kafka-console-producer": "tools.console_producer:main",
    "kafka-console-consumer": "tools.console_consumer:main",
    "kafka-leader-election": "tools.leader_election:main",
    "kafka-dump-log": "tools.dump_log:main",
    "kafka-producer-perf-test": "tools.perf_test:producer_main",
    "kafka-consumer-perf-test": "tools.perf_test:consumer_main",
    "kafka-server-stop": "tools.server_stop:main",
    "kraft-cluster": "tools.local_cluster:main",
}


def _env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    return e


def command(name: str) -> list[str]:
    """The installed console script, or the same entry point through the interpreter."""
    script = BIN / name
    if script.exists():
        return [str(script)]
    module, func = MODULES[name].split(":")
    return [sys.executable, "-c", f"import sys; from {module} import {func}; sys.exit({func}())"]


def cli(name: str, *args: str, stdin: str | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*command(name), *args], input=stdin, capture_output=True, text=True,
                          cwd=REPO, env=_env(), timeout=timeout, check=False)


def ok(name: str, *args: str, stdin: str | None = None,
       timeout: float = 60) -> subprocess.CompletedProcess[str]:
    r = cli(name, *args, stdin=stdin, timeout=timeout)
    assert r.returncode == 0, f"{name} {args}: rc {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcCluster]:
    c = ProcCluster(tmp_path_factory.mktemp("cli"), controllers=1, brokers=1, extra={
        "offsets.topic.replication.factor": "1", "offsets.topic.num.partitions": "2",
        "group.initial.rebalance.delay.ms": "0"})
    try:
        c.start()
        yield c
    finally:
        c.shutdown()


def _data_dir(cluster: ProcCluster) -> Path:
    return cluster.nodes[cluster.broker_ids[0]].dir / "data"


def test_topics_and_configs(cluster: ProcCluster) -> None:
    b = cluster.bootstrap_servers
    r = ok("kafka-topics", "--bootstrap-server", b, "--create", "--topic", "cli-t",
           "--partitions", "2", "--replication-factor", "1", "--config", "retention.ms=123456")
    assert r.stdout.strip() == "Created topic cli-t."
    again = cli("kafka-topics", "--bootstrap-server", b, "--create", "--topic", "cli-t")
    assert again.returncode == 1 and "TOPIC_ALREADY_EXISTS" in again.stderr
    ok("kafka-topics", "--bootstrap-server", b, "--create", "--topic", "cli-t",
       "--if-not-exists")
    assert "cli-t" in ok("kafka-topics", "--bootstrap-server", b, "--list").stdout.split()

    desc = ok("kafka-topics", "--bootstrap-server", b, "--describe", "--topic", "cli-t").stdout
    lines = desc.splitlines()
    assert re.fullmatch(r"Topic: cli-t\tTopicId: [A-Za-z0-9_-]{22}\tPartitionCount: 2\t"
                        r"ReplicationFactor: 1\tConfigs: retention.ms=123456", lines[0]), desc
    broker = cluster.broker_ids[0]
    assert lines[1] == f"\tTopic: cli-t\tPartition: 0\tLeader: {broker}\tReplicas: {broker}\t" \
                       f"Isr: {broker}"
    assert len(lines) == 3

    ok("kafka-topics", "--bootstrap-server", b, "--alter", "--topic", "cli-t",
       "--partitions", "3")
    desc = ok("kafka-topics", "--bootstrap-server", b, "--describe", "--topic", "cli-t").stdout
    assert "PartitionCount: 3" in desc and "Partition: 2" in desc
    shrink = cli("kafka-topics", "--bootstrap-server", b, "--alter", "--topic", "cli-t",
                 "--partitions", "1")
    assert shrink.returncode == 1 and "can only be increased" in shrink.stderr

    r = ok("kafka-configs", "--bootstrap-server", b, "--entity-type", "topics",
           "--entity-name", "cli-t", "--alter", "--add-config",
           "cleanup.policy=[compact,delete],max.message.bytes=2000",
           "--delete-config", "retention.ms")
    assert r.stdout.strip() == "Completed updating config for topic cli-t."
    dyn = ok("kafka-configs", "--bootstrap-server", b, "--topic", "cli-t", "--describe").stdout
    assert dyn.splitlines()[0] == "Dynamic configs for topic cli-t are:"
    assert "  cleanup.policy=compact,delete sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:" \
           "cleanup.policy=compact,delete" in dyn
    assert "max.message.bytes=2000" in dyn and "retention.ms" not in dyn
    every = ok("kafka-configs", "--bootstrap-server", b, "--entity-type", "topics",
               "--entity-name", "cli-t", "--describe", "--all").stdout
    assert every.startswith("All configs for topic cli-t are:") and "segment.bytes=" in every
    brokers = ok("kafka-configs", "--bootstrap-server", b, "--broker", str(broker),
                 "--describe", "--all").stdout
    assert f"node.id={broker}" in brokers
    bad = cli("kafka-configs", "--bootstrap-server", b, "--topic", "no-such", "--describe")
    assert bad.returncode == 1 and "UNKNOWN_TOPIC_OR_PARTITION" in bad.stderr

    ok("kafka-topics", "--bootstrap-server", b, "--delete", "--topic", "cli-t")
    assert "cli-t" not in ok("kafka-topics", "--bootstrap-server", b, "--list").stdout.split()
    gone = cli("kafka-topics", "--bootstrap-server", b, "--describe", "--topic", "cli-t")
    assert gone.returncode == 1 and "does not exist" in gone.stderr
    ok("kafka-topics", "--bootstrap-server", b, "--delete", "--topic", "cli-t", "--if-exists")


def test_console_round_trip_and_leader_election(cluster: ProcCluster) -> None:
    b = cluster.bootstrap_servers
    ok("kafka-topics", "--bootstrap-server", b, "--create", "--topic", "cli-rt",
       "--partitions", "3")
    lines = [f"key{i}:value {i}" for i in range(30)]
    ok("kafka-console-producer", "--bootstrap-server", b, "--topic", "cli-rt",
       "--property", "parse.key=true", "--property", "key.separator=:",
       "--producer-property", "acks=all", "--compression-codec", "lz4",
       stdin="\n".join(lines) + "\n")
    r = ok("kafka-console-consumer", "--bootstrap-server", b, "--topic", "cli-rt",
           "--from-beginning", "--max-messages", "30", "--property", "print.key=true",
           "--property", "print.partition=true", "--property", "print.offset=true",
           "--property", "key.separator=|")
    assert r.stderr.strip().endswith("Processed a total of 30 messages")
    got: dict[int, list[tuple[int, str, str]]] = {}
    for line in r.stdout.splitlines():
        part, off, key, value = line.split("|")
        got.setdefault(int(part.removeprefix("Partition:")), []).append(
            (int(off.removeprefix("Offset:")), key, value))
    assert sorted((k, v) for recs in got.values() for _, k, v in recs) == sorted(
        tuple(x.split(":")) for x in lines)
    for recs in got.values():  # per partition: offsets 0.. in produce order
        assert [o for o, _, _ in recs] == list(range(len(recs)))
        assert [int(k[3:]) for _, k, _ in recs] == sorted(int(k[3:]) for _, k, _ in recs)
    # Keys are placed by murmur2, as the Java client does.
    from tools.cli_produce import partition_for_key

    for p, recs in got.items():
        assert all(partition_for_key(k.encode(), 3) == p for _, k, _ in recs)

    # --partition/--offset, and --timeout-ms ends an idle consumer.
    p0 = got[0]
    r = ok("kafka-console-consumer", "--bootstrap-server", b, "--topic", "cli-rt",
           "--partition", "0", "--offset", "1", "--timeout-ms", "1500")
    assert r.stdout.splitlines() == [v for _, _, v in p0[1:]]
    bad = cli("kafka-console-consumer", "--bootstrap-server", b, "--topic", "cli-rt",
              "--offset", "1")
    assert bad.returncode == 1 and "partition is required" in bad.stderr
    badline = cli("kafka-console-producer", "--bootstrap-server", b, "--topic", "cli-rt",
                  "--property", "parse.key=true", stdin="no-separator\n")
    assert badline.returncode == 1 and "No key separator found on line number 1" in \
        badline.stderr

    r = ok("kafka-leader-election", "--bootstrap-server", b, "--election-type", "preferred",
           "--topic", "cli-rt", "--partition", "1")
    assert r.stdout.strip() == "Valid replica already elected for partitions cli-rt-1"
    r = cli("kafka-leader-election", "--bootstrap-server", b, "--election-type", "preferred",
            "--topic", "no-such", "--partition", "0")
    assert r.returncode == 1
    assert "Error completing leader election (PREFERRED) for partition: no-such-0: " \
           "UNKNOWN_TOPIC_OR_PARTITION" in r.stdout


def test_interop_with_confluent_and_dump_log(cluster: ProcCluster) -> None:
    b = cluster.bootstrap_servers
    ok("kafka-topics", "--bootstrap-server", b, "--create", "--topic", "cli-ck",
       "--partitions", "1")
    # confluent-kafka writes (gzip, headers) -> our console consumer reads.
    producer = ck.Producer({"bootstrap.servers": b, "compression.type": "gzip",
                            "linger.ms": 200})
    # Metadata first: a record queued before the leader is known waits past its linger and
    # leaves alone, and librdkafka sends a batch uncompressed when gzip would not shrink it.
    producer.list_topics("cli-ck", timeout=20)
    for i in range(50):
        producer.produce("cli-ck", key=f"ck{i}".encode(), value=f"confluent {i}".encode(),
                         headers=[("src", b"ck")], partition=0)
    assert producer.flush(20) == 0
    r = ok("kafka-console-consumer", "--bootstrap-server", b, "--topic", "cli-ck",
           "--from-beginning", "--max-messages", "50", "--property", "print.key=true",
           "--property", "print.headers=true")
    assert r.stdout.splitlines() == [f"src:ck\tck{i}\tconfluent {i}" for i in range(50)]

    # Our console producer (zstd, acks=1) -> confluent-kafka reads the same topic.
    ok("kafka-console-producer", "--bootstrap-server", b, "--topic", "cli-ck",
       "--property", "parse.key=true", "--property", "key.separator=,",
       "--producer-property", "acks=1", "--producer-property", "compression.type=zstd",
       stdin="".join(f"ours{i},cli {i}\n" for i in range(20)))
    consumer = ck.Consumer({"bootstrap.servers": b, "group.id": "cli-ck-reader",
                            "enable.auto.commit": False})
    try:
        consumer.assign([ck.TopicPartition("cli-ck", 0, 50)])
        seen: list[tuple[bytes, bytes]] = []
        deadline = time.monotonic() + 30
        while len(seen) < 20 and time.monotonic() < deadline:
            m = consumer.poll(0.5)
            if m is not None and not m.error():
                seen.append((m.key(), m.value()))
    finally:
        consumer.close()
    assert seen == [(f"ours{i}".encode(), f"cli {i}".encode()) for i in range(20)]

    # dump-log reads the segment the broker wrote: confluent's gzip batches, then ours.
    seg = _data_dir(cluster) / "cli-ck-0" / "00000000000000000000.log"
    r = ok("kafka-dump-log", "--files", str(seg), "--print-data-log")
    out = r.stdout.splitlines()
    assert out[:2] == [f"Dumping {seg}", "Log starting offset: 0"]
    batches = [ln for ln in out if ln.startswith("baseOffset:")]
    records = [ln for ln in out if ln.startswith("| offset:")]
    assert len(records) == 70
    assert all(ln.endswith("isvalid: true") for ln in batches)
    assert "compresscodec: gzip" in batches[0] and "compresscodec: zstd" in batches[-1]
    assert re.search(r"^baseOffset: 0 lastOffset: \d+ count: \d+ .* position: 0 CreateTime: "
                     r"\d+ size: \d+ magic: 2 compresscodec: gzip crc: \d+ isvalid: true$",
                     batches[0])
    assert records[0].endswith("headerKeys: [src] key: ck0 payload: confluent 0")
    assert records[-1].endswith("headerKeys: [] key: ours19 payload: cli 19")
    assert re.match(r"\| offset: 69 CreateTime: \d+ keySize: 6 valueSize: 6 ", records[-1])


def test_console_consumer_group_commits_and_shares_with_confluent(cluster: ProcCluster) -> None:
    b = cluster.bootstrap_servers
    ok("kafka-topics", "--bootstrap-server", b, "--create", "--topic", "cli-g",
       "--partitions", "2")
    producer = ck.Producer({"bootstrap.servers": b})
    for i in range(10):
        producer.produce("cli-g", value=f"m{i}".encode(), partition=i % 2)
    assert producer.flush(20) == 0

    # Two runs in one group: the second continues where the first committed.
    first = ok("kafka-console-consumer", "--bootstrap-server", b, "--topic", "cli-g",
               "--group", "cli-group", "--from-beginning", "--max-messages", "6")
    second = ok("kafka-console-consumer", "--bootstrap-server", b, "--topic", "cli-g",
                "--group", "cli-group", "--from-beginning", "--timeout-ms", "2000")
    assert len(first.stdout.split()) == 6
    assert sorted(first.stdout.split() + second.stdout.split()) == sorted(
        f"m{i}" for i in range(10))

    # A group shared with a confluent-kafka consumer: one partition each, nothing lost.
    theirs = ck.Consumer({"bootstrap.servers": b, "group.id": "cli-shared",
                          "auto.offset.reset": "earliest", "session.timeout.ms": 10000,
                          "heartbeat.interval.ms": 300})
    ours: subprocess.Popen[str] | None = None
    try:
        theirs.subscribe(["cli-g"])
        got: list[bytes] = []
        deadline = time.monotonic() + 20
        while not theirs.assignment() and time.monotonic() < deadline:
            m = theirs.poll(0.2)
            if m is not None and not m.error():
                got.append(m.value())
        assert len(theirs.assignment()) == 2
        ours = subprocess.Popen(
            [*command("kafka-console-consumer"), "--bootstrap-server", b, "--topic", "cli-g",
             "--group", "cli-shared", "--from-beginning", "--property", "print.partition=true",
             "--timeout-ms", "8000"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=_env())
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            m = theirs.poll(0.2)
            if m is not None and not m.error():
                got.append(m.value())
            if len(theirs.assignment()) == 1:
                break
        mine = [tp.partition for tp in theirs.assignment()]
        assert len(mine) == 1
        extra = ck.Producer({"bootstrap.servers": b})
        for i in range(10, 20):
            extra.produce("cli-g", value=f"m{i}".encode(), partition=i % 2)
        assert extra.flush(20) == 0
        end = time.monotonic() + 4
        while time.monotonic() < end:
            m = theirs.poll(0.2)
            if m is not None and not m.error():
                got.append(m.value())
        out, err = ours.communicate(timeout=60)
    finally:
        theirs.close()
        if ours is not None and ours.poll() is None:
            ours.kill()
            ours.wait()
    our_lines = [ln.split("\t") for ln in out.splitlines()]
    assert {int(p.removeprefix("Partition:")) for p, _ in our_lines} == {1 - mine[0]}, err
    together = {v for _, v in our_lines} | {g.decode() for g in got}
    assert together == {f"m{i}" for i in range(20)}, (our_lines, got, err)


def test_perf_tools(cluster: ProcCluster) -> None:
    b = cluster.bootstrap_servers
    ok("kafka-topics", "--bootstrap-server", b, "--create", "--topic", "cli-perf",
       "--partitions", "2")
    r = ok("kafka-producer-perf-test", "--topic", "cli-perf", "--num-records", "3000",
           "--record-size", "100", "--throughput", "2000", "--producer-props",
           f"bootstrap.servers={b}", "acks=1", "linger.ms=5", "batch.size=16384",
           "--reporting-interval", "500", timeout=120)
    lines = r.stdout.splitlines()
    window = re.compile(r"\d+ records sent, \d+\.\d records/sec \(\d+\.\d\d MB/sec\), "
                        r"\d+\.\d ms avg latency, \d+\.\d ms max latency\.")
    assert len(lines) >= 3 and all(window.fullmatch(ln) for ln in lines[:-1]), lines
    m = re.fullmatch(r"3000 records sent, (\d+\.\d{6}) records/sec \(\d+\.\d\d MB/sec\), "
                     r"\d+\.\d\d ms avg latency, \d+\.\d\d ms max latency, \d+ ms 50th, "
                     r"\d+ ms 95th, \d+ ms 99th, \d+ ms 99\.9th\.", lines[-1])
    assert m, lines[-1]
    assert float(m.group(1)) < 2000 * 1.15  # --throughput is honoured

    r = ok("kafka-consumer-perf-test", "--bootstrap-server", b, "--topic", "cli-perf",
           "--messages", "3000")
    header, line = r.stdout.splitlines()
    assert header == ("start.time, end.time, data.consumed.in.MB, MB.sec, "
                      "data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, "
                      "fetch.MB.sec, fetch.nMsg.sec")
    fields = line.split(", ")
    assert len(fields) == 10
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d:\d{3}", fields[0])
    assert fields[2] == f"{3000 * 100 / 1024 / 1024:.4f}" and fields[4] == "3000"


def test_server_stop(tmp_path: Path) -> None:
    c = ProcCluster(tmp_path, controllers=1, brokers=0, combined=True)
    try:
        c.start()
        node = c.nodes[1]
        assert node.proc is not None
        # Scoped to this cluster's directory: other clusters on the machine are left alone.
        miss = cli("kafka-server-stop", "--config-under", str(tmp_path), "--node-id", "2")
        assert miss.returncode == 1 and "No kafka server to stop" in miss.stdout
        r = ok("kafka-server-stop", "--config-under", str(tmp_path),
               "--process-role=broker,controller", "--wait", "60", timeout=90)
        assert f"pid {node.proc.pid}" in r.stdout
        assert node.proc.wait(timeout=30) == 0  # SIGTERM is a clean shutdown
    finally:
        c.kill_all()


def test_kraft_cluster_separate_roles(tmp_path: Path) -> None:
    offset = free_port_offset(1)
    opts = ["--dir", str(tmp_path / "data"), "--nodes", "1", "--separate-roles",
            "--port-offset", str(offset)]
    proc = subprocess.Popen([*command("kraft-cluster"), "up", *opts], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=REPO, env=_env())
    lines: list[str] = []
    ready = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for ln in proc.stdout:
            lines.append(ln)
            if "Running; press Ctrl-C" in ln:
                ready.set()

    threading.Thread(target=pump, daemon=True).start()
    try:
        assert ready.wait(60), "".join(lines)
        text = "".join(lines)
        bootstrap = f"127.0.0.1:{9112 + offset}"
        assert f"Bootstrap servers: {bootstrap}\n" in text, text
        assert f"Bootstrap controllers: 127.0.0.1:{9103 + offset}\n" in text
        assert f"Admin URLs: http://127.0.0.1:{9654 + offset} http://127.0.0.1:{9664 + offset}" \
            in text
        state = json.loads((tmp_path / "data" / "cluster.pids").read_text())
        assert [n["roles"] for n in state["nodes"]] == [["controller"], ["broker"]]
        ok("kafka-topics", "--bootstrap-server", bootstrap, "--create", "--topic", "kc",
           "--partitions", "1")
        status = ok("kraft-cluster", "status", *opts[:2])
        assert f"Bootstrap servers: {bootstrap}" in status.stdout
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Node 1 exited with code 0" in "".join(lines)
    assert "Node 2 exited with code 0" in "".join(lines)


@pytest.mark.slow
def test_preferred_leader_election_moves_leadership_back(tmp_path: Path) -> None:
    c = ProcCluster(tmp_path, controllers=1, brokers=3)
    try:
        c.start()
        b = c.bootstrap_servers
        first, second, third = c.broker_ids
        ok("kafka-topics", "--bootstrap-server", b, "--create", "--topic", "le",
           "--replica-assignment", f"{first}:{second}:{third}")

        def leader_and_isr() -> tuple[str, str]:
            desc = ok("kafka-topics", "--bootstrap-server", b, "--describe", "--topic",
                      "le").stdout
            m = re.search(r"Leader: (\S+)\tReplicas: \S+\tIsr: (\S+)", desc)
            assert m, desc
            return m.group(1), m.group(2)

        assert leader_and_isr()[0] == str(first)
        c.nodes[first].stop()
        deadline = time.monotonic() + 60
        while leader_and_isr()[0] == str(first) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert leader_and_isr()[0] != str(first)
        c.nodes[first].start()
        while str(first) not in leader_and_isr()[1].split(",") and time.monotonic() < deadline:
            time.sleep(0.5)
        r = ok("kafka-leader-election", "--bootstrap-server", b, "--election-type",
               "preferred", "--all-topic-partitions")
        assert "Successfully completed leader election (PREFERRED) for partitions" in r.stdout
        assert "le-0" in r.stdout
        assert leader_and_isr()[0] == str(first)
    finally:
        c.shutdown()
