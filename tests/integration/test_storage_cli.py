"""kafka-storage and kafka-server-start as real processes on real directories."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from storage.meta_properties import (
    parse_uuid,
    random_directory_id,
    random_uuid,
    read_bootstrap,
    read_meta_properties,
)
from storage.properties import load_properties

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 60


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def storage(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.storage_cli", *args],
        capture_output=True, text=True, cwd=ROOT, env=_env(), timeout=TIMEOUT_S, check=False,
    )


def server(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.server_start", *args],
        capture_output=True, text=True, cwd=ROOT, env=_env(), timeout=TIMEOUT_S, check=False,
    )


def write_config(path: Path, **props: str) -> Path:
    base = {
        "node.id": "1",
        "process.roles": "broker,controller",
        "listeners": "PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093",
        "controller.listener.names": "CONTROLLER",
        "controller.quorum.voters": "1@127.0.0.1:29093",
        "log.dirs": f"{path.parent / 'logs-a'},{path.parent / 'logs-b'}",
        "metadata.log.dir": str(path.parent / "metadata"),
        "admin.listeners": "http://127.0.0.1:29644",
    }
    for key, value in props.items():
        name = key.replace("_", ".")
        if value is None:
            base.pop(name, None)
        else:
            base[name] = value
    path.write_text("".join(f"{k}={v}\n" for k, v in base.items()))
    return path


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path / "server.properties")


def dirs_of(tmp_path: Path) -> list[Path]:
    return [tmp_path / "logs-a", tmp_path / "logs-b", tmp_path / "metadata"]


# --- random-uuid ---------------------------------------------------------------------------


def test_random_uuid() -> None:
    first, second = storage("random-uuid"), storage("random-uuid")
    assert first.returncode == 0 and second.returncode == 0, first.stderr
    a, b = first.stdout.strip(), second.stdout.strip()
    assert len(a) == 22 and first.stdout == a + "\n"
    assert len(parse_uuid(a)) == 16
    assert a != b


# --- format --------------------------------------------------------------------------------


def test_format_writes_meta_properties_everywhere(tmp_path: Path, config: Path) -> None:
    cid = random_uuid()
    result = storage("format", "--cluster-id", cid, "--config", str(config))
    assert result.returncode == 0, result.stderr
    directory_ids = set()
    for d in dirs_of(tmp_path):
        meta = read_meta_properties(d)
        assert meta is not None, d
        assert (meta.version, meta.cluster_id, meta.node_id) == (1, cid, 1)
        assert meta.directory_id is not None
        directory_ids.add(meta.directory_id)
        assert f"{d} with metadata.version" in result.stdout
        raw = load_properties(d / "meta.properties")
        assert set(raw) == {"version", "cluster.id", "node.id", "directory.id"}
    assert len(directory_ids) == 3
    assert f"Formatting metadata directory {tmp_path / 'metadata'}" in result.stdout
    assert f"Formatting data directory {tmp_path / 'logs-a'}" in result.stdout
    boot = read_bootstrap(tmp_path / "metadata")
    assert boot is not None
    assert (boot.cluster_id, boot.kraft_version, boot.initial_controllers) == (cid, 0, None)
    assert not (tmp_path / "logs-a" / "bootstrap.properties").exists()


def test_format_creates_nested_directories_and_short_flags(tmp_path: Path) -> None:
    config = write_config(tmp_path / "s.properties", log_dirs=str(tmp_path / "x" / "y" / "z"),
                          metadata_log_dir=None)
    result = storage("format", "-t", random_uuid(), "-c", str(config), "-r", "3.9-IV0")
    assert result.returncode == 0, result.stderr
    assert read_meta_properties(tmp_path / "x" / "y" / "z") is not None
    assert "metadata.version 3.9-IV0" in result.stdout


def test_reformat_refused_then_ignore_formatted(tmp_path: Path, config: Path) -> None:
    cid = random_uuid()
    assert storage("format", "--cluster-id", cid, "--config", str(config)).returncode == 0
    before = {d: (d / "meta.properties").read_bytes() for d in dirs_of(tmp_path)}

    # Add a new, empty log dir: Kafka refuses the whole format without --ignore-formatted.
    extra = tmp_path / "logs-c"
    write_config(config, log_dirs=f"{tmp_path / 'logs-a'},{tmp_path / 'logs-b'},{extra}")
    result = storage("format", "--cluster-id", cid, "--config", str(config))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"Error: Log directory {tmp_path / 'logs-a'} is already formatted. Use "
        "--ignore-formatted to ignore this directory and format the others."
    )
    assert not (extra / "meta.properties").exists()

    result = storage("format", "--cluster-id", cid, "--config", str(config), "--ignore-formatted")
    assert result.returncode == 0, result.stderr
    assert read_meta_properties(extra) is not None
    assert read_meta_properties(extra).cluster_id == cid  # type: ignore[union-attr]
    for d, content in before.items():
        assert (d / "meta.properties").read_bytes() == content  # untouched

    result = storage("format", "--cluster-id", cid, "--config", str(config), "-g")
    assert result.returncode == 0
    assert "All of the log directories are already formatted." in result.stdout


def test_other_cluster_id_refused_even_with_ignore_formatted(tmp_path: Path, config: Path) -> None:
    cid = random_uuid()
    assert storage("format", "--cluster-id", cid, "--config", str(config)).returncode == 0
    other = random_uuid()
    result = storage("format", "--cluster-id", other, "--config", str(config), "--ignore-formatted")
    assert result.returncode == 1
    assert "Invalid cluster.id in: " in result.stderr
    assert f"Expected {other}, but read {cid}" in result.stderr
    assert read_meta_properties(tmp_path / "logs-a").cluster_id == cid  # type: ignore[union-attr]


def test_other_node_id_refused(tmp_path: Path, config: Path) -> None:
    cid = random_uuid()
    assert storage("format", "--cluster-id", cid, "--config", str(config)).returncode == 0
    write_config(config, node_id="2", controller_quorum_voters="2@127.0.0.1:29093")
    result = storage("format", "--cluster-id", cid, "--config", str(config), "-g")
    assert result.returncode == 1
    assert "Stored node id 1" in result.stderr


@pytest.mark.parametrize(
    "bad_id",
    [
        "not-a-uuid",
        "AAAAAAAAAAAAAAAAAAAAA",
        "4ba1b5a6-0b55-4e1b-b5ea-4c3b7d1a3f10",
        "abc+/abc+/abc+/abc+/ab",
    ],
)
def test_bad_cluster_id_refused(tmp_path: Path, config: Path, bad_id: str) -> None:
    result = storage("format", "--cluster-id", bad_id, "--config", str(config))
    assert result.returncode == 1
    assert f"Error: Cluster ID string {bad_id} does not appear to be a valid UUID" in result.stderr
    assert not any((d / "meta.properties").exists() for d in dirs_of(tmp_path))


def test_format_bad_config_value(tmp_path: Path) -> None:
    config = write_config(tmp_path / "s.properties", num_partitions="many")
    result = storage("format", "--cluster-id", random_uuid(), "--config", str(config))
    assert result.returncode == 1
    assert "num.partitions" in result.stderr and "'many'" in result.stderr


def test_format_missing_config_file(tmp_path: Path) -> None:
    result = storage("format", "-t", random_uuid(), "-c", str(tmp_path / "nope.properties"))
    assert result.returncode == 1
    assert "not found" in result.stderr


def test_format_usage_error_exits_2(config: Path) -> None:
    result = storage("format", "--config", str(config))  # no --cluster-id
    assert result.returncode == 2
    assert "--cluster-id" in result.stderr


# --- dynamic quorum (KIP-853) --------------------------------------------------------------


def _dynamic(tmp_path: Path, **props: str) -> Path:
    return write_config(
        tmp_path / "dyn.properties", controller_quorum_voters=None,
        controller_quorum_bootstrap_servers="127.0.0.1:29093", **props,
    )


def test_dynamic_quorum_requires_a_flag(tmp_path: Path) -> None:
    result = storage("format", "-t", random_uuid(), "-c", str(_dynamic(tmp_path)))
    assert result.returncode == 1
    assert (
        "Because controller.quorum.voters is not set on this controller, you must specify one of "
        "the following: --standalone, --initial-controllers, or --no-initial-controllers."
    ) in result.stderr


def test_standalone(tmp_path: Path) -> None:
    cid = random_uuid()
    result = storage("format", "-t", cid, "-c", str(_dynamic(tmp_path)), "--standalone")
    assert result.returncode == 0, result.stderr
    assert f"dynamic metadata voter directory {tmp_path / 'metadata'}" in result.stdout
    boot = read_bootstrap(tmp_path / "metadata")
    meta = read_meta_properties(tmp_path / "metadata")
    assert boot is not None and meta is not None and boot.initial_controllers is not None
    assert boot.kraft_version == 1
    (voter,) = boot.initial_controllers
    assert (voter.node_id, voter.host, voter.port) == (1, "127.0.0.1", 29093)
    assert voter.directory_id == meta.directory_id


def test_initial_controllers(tmp_path: Path) -> None:
    d1, d2, d3 = random_directory_id(), random_directory_id(), random_directory_id()
    voters = f"1@127.0.0.1:29093:{d1},2@127.0.0.1:29193:{d2},3@127.0.0.1:29293:{d3}"
    result = storage("format", "-t", random_uuid(), "-c", str(_dynamic(tmp_path)),
                     "--initial-controllers", voters)
    assert result.returncode == 0, result.stderr
    meta = read_meta_properties(tmp_path / "metadata")
    assert meta is not None and meta.directory_id == d1
    boot = read_bootstrap(tmp_path / "metadata")
    assert boot is not None and boot.initial_controllers is not None
    assert [str(v) for v in boot.initial_controllers] == voters.split(",")
    # Data dirs get their own fresh ids.
    assert read_meta_properties(tmp_path / "logs-a").directory_id not in (d1, d2, d3)  # type: ignore[union-attr]


def test_bad_initial_controllers(tmp_path: Path) -> None:
    result = storage("format", "-t", random_uuid(), "-c", str(_dynamic(tmp_path)),
                     "--initial-controllers", "1@localhost:9093")
    assert result.returncode == 1
    assert "Invalid --initial-controllers: No colon following port could be found." in result.stderr


def test_no_initial_controllers(tmp_path: Path) -> None:
    result = storage("format", "-t", random_uuid(), "-c", str(_dynamic(tmp_path)),
                     "--no-initial-controllers")
    assert result.returncode == 0, result.stderr
    boot = read_bootstrap(tmp_path / "metadata")
    assert boot is not None and boot.kraft_version == 1 and boot.initial_controllers is None


def test_static_quorum_rejects_standalone_and_initial_controllers(config: Path) -> None:
    for flags in (["--standalone"], ["--initial-controllers", f"1@h:1:{random_directory_id()}"]):
        result = storage("format", "-t", random_uuid(), "-c", str(config), *flags)
        assert result.returncode == 1
        assert "when controller.quorum.voters is set" in result.stderr


def test_quorum_flags_are_mutually_exclusive(tmp_path: Path) -> None:
    result = storage("format", "-t", random_uuid(), "-c", str(_dynamic(tmp_path)),
                     "--standalone", "--no-initial-controllers")
    assert result.returncode == 2
    assert "not allowed with argument" in result.stderr


def test_standalone_on_a_broker_refused(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "b.properties", node_id="4", process_roles="broker",
        listeners="PLAINTEXT://127.0.0.1:29092", controller_quorum_voters=None,
        controller_quorum_bootstrap_servers="127.0.0.1:29093",
    )
    result = storage("format", "-t", random_uuid(), "-c", str(config), "--standalone")
    assert result.returncode == 1
    assert "You can only use --standalone on a controller." in result.stderr
    # A broker of a dynamic quorum needs no flag.
    assert storage("format", "-t", random_uuid(), "-c", str(config)).returncode == 0


# --- info ----------------------------------------------------------------------------------


def test_info(tmp_path: Path, config: Path) -> None:
    result = storage("info", "--config", str(config))
    assert result.returncode == 1
    for d in dirs_of(tmp_path):
        assert f"{d} does not exist" in result.stdout

    cid = random_uuid()
    assert storage("format", "--cluster-id", cid, "--config", str(config)).returncode == 0
    result = storage("info", "-c", str(config))
    assert result.returncode == 0, result.stdout
    assert "Found log directories:" in result.stdout
    assert f"Found metadata: {{cluster.id={cid}, directory.id=" in result.stdout
    for d in dirs_of(tmp_path):
        assert f"  {d}\n" in result.stdout
        meta = read_meta_properties(d)
        assert meta is not None
        assert (
            f"  {d}: formatted {{cluster.id={cid}, directory.id={meta.directory_id}, "
            "node.id=1, version=1}"
        ) in result.stdout
    assert "Found problem" not in result.stdout

    (tmp_path / "logs-b" / "meta.properties").unlink()
    result = storage("info", "-c", str(config))
    assert result.returncode == 1
    assert f"  {tmp_path / 'logs-b'}: not formatted" in result.stdout
    assert "Found problem:\n" in result.stdout
    assert f"{tmp_path / 'logs-b'} is not formatted." in result.stdout


# --- kafka-server-start --------------------------------------------------------------------


def test_server_start_refuses_unformatted_dir(tmp_path: Path, config: Path) -> None:
    result = server(str(config))
    assert result.returncode == 1
    assert (
        f"No meta.properties found in {tmp_path / 'logs-a'} (have you run kafka-storage to "
        "format the directory?)"
    ) in result.stderr

    # Only the metadata dir is missing.
    assert storage("format", "-t", random_uuid(), "-c", str(config)).returncode == 0
    (tmp_path / "metadata" / "meta.properties").unlink()
    result = server(str(config))
    assert result.returncode == 1
    assert f"No meta.properties found in {tmp_path / 'metadata'}" in result.stderr


def test_server_start_refuses_cluster_id_mismatch(tmp_path: Path, config: Path) -> None:
    assert storage("format", "-t", random_uuid(), "-c", str(config)).returncode == 0
    alone = write_config(tmp_path / "alone.properties", log_dirs=str(tmp_path / "other"),
                         metadata_log_dir=None)
    assert storage("format", "-t", random_uuid(), "-c", str(alone)).returncode == 0
    write_config(config, log_dirs=f"{tmp_path / 'logs-a'},{tmp_path / 'other'}")
    result = server(str(config))
    assert result.returncode == 1
    assert "Invalid cluster.id in: " in result.stderr
    assert str(tmp_path / "other" / "meta.properties") in result.stderr


def test_server_start_refuses_node_id_mismatch(config: Path) -> None:
    assert storage("format", "-t", random_uuid(), "-c", str(config)).returncode == 0
    result = server(str(config), "--override", "node.id=2",
                    "--override", "controller.quorum.voters=2@127.0.0.1:29093")
    assert result.returncode == 1
    assert "Stored node id 1" in result.stderr and "node.id 2" in result.stderr


def test_server_start_bad_config_value(tmp_path: Path) -> None:
    config = write_config(tmp_path / "s.properties", log_segment_bytes="ten")
    result = server(str(config))
    assert result.returncode == 1
    assert (
        "Invalid value 'ten' for configuration log.segment.bytes: Not a number of type INT"
        in result.stderr
    )
    ok = write_config(tmp_path / "ok.properties")
    result = server(str(ok), "--override", "controller.quorum.voters=1@localhost")
    assert result.returncode == 1
    assert "controller.quorum.voters" in result.stderr and "1@localhost" in result.stderr


def test_server_start_missing_config_file(tmp_path: Path) -> None:
    result = server(str(tmp_path / "missing.properties"))
    assert result.returncode == 1
    assert "not found" in result.stderr


class _Lines:
    """Collects a process's stdout lines on a thread so the test can wait with a timeout."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        assert proc.stdout is not None
        stream = proc.stdout

        def pump() -> None:
            for line in stream:
                self._queue.put(line)
            self._queue.put(None)

        threading.Thread(target=pump, daemon=True).start()

    def wait_for(self, needle: str, timeout: float = TIMEOUT_S) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
            if needle in line:
                return line
        raise AssertionError(f"{needle!r} not seen; output so far:\n{''.join(self.lines)}")

    def rest(self) -> str:
        while True:
            line = self._queue.get(timeout=TIMEOUT_S)
            if line is None:
                return "".join(self.lines)
            self.lines.append(line)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_server_start_runs_and_stops_cleanly(
    tmp_path: Path, config: Path, sig: signal.Signals
) -> None:
    cid = random_uuid()
    assert storage("format", "-t", cid, "-c", str(config)).returncode == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.server_start", str(config), "--override", "broker.rack=r1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=_env(),
    )
    try:
        out = _Lines(proc)
        started = out.wait_for("Kafka Server started")
        assert "INFO [node.id=1]" in started
        assert started.startswith("[20")  # timestamp first
        proc.send_signal(sig)
        assert proc.wait(timeout=TIMEOUT_S) == 0
        text = out.rest()
        assert f"cluster.id={cid}" in text
        assert "process.roles=broker,controller" in text
        assert "PLAINTEXT://127.0.0.1:29092" in text and "CONTROLLER://127.0.0.1:29093" in text
        assert f"Received {sig.name}, shutting down" in text
        assert "shut down cleanly" in text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()
        assert proc.stdout is not None
        proc.stdout.close()


# --- tools.local_cluster (up / status / down, the `make run` path) -------------------------


def _local_cluster(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.local_cluster", *args],
        capture_output=True, text=True, cwd=ROOT, env=_env(), timeout=TIMEOUT_S, check=False,
    )


def test_local_cluster_up_status_down(tmp_path: Path) -> None:
    import json

    from tools.proc_cluster import free_port_offset

    data = tmp_path / "data"
    offset = str(free_port_offset(2))
    opts = ["--dir", str(data), "--nodes", "2", "--port-offset", offset]

    def up(*extra: str) -> tuple[subprocess.Popen[str], _Lines]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tools.local_cluster", "up", *opts, *extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=_env(),
        )
        return proc, _Lines(proc)

    proc, out = up()
    try:
        out.wait_for("Running; press Ctrl-C to stop.")
        status = _local_cluster("status", "--dir", str(data))
        assert status.returncode == 0, status.stdout
        assert "2/2 nodes alive" in status.stdout
        assert f"PLAINTEXT://127.0.0.1:{9102 + int(offset)}" in status.stdout
        cluster_id = json.loads((data / "cluster.json").read_text())["cluster_id"]
        for node in (1, 2):
            meta = read_meta_properties(data / f"node-{node}" / "data")
            assert meta is not None and (meta.cluster_id, meta.node_id) == (cluster_id, node)
            assert "Kafka Server started" in (data / f"node-{node}" / "server.log").read_text()

        down = _local_cluster("down", "--dir", str(data))
        assert down.returncode == 0, down.stdout
        assert proc.wait(timeout=TIMEOUT_S) == 0
        assert "All nodes have exited." in out.rest()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    status = _local_cluster("status", "--dir", str(data))
    assert status.returncode == 1 and "No cluster running" in status.stdout

    # A bad override stops 'up' before anything starts, naming the key.
    bad = _local_cluster("up", *opts, "--override", "min.insync.replicas=zero")
    assert bad.returncode != 0 and "min.insync.replicas" in bad.stderr, bad.stderr

    # Second run: same cluster (data kept), with an override, stopped with Ctrl-C.
    proc, out = up("--override", "log.retention.ms=1234")
    try:
        out.wait_for("Running; press Ctrl-C to stop.")
        props = load_properties(data / "node-1" / "server.properties")
        assert props["log.retention.ms"] == "1234"
        from confluent_kafka import admin as ca

        client = ca.AdminClient({"bootstrap.servers": f"127.0.0.1:{9102 + int(offset)}"})
        res = ca.ConfigResource(ca.ResourceType.BROKER, "1")
        entry = client.describe_configs([res])[res].result(30)["log.retention.ms"]
        assert entry.value == "1234"
        assert entry.source == ca.ConfigSource.STATIC_BROKER_CONFIG.value
        pids = [n["pid"] for n in json.loads((data / "cluster.pids").read_text())["nodes"]]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=TIMEOUT_S) == 0
        text = out.rest()
        assert "New cluster" not in text
        assert "Received SIGINT, stopping the cluster" in text
        assert "Node 1 exited with code 0" in text and "Node 2 exited with code 0" in text
        assert json.loads((data / "cluster.json").read_text())["cluster_id"] == cluster_id
        for pid in pids:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
