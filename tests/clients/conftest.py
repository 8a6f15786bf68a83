"""Fixtures: a standalone runnel-broker process (standalone.py) per test module, Kafka's
jars, fresh topic names; each module's wall time in the terminal summary."""

import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from standalone import KAFKA_VERSION, ROOT, Broker

HERE = Path(__file__).resolve().parent
# module (as pytest names it, "clients/test_kcat.py") -> (first test's start, last test's end)
MODULE_TIMES = {}


@pytest.fixture(scope="module")
def broker():
    b = Broker()
    yield b
    code = b.stop()
    assert code == 0, f"broker exited with {code}; log: {b.dir / 'broker.log'}"
    shutil.rmtree(b.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def kafka_jars():
    """Apache Kafka's jars (clients, tools), fetched once into a cache outside the repo."""
    out = subprocess.run(
        [str(ROOT / "scripts" / "kafka-jars.sh"), KAFKA_VERSION],
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    return Path(out.stdout.strip().splitlines()[-1]) / "libs"


@pytest.fixture
def topic():
    """A fresh topic name (auto-created on first use)."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Times this directory's modules: from their first test's start to their last test's
    end, so module-scoped fixtures (the broker, compiled Java classes) count too."""
    started = time.monotonic()
    yield
    # NB: pytest calls this for tests/k8s's items too (both directories' conftests are
    # loaded at start), so the path decides.
    if HERE not in item.path.parents:
        return
    module = item.nodeid.split("::")[0]
    first, _ = MODULE_TIMES.get(module, (started, None))
    MODULE_TIMES[module] = (first, time.monotonic())


def pytest_terminal_summary(terminalreporter):
    if not MODULE_TIMES:
        return
    terminalreporter.section("real-client suites wall time")
    for module, (first, last) in MODULE_TIMES.items():
        terminalreporter.write_line(f"{last - first:7.1f} s  {module}")
