"""Fixtures: one etcd and one 3-broker cluster (cluster.py) per test module, Kafka's
command-line tools; each module's wall time in the terminal summary."""

import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from cluster import KAFKA_VERSION, ROOT, TIMINGS, Cluster

HERE = Path(__file__).resolve().parent
MODULE_TIMES = {}


# Modules with a failed test: their cluster's directory (logs, data) is kept.
FAILED_MODULES = set()


@pytest.fixture(scope="module")
def network(request):
    """A module with OWN_NETWORK = True runs its cluster in network namespaces it can cut
    (netcut.py); others on loopback (None)."""
    if not getattr(request.module, "OWN_NETWORK", False):
        yield None
        return
    from netcut import Network

    net = Network(3)
    try:
        yield net
    finally:
        net.close()


@pytest.fixture(scope="module")
def cluster(request, network):
    # A module may give its brokers extra settings (BROKER_ARGS).
    c = Cluster(3, extra_args=getattr(request.module, "BROKER_ARGS", ()), network=network)
    yield c
    codes = c.stop()
    assert all(code == 0 for code in codes.values()), f"broker exit codes {codes}; logs under {c.dir}"
    if request.module.__name__ in FAILED_MODULES:
        print(f"kept {c.dir} (a test failed)")
    else:
        shutil.rmtree(c.dir, ignore_errors=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    report = (yield).get_result()
    if report.failed:
        FAILED_MODULES.add(item.module.__name__)


@pytest.fixture
def topic():
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def kafka_jars():
    out = subprocess.run(
        [str(ROOT / "scripts" / "kafka-jars.sh"), KAFKA_VERSION],
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    return Path(out.stdout.strip().splitlines()[-1]) / "libs"


@pytest.fixture(scope="session")
def kafka_cli(kafka_jars, tmp_path_factory):
    """Runs one of Kafka's tool classes with java -cp; returns (exit code, stdout, stderr)."""
    logs = tmp_path_factory.mktemp("log4j")
    # The tools ship both log4j 1 (reload4j) and log4j 2; quiet both so stdout is the tool's.
    (logs / "log4j.properties").write_text(
        "log4j.rootLogger=ERROR, e\n"
        "log4j.appender.e=org.apache.log4j.ConsoleAppender\n"
        "log4j.appender.e.Target=System.err\n"
        "log4j.appender.e.layout=org.apache.log4j.SimpleLayout\n"
    )
    (logs / "log4j2.properties").write_text(
        "rootLogger.level=ERROR\nrootLogger.appenderRef.e.ref=E\n"
        "appender.e.type=Console\nappender.e.name=E\nappender.e.target=SYSTEM_ERR\n"
    )

    def run(tool, *args):
        result = subprocess.run(
            [
                "java",
                f"-Dlog4j.configuration=file:{logs / 'log4j.properties'}",
                f"-Dlog4j2.configurationFile={logs / 'log4j2.properties'}",
                "-cp",
                f"{kafka_jars}/*",
                tool,
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        return result.returncode, result.stdout, result.stderr

    return run


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Times this directory's modules, from their first test's start (so the cluster's
    start-up counts) to their last test's end."""
    started = time.monotonic()
    yield
    if HERE not in item.path.parents:
        return
    module = item.nodeid.split("::")[0]
    first, _ = MODULE_TIMES.get(module, (started, None))
    MODULE_TIMES[module] = (first, time.monotonic())


def pytest_terminal_summary(terminalreporter):
    if not MODULE_TIMES:
        return
    if TIMINGS:
        terminalreporter.section("cluster timings")
        for test, what, seconds in TIMINGS:
            terminalreporter.write_line(f"{seconds:7.2f} s  {test}: {what}")
    terminalreporter.section("cluster suites wall time")
    for module, (first, last) in MODULE_TIMES.items():
        terminalreporter.write_line(f"{last - first:7.1f} s  {module}")
