"""The web console (broker/admin/ui/, served at /ui) in a real browser: Debian's chromium,
headless, driven by selenium through chromium-driver, against a live 3-node cluster.

Each page is clicked through: overview (cluster id, health, quorum), brokers (and a broker's
log dirs), topics (creating one through the form, with its confirmation), a topic (partitions,
a preferred leader election, a config change, the message browser as text and hex), consumer
groups and a group (members, offsets and lag, the lag chart sampling over time, resetting the
offsets of the inactive group). Skips with the reason when no browser is installed.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from tools.proc_cluster import ProcCluster

ck = pytest.importorskip("confluent_kafka")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="no browser: install Debian's chromium and chromium-driver (make system-deps)")

WAIT_S = 30.0


def wait_until(pred: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = pred()
        except Exception as e:  # noqa: BLE001 - the page is still changing
            last = e
        else:
            if last:
                return last
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached in {timeout}s (last: {last!r})")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcCluster]:
    c = ProcCluster(tmp_path_factory.mktemp("console"), controllers=3, brokers=0,
                    combined=True, admin=True,
                    extra={"offsets.topic.replication.factor": "3",
                           "offsets.topic.num.partitions": "3"})
    c.start()
    try:
        for n in c.nodes.values():
            wait_until(lambda n=n: requests.get(n.admin_url + "/v1/status/ready",
                                                timeout=10).ok, f"node {n.node_id} ready")
        yield c
    finally:
        c.shutdown()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    opts = Options()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


def by_id(driver: Any, id_: str) -> Any:
    from selenium.webdriver.common.by import By
    return wait_until(lambda: driver.find_element(By.ID, id_), f"#{id_}")


def rows(driver: Any, table_id: str) -> list[list[str]]:
    from selenium.webdriver.common.by import By
    table = by_id(driver, table_id)
    return [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
            for tr in table.find_elements(By.CSS_SELECTOR, "tbody tr")]


def accept_confirm(driver: Any) -> None:
    alert = wait_until(lambda: driver.switch_to.alert, "confirmation dialog")
    alert.accept()


def flash(driver: Any, contains: str) -> str:
    return wait_until(lambda: contains in by_id(driver, "flash").text and by_id(driver, "flash").text,
                      f"flash {contains!r}")


def test_pages_and_forms(cluster: ProcCluster, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    base = cluster.nodes[1].admin_url + "/ui/"
    assert requests.post(cluster.nodes[1].admin_url + "/v1/topics", timeout=30, json={
        "name": "seen", "partitions": 2, "replication_factor": 3}).status_code == 201
    producer = ck.Producer({"bootstrap.servers": cluster.bootstrap_servers, "acks": "all"})
    for k in range(12):
        producer.produce("seen", key=b"k%d" % k, value=b"hello %d" % k, partition=k % 2,
                         headers=[("h", b"\x00\x01")])
    assert producer.flush(30) == 0

    # Overview: cluster id, health, the quorum's voters.
    browser.get(base)
    wait_until(lambda: by_id(browser, "cluster-id").text == cluster.cluster_id, "cluster id")
    assert "healthy" in browser.find_element(By.TAG_NAME, "main").text
    quorum = wait_until(lambda: rows(browser, "quorum-table"), "quorum rows")
    assert sorted(r[0] for r in quorum) == ["1", "2", "3"]
    assert sum(r[1] == "leader" for r in quorum) == 1

    # Brokers and one broker's log dirs.
    by_id(browser, "nav-brokers").click()
    wait_until(lambda: len(rows(browser, "brokers-table")) == 3, "3 brokers")
    browser.find_element(By.CSS_SELECTOR, "#brokers-table button").click()
    dirs = wait_until(lambda: rows(browser, "log-dirs-table"), "log dirs")
    assert dirs[0][1] == "online" and int(dirs[0][2]) >= 1

    # Topics: create one through the form (confirmed), then open it.
    by_id(browser, "nav-topics").click()
    wait_until(lambda: any(r[0] == "seen" for r in rows(browser, "topics-table")), "topic seen")
    by_id(browser, "new-topic-name").send_keys("made-in-browser")
    by_id(browser, "create-topic").find_element(By.CSS_SELECTOR, "button").click()
    accept_confirm(browser)
    flash(browser, "done")
    made = wait_until(lambda: [r for r in rows(browser, "topics-table")
                               if r[0] == "made-in-browser"], "created topic listed")
    assert made[0][1:3] == ["3", "3"]
    assert requests.get(cluster.nodes[2].admin_url + "/v1/topics/made-in-browser",
                        timeout=10).status_code == 200

    # A topic: partitions, election, config change, message browser.
    browser.find_element(By.LINK_TEXT, "seen").click()
    parts = wait_until(lambda: rows(browser, "partitions-table"), "partitions")
    assert [r[0] for r in parts] == ["0", "1"]
    assert all(r[5] == "in sync" for r in parts)
    browser.find_element(By.CSS_SELECTOR, "#partitions-table button.elect").click()
    accept_confirm(browser)
    flash(browser, "Elect the preferred leader")
    by_id(browser, "config-key").send_keys("retention.ms")
    by_id(browser, "config-value").send_keys("3600000")
    by_id(browser, "config-form").find_element(By.CSS_SELECTOR, "button").click()
    accept_confirm(browser)
    wait_until(lambda: ["retention.ms", "3600000", "set on topic"] in rows(browser, "configs-table"),
               "config shown as set")
    by_id(browser, "browse-limit").clear()
    by_id(browser, "browse-limit").send_keys("3")
    by_id(browser, "browse-form").find_element(By.CSS_SELECTOR, "button").click()
    recs = wait_until(lambda: rows(browser, "records-table"), "records")
    assert [r[0] for r in recs] == ["3", "4", "5"]
    assert [r[3] for r in recs] == ["hello 6", "hello 8", "hello 10"]
    assert recs[0][2] == "k6" and recs[0][4] == "h=00 01"
    from selenium.webdriver.support.ui import Select
    Select(by_id(browser, "browse-mode")).select_by_value("hex")
    wait_until(lambda: rows(browser, "records-table")[0][3] == "68 65 6c 6c 6f 20 36", "hex view")

    # Consumer groups: a group with committed offsets, then inactive.
    consumer = ck.Consumer({"bootstrap.servers": cluster.bootstrap_servers, "group.id": "viewers",
                            "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe(["seen"])
    got = 0
    deadline = time.monotonic() + 45
    while got < 12 and time.monotonic() < deadline:
        m = consumer.poll(0.5)
        if m is not None and m.error() is None:
            got += 1
    assert got == 12
    consumer.commit(asynchronous=False)
    consumer.close()
    by_id(browser, "nav-groups").click()
    wait_until(lambda: any(r[0] == "viewers" for r in rows(browser, "groups-table")), "group listed")
    browser.find_element(By.LINK_TEXT, "viewers").click()
    wait_until(lambda: by_id(browser, "group-state").text == "Empty", "group inactive")
    offsets = rows(browser, "offsets-table")
    assert sorted((r[1], r[2], r[4]) for r in offsets) == [("0", "6", "0"), ("1", "6", "0")]
    # The lag chart samples while the page is open.
    wait_until(lambda: int(by_id(browser, "lag-chart").get_attribute("data-samples")) >= 2,
               "two lag samples", timeout=20)
    Select(by_id(browser, "reset-to")).select_by_value("earliest")
    by_id(browser, "reset-form").find_element(By.CSS_SELECTOR, "button").click()
    accept_confirm(browser)
    wait_until(lambda: by_id(browser, "total-lag").text == "12", "lag after the reset")
    g = requests.get(cluster.nodes[3].admin_url + "/v1/consumer-groups/viewers", timeout=10).json()
    assert {o["committed_offset"] for o in g["offsets"]} == {0}


def test_console_assets_are_served_with_a_strict_policy(cluster: ProcCluster) -> None:
    base = cluster.nodes[2].admin_url
    r = requests.get(base + "/ui", timeout=10, allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"] == "/ui/"
    r = requests.get(base + "/ui/", timeout=10)
    assert r.ok and r.headers["Content-Type"].startswith("text/html")
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    for name, ctype in (("app.js", "text/javascript"), ("style.css", "text/css")):
        r = requests.get(f"{base}/ui/static/{name}", timeout=10)
        assert r.ok and r.headers["Content-Type"].startswith(ctype), name
    for bad in ("../http.py", "..%2Fhttp.py", "nope.js", "http_ui.py"):
        assert requests.get(f"{base}/ui/static/{bad}", timeout=10).status_code == 404, bad
