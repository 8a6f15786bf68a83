"""The web console (issue 15) in a real browser against a real 3-broker cluster.

The cluster is conftest's `cluster` fixture (cluster.py): the same cluster
scripts/run-cluster.sh starts (one etcd 3.6, brokers 0-2 on loopback, racks
zone-a/b/c, each with its own console listener), here with a lease TTL of 3 s, a console
history interval of 1 s (so charts gain a point a second) and broker 2's console
read-only (`--console.read.only=true`); the other tests use brokers 0 and 1's consoles.

The browser is Debian's Chromium (apt `chromium`, installed by scripts/setup.sh;
RUNNEL_CHROMIUM names another binary), headless, driven by playwright
(tests/requirements.txt) through `executable_path`: playwright downloads no browser.
What a page shows is compared with what Kafka clients see (kafka-python: Metadata,
ListOffsets, DescribeGroups, OffsetFetch) and with Kafka's own CLI tools (kafka-topics,
kafka-consumer-groups, from scripts/kafka-jars.sh); the selectors are the markup of the
console's contract (routes, ids, data-col).

Every page is screenshotted (full page) into target/test-artifacts/console/; with
RUNNEL_CONSOLE_DOCS_SCREENSHOTS=1 the overview, topic and group shots are also copied to
docs/console/ (the README's pictures). First Contentful Paint of the overview and the
time the overview takes to show a killed broker's partitions as under-replicated are
printed and listed under "cluster timings". Tests run in file order and build on the
data the module fixture makes; the broker kill comes last."""

import http.client
import os
import shutil
import threading
import time
import uuid
from datetime import datetime
from urllib.parse import quote, urlencode, urlsplit

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.structs import OffsetAndMetadata

from cluster import ROOT, TTL_MS, timing, wait_until
from groups import coordinator

READ_ONLY_BROKER = 2


def BROKER_ARGS(broker):  # noqa: N802 - conftest reads the module attribute by this name
    args = ["--console.history.interval.ms=1000"]
    if broker.id == READ_ONLY_BROKER:
        args.append("--console.read.only=true")
    return args


ARTIFACTS = ROOT / "target" / "test-artifacts" / "console"
DOCS = ROOT / "docs" / "console"
TOPICS_TOOL = "org.apache.kafka.tools.TopicCommand"
GROUPS_TOOL = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"
UNKNOWN = "\u2013"

# The module's data (made once by the `data` fixture).
DATA = "e2e-orders"  # 3 partitions, RF 3; partition 0 trimmed to start at 3
DATA_RETENTION = "86400000"
PRODUCED = {0: 12, 1: 7, 2: 0}  # records per partition
TRIMMED = 3  # partition 0's log start after DeleteRecords
READERS = "e2e-readers"  # two live members on DATA
READER_IDS = ("e2e-reader-1", "e2e-reader-2")
READERS_COMMITTED = {0: 8, 1: 7, 2: 0}
MARKUP_GROUP = "<img src=x onerror=alert(1)>"  # group ids are free text
MARKUP_TOPIC = "e2e-markup"
MARKUP_VALUE = '<img src=x onerror=alert(2)><script>alert(3)</script>"&amp;'
MARKUP_KEY = "<b>key</b>"


# --- browser -------------------------------------------------------------------------


def chromium_path():
    """The system Chromium; a missing one fails (never skips): CI must run this."""
    found = os.environ.get("RUNNEL_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("no chromium on PATH: scripts/setup.sh installs Debian's `chromium` (or set RUNNEL_CHROMIUM)")
    return found


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    with sync_playwright() as p:
        started = time.monotonic()
        b = p.chromium.launch(executable_path=path, headless=True)
        print(f"chromium {b.version} ({path}) launched in {time.monotonic() - started:.2f} s")
        yield b
        b.close()


class Tab:
    """A page of one browser context (its own cookies) on one broker's console, with the
    alerts and script errors it saw (the fixture fails the test on any). console.js asks
    before a destructive form is sent (window.confirm): those are accepted, as a user
    would, and kept in `confirms`."""

    def __init__(self, context, base):
        self.context = context
        self.base = base
        self.page = context.new_page()
        self.dialogs = []
        self.confirms = []
        self.errors = []
        self.page.on("dialog", self._dialog)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _dialog(self, dialog):
        if dialog.type == "confirm":
            self.confirms.append(dialog.message)
            dialog.accept()
            return
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def open(self, path, status=200):
        response = self.page.goto(self.base + path, wait_until="load")
        assert response is not None, path
        assert response.status == status, f"GET {self.base}{path}: status {response.status}, expected {status}"
        return self

    def reload(self):
        response = self.page.reload(wait_until="load")
        status = response and response.status
        assert status == 200, f"reload of {self.page.url}: {status}"
        return self

    def text(self, selector):
        """The element's trimmed text, or None when it is absent."""
        return self.page.evaluate(
            "s => { const e = document.querySelector(s); return e ? e.textContent.trim() : null }", selector
        )

    def rows(self, selector):
        """A table's body rows: [{"keys": the row's data-* attributes, "cells": data-col →
        text}], or None when there is no such table."""
        return self.page.evaluate(ROWS_JS, selector)

    def row(self, selector, **keys):
        """The one row whose data-* attributes include `keys` (values compared as text)."""
        rows = self.rows(selector) or []
        want = {k: str(v) for k, v in keys.items()}
        found = [r for r in rows if all(r["keys"].get(k) == v for k, v in want.items())]
        assert len(found) == 1, f"{self.page.url}: {selector} rows with {want}: {len(found)} of {rows}"
        return found[0]

    def shoot(self, name):
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


ROWS_JS = """selector => {
  const table = document.querySelector(selector);
  if (!table) return null;
  return Array.from(table.querySelectorAll('tr'))
    .filter(r => !r.closest('thead') && r.querySelector('[data-col]'))
    .map(r => {
      const cells = {};
      for (const c of r.querySelectorAll('[data-col]')) cells[c.dataset.col] = c.textContent.trim();
      return {keys: Object.assign({}, r.dataset), cells};
    });
}"""


@pytest.fixture
def tabs(browser):
    """Opens tabs (each in a fresh browser context) on a broker's console; at the end, a
    dialog (an injected script ran) or a script error in any of them fails the test."""
    opened = []

    def open_tab(broker):
        assert broker.console_url, "the broker binary has no console.listener (cluster.py found none in --help)"
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        tab = Tab(context, broker.console_url)
        opened.append(tab)
        return tab

    yield open_tab
    problems = []
    for tab in opened:
        problems += [f"dialog {d} on {tab.page.url}" for d in tab.dialogs]
        problems += [f"script error {e} on {tab.page.url}" for e in tab.errors]
        tab.context.close()
    assert not problems, problems


def eventually(what, check, timeout, interval=0.3):
    """Calls `check` until it returns (True, _); fails with the last detail it gave."""
    last = [None]

    def attempt():
        ok, detail = check()
        last[0] = detail
        return ok

    try:
        return wait_until(what, attempt, timeout, interval)[1]
    except AssertionError as e:
        raise AssertionError(f"{e}\nlast seen: {last[0]}") from None


def number(text):
    """A cell's integer, None for the unknown mark."""
    return None if text in (UNKNOWN, "") else int(text)


def ids(text):
    return [int(i) for i in text.split(",") if i.strip()] if text.strip() not in ("", UNKNOWN) else []


def set_field(form, name, value):
    """Fills a form field whatever its kind (select, radio buttons, text, textarea)."""
    field = form.locator(f'[name="{name}"]')
    assert field.count() >= 1, f"the form has no field named {name!r}"
    kind = field.first.evaluate("e => e.tagName.toLowerCase() + ':' + (e.type || '')")
    if kind.startswith("select"):
        field.first.select_option(value)
    elif kind.endswith(":radio"):
        form.locator(f'[name="{name}"][value="{value}"]').check()
    else:
        field.first.fill(value)


def submit(tab, form_id, fields):
    """Fills the form, ticks `confirm`, submits it and returns the notice it led to."""
    form = tab.page.locator(f"form#{form_id}")
    assert form.count() == 1, f"{tab.page.url}: no form#{form_id}"
    for name, value in fields.items():
        set_field(form, name, value)
    form.locator('[name="confirm"]').check()
    with tab.page.expect_navigation(wait_until="load"):
        form.locator('[type="submit"]').first.click()
    notice = tab.page.locator("#notice")
    if notice.count() != 1:
        shown = tab.page.locator("main").inner_text() if tab.page.locator("main").count() else tab.page.content()
        raise AssertionError(f"no #notice after submitting {form_id}: {tab.page.url} shows {shown[:600]!r}")
    return notice.get_attribute("class") or "", notice.inner_text().strip()


# --- Kafka clients -----------------------------------------------------------------


def admin(cluster):
    return KafkaAdminClient(bootstrap_servers=cluster.bootstrap, request_timeout_ms=10000)


def metadata(cluster):
    """(describe_cluster, describe_topics) through a client."""
    a = admin(cluster)
    try:
        return a.describe_cluster(), a.describe_topics()
    finally:
        a.close()


def list_offsets(cluster, topic, partitions):
    """partition → (log start, log end), by ListOffsets (earliest, latest)."""
    c = KafkaConsumer(bootstrap_servers=cluster.bootstrap, request_timeout_ms=15000)
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        start, end = c.beginning_offsets(tps), c.end_offsets(tps)
    finally:
        c.close()
    return {tp.partition: (start[tp], end[tp]) for tp in tps}


def group_offsets(cluster, group):
    """(topic, partition) → committed offset, by OffsetFetch."""
    a = admin(cluster)
    try:
        found = a.list_group_offsets(group).get(group, {})
    finally:
        a.close()
    return {(tp.topic, tp.partition): meta.offset for tp, meta in found.items()}


def describe_group(cluster, group):
    a = admin(cluster)
    try:
        return a.describe_groups([group])[group]
    finally:
        a.close()


def topic_names(cluster):
    a = admin(cluster)
    try:
        return set(a.list_topics())
    finally:
        a.close()


def create_topic(cluster, name, partitions, rf, configs=None):
    a = admin(cluster)
    try:
        a.create_topics([NewTopic(name, partitions, rf, topic_configs=configs or {})])
    finally:
        a.close()
    wait_until(f"{name} in Metadata", lambda: name in topic_names(cluster), 15)


def produce(cluster, topic, records):
    """records: (partition, key, value, headers) tuples."""
    p = KafkaProducer(bootstrap_servers=cluster.bootstrap, acks="all", linger_ms=5)
    try:
        for partition, key, value, headers in records:
            p.send(topic, value=value, key=key, partition=partition, headers=headers)
        p.flush(timeout=30)
    finally:
        p.close()


def consumer(cluster, group, client_id):
    return KafkaConsumer(
        bootstrap_servers=cluster.bootstrap,
        group_id=group,
        client_id=client_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=30000,
    )


def poll_until(consumers, done, timeout, what):
    """Polls every consumer, each in a thread of its own, until `done()`. One thread
    polling them in turn can deadlock a rebalance: kafka-python's poll blocks in
    JoinGroup, which the coordinator holds until the other member (not being polled)
    rejoins too."""
    deadline = time.monotonic() + timeout
    stop = threading.Event()
    got, errors = [], []

    def run(c):
        try:
            while not stop.is_set() and time.monotonic() < deadline:
                for batch in c.poll(timeout_ms=200).values():
                    got.extend(batch)
        except Exception as e:  # reported below, with what was awaited
            errors.append(e)

    threads = [threading.Thread(target=run, args=(c,), daemon=True) for c in consumers]
    for t in threads:
        t.start()
    try:
        while time.monotonic() < deadline and not errors:
            if done():
                return got
            time.sleep(0.1)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=35)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (errors: {errors})")


def wait_group_state(cluster, group, state, timeout=30):
    wait_until(
        f"group {group} {state}", lambda: describe_group(cluster, group)["group_state"] == state, timeout, interval=0.3
    )


def cli_rows(output):
    """The table kafka-consumer-groups --describe prints, as dicts keyed by its header."""
    lines = [line.split() for line in output.splitlines() if line.strip()]
    header = next((line for line in lines if line[:2] == ["GROUP", "TOPIC"]), None)
    assert header, output
    return [dict(zip(header, line)) for line in lines if line != header and len(line) >= len(header) - 3]


class Data:
    """The module's topics and groups; `readers` are the two live members of READERS."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.readers = []
        create_topic(cluster, DATA, 3, 3, {"retention.ms": DATA_RETENTION})
        produce(
            cluster,
            DATA,
            [
                (p, f"k{i}".encode(), f"order {p}-{i}".encode(), [("source", b"e2e")] if i == 5 else [])
                for p, count in PRODUCED.items()
                for i in range(count)
            ],
        )
        a = admin(cluster)
        try:
            a.delete_records({TopicPartition(DATA, 0): TRIMMED})
        finally:
            a.close()
        # Two members split the partitions; each commits its own at READERS_COMMITTED.
        self.readers = [consumer(cluster, READERS, client_id) for client_id in READER_IDS]
        for c in self.readers:
            c.subscribe([DATA])

        def split():
            owned = [c.assignment() for c in self.readers]
            return all(owned) and sum(len(o) for o in owned) == 3

        poll_until(self.readers, split, 60, f"{READERS}'s two members to share {DATA}")
        for c in self.readers:
            c.commit({tp: OffsetAndMetadata(READERS_COMMITTED[tp.partition], "", -1) for tp in c.assignment()})
        wait_group_state(cluster, READERS, "Stable")
        self.owner = {tp.partition: cid for c, cid in zip(self.readers, READER_IDS) for tp in c.assignment()}
        # A group whose id is markup: offsets committed without members (AlterOffsets).
        a = admin(cluster)
        try:
            errors = a.alter_group_offsets(MARKUP_GROUP, {TopicPartition(DATA, 1): OffsetAndMetadata(2, "", -1)})
        finally:
            a.close()
        assert all(e.__name__ == "NoError" for e in errors.values()), errors
        create_topic(cluster, MARKUP_TOPIC, 1, 1)
        produce(cluster, MARKUP_TOPIC, [(0, MARKUP_KEY.encode(), MARKUP_VALUE.encode(), [])])

    def close_readers(self):
        for c in self.readers:
            c.close()
        self.readers = []


@pytest.fixture(scope="module")
def data(cluster):
    d = Data(cluster)
    yield d
    d.close_readers()


def console(cluster, broker_id=0):
    return cluster.brokers[broker_id]


# --- 1: every page renders what a Kafka client sees ---------------------------------


def test_pages_render_what_a_kafka_client_sees(cluster, data, tabs):
    tab = tabs(console(cluster))

    def overview_matches():
        described, topics = metadata(cluster)
        a = admin(cluster)
        try:
            groups = a.list_groups()
        finally:
            a.close()
        partitions = [p for t in topics for p in t["partitions"]]
        want = {
            "controller": str(described["controller_id"]),
            "brokers-live": str(len(described["brokers"])),
            "topic-count": str(len(topics)),
            "partition-count": str(len(partitions)),
            "under-replicated": str(sum(len(p["isr_nodes"]) < len(p["replica_nodes"]) for p in partitions)),
            "offline": str(sum(p["leader_id"] < 0 for p in partitions)),
            "group-count": str(len({g["group_id"] for g in groups})),
        }
        tab.open("/ui")
        got = {key: tab.text(f"#summary #{key}") for key in want}
        return got == want, {"page": got, "client": want}

    took = eventually("the overview's summary to match Metadata", overview_matches, 20)
    timing("console", "overview summary agreed with Metadata", took)
    assert (tab.text("#store-health") or "").startswith("healthy"), tab.text("#store-health")
    tab.shoot("overview")

    def brokers_table(tab):
        described, topics = metadata(cluster)
        partitions = [p for t in topics for p in t["partitions"]]
        want = {
            str(b["broker_id"]): {
                "id": str(b["broker_id"]),
                "state": "live",
                "rack": b["rack"],
                "address": f'{b["host"]}:{b["port"]}',
                "replicas": str(sum(b["broker_id"] in p["replica_nodes"] for p in partitions)),
                "leaders": str(sum(p["leader_id"] == b["broker_id"] for p in partitions)),
            }
            for b in described["brokers"]
        }
        rows = tab.rows("table#brokers") or []
        cols = ("id", "state", "rack", "address", "replicas", "leaders")
        got = {r["keys"].get("broker"): {k: r["cells"].get(k) for k in cols} for r in rows}
        controllers = [r["keys"].get("broker") for r in rows if r["keys"].get("controller") == "true"]
        ok = got == want and controllers == [str(described["controller_id"])]
        return ok, {"page": got, "client": want, "controller rows": controllers}

    for path in ("/ui", "/ui/brokers"):
        eventually(f"{path}'s brokers table to match Metadata", lambda: brokers_table(tab.open(path)), 20)
    tab.shoot("brokers")

    # A broker's page: its log directories are the ones DescribeLogDirs names.
    a = admin(cluster)
    try:
        dirs = a.describe_log_dirs(brokers=[0])[0]["log_dirs"]
    finally:
        a.close()
    tab.open("/ui/brokers/0")
    assert tab.text("#broker-state") == "live"
    assert tab.text("#broker-version"), "no version on /ui/brokers/0"
    page_dirs = {r["keys"].get("dir") for r in tab.rows("table#log-dirs") or []}
    assert page_dirs == {d["log_dir"] for d in dirs}, (page_dirs, dirs)
    tab.shoot("broker")

    # The topics list and a topic's partitions: leaders, epochs, replicas, ISR, offsets.
    offsets = list_offsets(cluster, DATA, PRODUCED)
    assert offsets == {0: (TRIMMED, PRODUCED[0]), 1: (0, PRODUCED[1]), 2: (0, 0)}, offsets

    def topic_matches():
        _, topics = metadata(cluster)
        [t] = [t for t in topics if t["name"] == DATA]
        want = {
            str(p["partition_index"]): {
                "leader": str(p["leader_id"]),
                "leader-epoch": str(p["leader_epoch"]),
                "replicas": p["replica_nodes"],
                "isr": sorted(p["isr_nodes"]),
                "log-start": offsets[p["partition_index"]][0],
                "log-end": offsets[p["partition_index"]][1],
            }
            for p in t["partitions"]
        }
        tab.open(f"/ui/topics/{DATA}")
        got = {}
        for r in tab.rows("table#partitions") or []:
            c = r["cells"]
            got[r["keys"].get("partition")] = {
                "leader": c.get("leader"),
                "leader-epoch": c.get("leader-epoch"),
                "replicas": ids(c.get("replicas", "")),
                "isr": sorted(ids(c.get("isr", ""))),
                "log-start": number(c.get("log-start", "")),
                "log-end": number(c.get("log-end", "")),
            }
        return got == want, {"page": got, "client": want}

    eventually(f"/ui/topics/{DATA}'s partitions to match Metadata and ListOffsets", topic_matches, 20)
    config = tab.row("table#configs", config="retention.ms")["cells"]
    assert (config.get("value"), config.get("source")) == (DATA_RETENTION, "topic"), config
    lag = sum(PRODUCED[p] - READERS_COMMITTED[p] for p in PRODUCED)
    assert number(tab.row("table#consumers", group=READERS)["cells"].get("lag")) == lag
    tab.shoot("topic")

    tab.open("/ui/topics")
    row = tab.row("table#topics", topic=DATA)["cells"]
    messages = sum(end - start for start, end in offsets.values())
    shown = (row.get("partitions"), row.get("replication-factor"), number(row.get("messages")))
    assert shown == ("3", "3", messages), row
    tab.shoot("topics")

    # The group: state, members' client ids, committed offsets and lag.
    def group_matches():
        described = describe_group(cluster, READERS)
        committed = group_offsets(cluster, READERS)
        ends = list_offsets(cluster, DATA, PRODUCED)
        tab.open(f"/ui/groups/{READERS}")
        page = {
            "state": tab.text("#group-state"),
            "total-lag": number(tab.text("#total-lag") or ""),
            "coordinator": tab.text("#group-coordinator"),
            "members": {r["keys"].get("member"): r["cells"].get("client-id") for r in tab.rows("table#members") or []},
            "offsets": {
                (r["keys"].get("topic"), int(r["keys"].get("partition", -1))): (
                    number(r["cells"].get("committed", "")),
                    number(r["cells"].get("log-end", "")),
                    number(r["cells"].get("lag", "")),
                    r["cells"].get("owner"),
                )
                for r in tab.rows("table#offsets") or []
            },
        }
        client = {
            "state": described["group_state"],
            "total-lag": sum(ends[p][1] - o for (_, p), o in committed.items()),
            "coordinator": str(coordinator(cluster.bootstrap, READERS)),
            "members": {m["member_id"]: m["client_id"] for m in described["members"]},
            "offsets": {
                (t, p): (o, ends[p][1], ends[p][1] - o, data.owner[p]) for (t, p), o in committed.items()
            },
        }
        return page == client, {"page": page, "client": client}

    eventually(f"/ui/groups/{READERS} to match DescribeGroups and OffsetFetch", group_matches, 20)
    assert describe_group(cluster, READERS)["group_state"] == "Stable"
    members = tab.rows("table#members")
    assert sorted(r["cells"].get("client-id") for r in members) == sorted(READER_IDS), members
    for r in members:
        client_id = r["cells"]["client-id"]
        mine = sorted(p for p, owner in data.owner.items() if owner == client_id)
        assert r["cells"].get("assignment") == f"{DATA}: {','.join(map(str, mine))}", r
    tab.shoot("group")

    tab.open("/ui/groups")
    row = tab.row("table#groups", group=READERS)["cells"]
    assert (row.get("state"), row.get("members"), number(row.get("lag"))) == ("Stable", "2", lag), row
    assert row.get("coordinator") == str(coordinator(cluster.bootstrap, READERS)), row
    tab.shoot("groups")

    # The message browser shows what a consumer reads from the log start on.
    c = KafkaConsumer(bootstrap_servers=cluster.bootstrap, enable_auto_commit=False, consumer_timeout_ms=3000)
    try:
        tp = TopicPartition(DATA, 0)
        c.assign([tp])
        c.seek_to_beginning(tp)
        records = list(c)
    finally:
        c.close()
    assert [r.offset for r in records] == list(range(TRIMMED, PRODUCED[0]))
    tab.open(f"/ui/topics/{DATA}/messages?partition=0&from=earliest&limit=20&format=text")
    rows = tab.rows("table#messages") or []
    assert [int(r["keys"].get("offset", -1)) for r in rows] == [r.offset for r in records], rows
    for record, row in zip(records, rows):
        cells = row["cells"]
        assert (cells.get("key"), cells.get("value")) == (record.key.decode(), record.value.decode()), cells
        shown = datetime.fromisoformat(cells["timestamp"].replace("Z", "+00:00")).timestamp() * 1000
        assert abs(shown - record.timestamp) < 1000, (cells["timestamp"], record.timestamp)
        if record.headers:
            headers = cells.get("headers", "")
            assert all(k in headers and v.decode() in headers for k, v in record.headers), cells
    assert tab.page.locator("#next-page").count() == 0, "a next-page link at the end of the log"
    tab.shoot("messages")
    # Paging: 5 rows and a link on to the rest.
    tab.open(f"/ui/topics/{DATA}/messages?partition=0&from=earliest&limit=5&format=text")
    first = [int(r["keys"]["offset"]) for r in tab.rows("table#messages") or []]
    assert first == list(range(TRIMMED, TRIMMED + 5)), first
    with tab.page.expect_navigation(wait_until="load"):
        tab.page.locator("#next-page").click()
    rest = [int(r["keys"]["offset"]) for r in tab.rows("table#messages") or []]
    assert rest == list(range(TRIMMED + 5, PRODUCED[0])), rest


# --- 2: a topic created through the form is what kafka-topics lists ------------------


def test_create_topic_form_makes_a_topic_kafka_topics_lists(cluster, data, tabs, kafka_cli):
    name = f"e2e-created-{uuid.uuid4().hex[:8]}"
    tab = tabs(console(cluster, 1)).open("/ui/topics")
    cls, text = submit(
        tab,
        "create-topic",
        {
            "name": name,
            "partitions": "3",
            "replication_factor": "2",
            "configs": "retention.ms=3600000\ncleanup.policy=delete",
        },
    )
    assert "ok" in cls.split(), f"notice {cls!r}: {text}"
    started = time.monotonic()
    code, out, err = kafka_cli(TOPICS_TOOL, "--bootstrap-server", cluster.bootstrap, "--list")
    timing("console", "kafka-topics --list", time.monotonic() - started)
    assert code == 0, err[-3000:]
    assert name in out.split(), f"{name} not in kafka-topics --list:\n{out}"
    code, out, err = kafka_cli(TOPICS_TOOL, "--bootstrap-server", cluster.bootstrap, "--describe", "--topic", name)
    assert code == 0, err[-3000:]
    head = next(line for line in out.splitlines() if "PartitionCount" in line)
    fields = dict(f.strip().split(": ", 1) for f in head.strip().split("\t") if ": " in f)
    assert (fields["PartitionCount"], fields["ReplicationFactor"]) == ("3", "2"), head
    assert "retention.ms=3600000" in fields.get("Configs", ""), head
    assert "cleanup.policy=delete" in fields.get("Configs", ""), head
    # And the console's own page for it.
    tab.open(f"/ui/topics/{name}")
    assert len(tab.rows("table#partitions") or []) == 3
    assert tab.row("table#configs", config="retention.ms")["cells"].get("value") == "3600000"


# --- 3: lag moves and the lag chart gains points -------------------------------------


def test_group_lag_moves_and_the_lag_chart_gains_points(cluster, data, tabs):
    topic, group = "e2e-lag", "e2e-lag-group"
    create_topic(cluster, topic, 2, 2)
    produce(cluster, topic, [(p, None, f"a{p}-{i}".encode(), []) for p in (0, 1) for i in range(5)])
    c = consumer(cluster, group, "e2e-lag-consumer")
    try:
        c.subscribe([topic])
        got = []
        deadline = time.monotonic() + 60
        while len(got) < 10 and time.monotonic() < deadline:
            for batch in c.poll(timeout_ms=300).values():
                got.extend(batch)
        assert len(got) == 10, f"consumed {len(got)} of 10"
        c.commit()
        tab = tabs(console(cluster)).open(f"/ui/groups/{group}")

        def lag_is(want):
            def check():
                tab.reload()
                lags = {r["keys"].get("partition"): r["cells"].get("lag") for r in tab.rows("table#offsets") or []}
                shown = (tab.text("#total-lag"), lags)
                return shown[0] == str(want), shown
            return check

        eventually("total lag 0 after consuming everything", lag_is(0), 20)
        def points():
            return int(tab.page.locator("svg#chart-lag").get_attribute("data-points") or "0")

        before = points()
        started = time.monotonic()
        produce(cluster, topic, [(p, None, f"b{p}-{i}".encode(), []) for p in (0, 1) for i in range(20)])
        took = eventually("total lag 40 after producing 40", lag_is(40), 20)
        timing("console", "group page shows the lag of 40 new records", took)
        assert {r["keys"]["partition"]: r["cells"]["lag"] for r in tab.rows("table#offsets")} == {"0": "20", "1": "20"}
        more = []
        deadline = time.monotonic() + 30
        while len(more) < 40 and time.monotonic() < deadline:
            for batch in c.poll(timeout_ms=300).values():
                more.extend(batch)
        assert len(more) == 40, f"consumed {len(more)} of 40"
        c.commit()
        eventually("total lag 0 after consuming them", lag_is(0), 20)

        # One sample a second: the chart has gained points meanwhile (at least 2 more).
        def gained():
            tab.reload()
            return points() >= before + 2

        wait_until("the lag chart to gain points", gained, 15, interval=0.5)
        print(f"lag chart: {before} points, then {points()} after {time.monotonic() - started:.1f} s")
        assert topic in (tab.text("figure.chart:has(svg#chart-lag) figcaption") or ""), "the lag chart names no series"
        tab.shoot("group-lag")
    finally:
        c.close()


# --- 9: accessibility smoke on every page, and their screenshots ---------------------


A11Y_JS = """() => {
  const out = {h1: document.querySelectorAll('h1').length, inputs: 0, unlabelled: [], tables: [], current: []};
  for (const e of document.querySelectorAll('input, select, textarea')) {
    if (['hidden', 'submit', 'button', 'reset', 'image'].includes(e.type)) continue;
    out.inputs += 1;
    const named = e.labels.length > 0 || (e.getAttribute('aria-label') || '').trim()
      || e.getAttribute('aria-labelledby');
    if (!named) out.unlabelled.push(e.outerHTML.slice(0, 120));
  }
  for (const t of document.querySelectorAll('table')) {
    // Column headers: the thead's, or the first row's when there is no thead.
    const head = t.tHead || t.rows[0];
    const heads = head ? Array.from(head.querySelectorAll('th')) : [];
    const bad = heads.filter(th => th.getAttribute('scope') !== 'col').map(th => th.textContent.trim());
    out.tables.push({id: t.id, heads: heads.length, bad});
  }
  const nav = document.querySelector('nav[aria-label="Console"]');
  out.nav = !!nav;
  if (nav) out.current = Array.from(nav.querySelectorAll('[aria-current="page"]')).map(a => a.getAttribute('href'));
  out.main = !!document.querySelector('main#main');
  return out;
}"""


def test_every_page_is_accessible_and_screenshotted(cluster, data, tabs):
    tab = tabs(console(cluster))
    pages = [
        ("overview", "/ui", "/ui"),
        ("topics", "/ui/topics", "/ui/topics"),
        ("topic", f"/ui/topics/{DATA}", "/ui/topics"),
        ("messages", f"/ui/topics/{DATA}/messages?partition=0", "/ui/topics"),
        ("groups", "/ui/groups", "/ui/groups"),
        ("group", f"/ui/groups/{READERS}", "/ui/groups"),
        ("brokers", "/ui/brokers", "/ui/brokers"),
        ("broker", "/ui/brokers/1", "/ui/brokers"),
    ]
    problems = []
    inputs = tables = 0
    for name, path, section in pages:
        tab.open(path)
        found = tab.page.evaluate(A11Y_JS)
        inputs += found["inputs"]
        tables += len(found["tables"])
        if found["h1"] != 1:
            problems.append(f"{path}: {found['h1']} h1 elements")
        if found["unlabelled"]:
            problems.append(f"{path}: inputs without a label: {found['unlabelled']}")
        for t in found["tables"]:
            if t["heads"] == 0 or t["bad"]:
                problems.append(f"{path}: table#{t['id']}: {t['heads']} header cells, without scope=col: {t['bad']}")
        if not found["nav"]:
            problems.append(f"{path}: no nav[aria-label=Console]")
        elif found["current"] != [section]:
            problems.append(f"{path}: aria-current on {found['current']}, expected [{section!r}]")
        if not found["main"]:
            problems.append(f"{path}: no main#main")
        tab.shoot(name)
    assert not problems, "\n".join(problems)
    # Not vacuous: the pages had inputs (the forms, the message browser's) and tables.
    print(f"accessibility: {len(pages)} pages, {inputs} inputs, {tables} tables checked")
    assert inputs >= 10 and tables >= 10, (inputs, tables)
    if os.environ.get("RUNNEL_CONSOLE_DOCS_SCREENSHOTS") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        for name in ("overview", "topic", "group"):
            shutil.copyfile(ARTIFACTS / f"{name}.png", DOCS / f"{name}.png")


# --- 4: an offset reset through the console is what kafka-consumer-groups shows -----


def test_offset_reset_is_what_kafka_consumer_groups_describes(cluster, data, tabs, kafka_cli):
    topic, group = "e2e-reset", "e2e-reset-group"
    create_topic(cluster, topic, 2, 2)
    produce(cluster, topic, [(p, None, f"r{p}-{i}".encode(), []) for p in (0, 1) for i in range(10)])
    c = consumer(cluster, group, "e2e-reset-consumer")
    try:
        c.subscribe([topic])
        got = []
        deadline = time.monotonic() + 60
        while len(got) < 20 and time.monotonic() < deadline:
            for batch in c.poll(timeout_ms=300).values():
                got.extend(batch)
        assert len(got) == 20
        c.commit()
    finally:
        c.close()  # a reset needs an empty group
    wait_group_state(cluster, group, "Empty")
    assert group_offsets(cluster, group) == {(topic, 0): 10, (topic, 1): 10}

    tab = tabs(console(cluster)).open(f"/ui/groups/{group}")
    cls, text = submit(tab, "reset-offsets", {"topic": topic, "to": "offset", "value": "4"})
    assert "ok" in cls.split(), f"notice {cls!r}: {text}"
    assert group_offsets(cluster, group) == {(topic, 0): 4, (topic, 1): 4}

    code, out, err = kafka_cli(GROUPS_TOOL, "--bootstrap-server", cluster.bootstrap, "--describe", "--group", group)
    assert code == 0, f"{out}\n{err[-3000:]}"
    shown = {
        int(r["PARTITION"]): (r["CURRENT-OFFSET"], r["LOG-END-OFFSET"], r["LAG"])
        for r in cli_rows(out)
        if r.get("TOPIC") == topic
    }
    assert shown == {0: ("4", "10", "6"), 1: ("4", "10", "6")}, out
    tab.open(f"/ui/groups/{group}")
    page = {
        int(r["keys"]["partition"]): (r["cells"]["committed"], r["cells"]["log-end"], r["cells"]["lag"])
        for r in tab.rows("table#offsets")
    }
    assert page == shown, (page, shown)
    tab.shoot("group-reset")

    # The other targets, over all of the group's topics (its committed partitions):
    # earliest, latest, a time after every record (the log end) and one before them all.
    for to, value, want in (
        ("earliest", "", 0),
        ("latest", "", 10),
        ("timestamp", "2100-01-01T00:00", 10),
        ("timestamp", "0", 0),
    ):
        tab.open(f"/ui/groups/{group}")
        cls, text = submit(tab, "reset-offsets", {"topic": "", "to": to, "value": value})
        assert "ok" in cls.split(), f"reset to {to} {value}: notice {cls!r}: {text}"
        got = group_offsets(cluster, group)
        assert got == {(topic, 0): want, (topic, 1): want}, (to, value, got)


# --- 6: hostile requests --------------------------------------------------------------


def request(base, method, path, body=None, headers=None):
    """One raw HTTP request (no redirects followed, any Host); (status, headers, body)."""
    u = urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=15)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        headers = {"Host": u.netloc, **(headers or {})}
        data = urlencode(body).encode() if body is not None else None
        if data is not None:
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
            headers["Content-Length"] = str(len(data))
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.endheaders(data)
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read().decode(errors="replace")
    finally:
        conn.close()


def csrf_pair(tab):
    """(cookie token, form token) the console gave this browser on /ui/topics."""
    tab.open("/ui/topics")
    form_token = tab.page.locator('form#create-topic input[name="csrf"]').input_value()
    cookies = {c["name"]: c["value"] for c in tab.context.cookies()}
    assert "runnel_csrf" in cookies, f"no runnel_csrf cookie: {list(cookies)}"
    return cookies["runnel_csrf"], form_token


# Elements markup in the data would have made: an img with src x, any onerror handler, a
# script calling alert (the console's own scripts are files and call no alert).
INERT_JS = """() => Array.from(document.querySelectorAll('img')).filter(i => i.getAttribute('src') === 'x').length
  + document.querySelectorAll('[onerror]').length
  + Array.from(document.scripts).filter(s => s.textContent.includes('alert(')).length"""


def test_hostile_requests_are_refused(cluster, data, tabs):
    broker = console(cluster)
    base = broker.console_url
    tab = tabs(broker)
    cookie, token = csrf_pair(tab)
    assert cookie == token, "the form's token is not the cookie's (double submit)"
    own = {"Cookie": f"runnel_csrf={cookie}", "Origin": base}

    def create(name, headers, **fields):
        body = {"name": name, "partitions": "1", "replication_factor": "1", "configs": "", "confirm": "yes", **fields}
        return request(base, "POST", "/ui/topics", body, headers)

    refused = {
        "no token": create("e2e-csrf-none", own),
        "a wrong token": create("e2e-csrf-wrong", own, csrf=uuid.uuid4().hex),
        "no cookie": create("e2e-csrf-nocookie", {"Origin": base}, csrf=token),
        "a foreign Origin": create("e2e-csrf-origin", {**own, "Origin": "http://evil.example"}, csrf=token),
    }
    unconfirmed = create("e2e-csrf-unconfirmed", own, csrf=token, confirm="")
    accepted = create("e2e-csrf-valid", own, csrf=token)
    statuses = {what: status for what, (status, _, _) in refused.items()}
    assert statuses == {what: 403 for what in refused}, statuses
    assert accepted[0] == 303, f"the same POST with the token: {accepted[0]} {accepted[2][:500]}"
    wait_until("the accepted topic", lambda: "e2e-csrf-valid" in topic_names(cluster), 15)
    time.sleep(1)  # a refused create that was acted on anyway would show by now
    never = {"e2e-csrf-none", "e2e-csrf-wrong", "e2e-csrf-nocookie", "e2e-csrf-origin", "e2e-csrf-unconfirmed"}
    made = topic_names(cluster) & never
    assert not made, f"refused requests created {made} (unconfirmed: status {unconfirmed[0]})"

    # A group deleted only with the token.
    group = "e2e-keep"
    a = admin(cluster)
    try:
        a.alter_group_offsets(group, {TopicPartition(DATA, 0): OffsetAndMetadata(5, "", -1)})
    finally:
        a.close()
    path = f"/ui/groups/{quote(group, safe='')}/delete"
    for body in ({"confirm": "yes"}, {"confirm": "yes", "csrf": uuid.uuid4().hex}):
        status, _, _ = request(base, "POST", path, body, own)
        assert status == 403, (body, status)
    assert group_offsets(cluster, group) == {(DATA, 0): 5}, "a refused delete changed the group"
    status, _, text = request(base, "POST", path, {"confirm": "yes", "csrf": token}, own)
    assert status == 303, (status, text[:500])
    wait_until(f"{group} deleted", lambda: not group_offsets(cluster, group), 15)

    # The message browser's page size: at most 100.
    messages = f"/ui/topics/{DATA}/messages?partition=0&from=earliest&format=text&limit="
    assert [request(base, "GET", messages + n)[0] for n in ("100", "101", "100000")] == [200, 400, 400]

    # Another site's name for this address (DNS rebinding): 421, for pages and actions.
    port = urlsplit(base).port
    for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1.evil.example:{port}"):
        assert request(base, "GET", "/ui", headers={"Host": host})[0] == 421, host
    assert request(base, "POST", "/ui/topics", {"name": "e2e-rebound", "csrf": token, "confirm": "yes"},
                   {**own, "Host": "evil.example"})[0] == 421
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        assert request(base, "GET", "/ui", headers={"Host": host})[0] == 200, host

    # Markup in a group id and in a record renders as text.
    inert = INERT_JS
    tab.open("/ui/groups")
    row = tab.row("table#groups", group=MARKUP_GROUP)
    assert row["cells"].get("group") == MARKUP_GROUP, row
    assert tab.page.evaluate(inert) == 0, "markup from the group id became elements on /ui/groups"
    with tab.page.expect_navigation(wait_until="load"):
        tab.page.locator("table#groups tr").filter(has_text=MARKUP_GROUP).locator("[data-col=group] a").click()
    assert tab.text("h1") and MARKUP_GROUP in tab.text("h1"), tab.text("h1")
    assert tab.row("table#offsets", topic=DATA, partition=1)["cells"].get("committed") == "2"
    assert tab.page.evaluate(inert) == 0, "markup from the group id became elements on its page"
    tab.shoot("group-markup")
    tab.open(f"/ui/topics/{DATA}")
    assert tab.row("table#consumers", group=MARKUP_GROUP)["cells"].get("group") == MARKUP_GROUP
    assert tab.page.evaluate(inert) == 0
    tab.open(f"/ui/topics/{MARKUP_TOPIC}/messages?partition=0&from=earliest&format=text")
    cells = tab.row("table#messages", offset=0)["cells"]
    assert (cells.get("key"), cells.get("value")) == (MARKUP_KEY, MARKUP_VALUE), cells
    assert tab.page.evaluate(inert) == 0, "markup from a record became elements in the message browser"
    assert tab.page.locator("table#messages [data-col=key] b").count() == 0
    tab.page.wait_for_timeout(500)  # an onerror handler would have fired by now (the fixture checks dialogs)
    tab.shoot("messages-markup")


# --- 7: a read-only console ------------------------------------------------------------


POST_FORMS_JS = "() => Array.from(document.forms).filter(f => f.method === 'post').map(f => f.id || f.action)"


def test_read_only_console_renders_no_forms_and_refuses_actions(cluster, data, tabs):
    writable, read_only = console(cluster, 0), console(cluster, READ_ONLY_BROKER)
    paths = ["/ui/topics", f"/ui/topics/{DATA}", f"/ui/groups/{READERS}", "/ui/brokers/0"]
    rw, ro = tabs(writable), tabs(read_only)
    for path in paths:
        ro.open(path)
        assert ro.page.evaluate(POST_FORMS_JS) == [], f"{read_only.console_url}{path} has forms"
        assert ro.page.locator('[name="csrf"], [name="confirm"]').count() == 0, path
    # The same pages show the data, and a writable console shows its forms there.
    ro.open("/ui/topics")
    ro.row("table#topics", topic=DATA)
    ro.shoot("read-only-topics")
    controls = (
        ("/ui/topics", "create-topic"),
        (f"/ui/topics/{DATA}", "add-partitions"),
        (f"/ui/groups/{READERS}", "reset-offsets"),
    )
    for path, form in controls:
        rw.open(path)
        assert form in rw.page.evaluate(POST_FORMS_JS), f"{writable.console_url}{path}: no form#{form}"

    # A token the double-submit check accepts (any cookie it could have issued, repeated
    # in the form): the writable console acts on it, the read-only one refuses.
    token = uuid.uuid4().hex
    for broker, name, want in ((writable, "e2e-ro-control", 303), (read_only, "e2e-ro-refused", 403)):
        status, _, text = request(
            broker.console_url,
            "POST",
            "/ui/topics",
            {"name": name, "partitions": "1", "replication_factor": "1", "csrf": token, "confirm": "yes"},
            {"Cookie": f"runnel_csrf={token}", "Origin": broker.console_url},
        )
        assert status == want, f"POST {broker.console_url}/ui/topics: {status}, expected {want}: {text[:300]}"
    wait_until("the writable console's topic", lambda: "e2e-ro-control" in topic_names(cluster), 15)
    time.sleep(1)
    assert "e2e-ro-refused" not in topic_names(cluster), "the read-only console created a topic"
    status, _, _ = request(
        read_only.console_url, "POST", f"/ui/groups/{READERS}/reset",
        {"topic": "", "to": "earliest", "value": "", "csrf": token, "confirm": "yes"},
        {"Cookie": f"runnel_csrf={token}", "Origin": read_only.console_url},
    )
    assert status == 403, status


# --- 8: First Contentful Paint -----------------------------------------------------------


def test_first_contentful_paint_of_the_overview(cluster, data, tabs):
    tab = tabs(console(cluster))
    tab.open("/ui")
    # A function, not an expression: the console's CSP forbids eval, which an expression needs.
    tab.page.wait_for_function("() => performance.getEntriesByName('first-contentful-paint').length > 0", timeout=10000)
    paint = tab.page.evaluate(
        "() => { const n = performance.getEntriesByType('navigation')[0];"
        " return {fcp: performance.getEntriesByName('first-contentful-paint')[0].startTime,"
        " response: n.responseEnd, loaded: n.loadEventEnd} }"
    )
    print(
        f"/ui: first contentful paint {paint['fcp']:.0f} ms "
        f"(response end {paint['response']:.0f} ms, load end {paint['loaded']:.0f} ms)"
    )
    timing("console", "first contentful paint of /ui", paint["fcp"] / 1000)
    assert paint["fcp"] > 0


# --- 5: kill -9 a broker: under-replicated partitions show ---------------------------


def test_a_killed_broker_shows_as_under_replicated(cluster, data, tabs):
    data.close_readers()  # they would only rebalance onto a dead coordinator
    bound = TTL_MS / 1000 + 10
    watcher = tabs(console(cluster, 0)).open("/ui")  # stays open: console.js refreshes it
    poller = tabs(console(cluster, 1))

    def none_under_replicated():
        poller.open("/ui")
        return poller.text("#under-replicated") == "0", poller.text("#under-replicated")

    eventually("no under-replicated partitions before the kill", none_under_replicated, 30)
    victim = cluster.brokers[READ_ONLY_BROKER]
    victim.kill()
    killed = time.monotonic()

    def under_replicated():
        poller.open("/ui")
        shown = number(poller.text("#under-replicated") or "")
        return bool(shown), shown

    eventually(f"#under-replicated > 0 within {bound:.0f} s of the kill", under_replicated, bound, interval=0.25)
    took = time.monotonic() - killed
    timing("console", f"overview (reloaded) shows under-replicated partitions after kill -9 (bound {bound:.0f} s)",
           took)
    watcher.page.wait_for_function(
        "() => parseInt((document.querySelector('#under-replicated') || {}).textContent) > 0",
        timeout=max(1, bound - (time.monotonic() - killed)) * 1000,
    )
    timing("console", "the open overview (live refresh) shows them", time.monotonic() - killed)
    def offline():
        row = poller.open("/ui").row("table#brokers", broker=victim.id)
        return row["cells"].get("state") == "offline", row

    eventually(f"broker {victim.id} offline in the brokers table", offline, bound)
    assert poller.text("#brokers-live") == "2"
    poller.shoot("overview-under-replicated")
