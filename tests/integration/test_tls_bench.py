"""``python -m tools.tls_bench`` runs end to end on a small load: both listeners measured
through confluent-kafka, every record produced and read back, the ratio printed."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from tools.proc_cluster import REPO, env

pytest.importorskip("confluent_kafka")


def test_tls_bench_measures_both_listeners() -> None:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl CLI is not installed")
    r = subprocess.run([sys.executable, "-m", "tools.tls_bench", "--records", "3000",
                        "--rounds", "1", "--partitions", "2"], cwd=REPO, env=env(),
                       capture_output=True, text=True, timeout=240, check=False)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    rows = {m.group(1): [float(x.replace(",", "")) for x in m.groups()[1:]]
            for m in re.finditer(r"^(PLAINTEXT|SSL) +([\d,]+) +([\d.]+) +([\d,]+) +([\d.]+)$",
                                 r.stdout, re.MULTILINE)}
    assert set(rows) == {"PLAINTEXT", "SSL"}, r.stdout
    assert all(v > 0 for row in rows.values() for v in row), r.stdout
    ratio = re.search(r"^SSL/PLAIN +([\d.]+) +([\d.]+)$", r.stdout, re.MULTILINE)
    assert ratio is not None and float(ratio.group(1)) > 0, r.stdout
