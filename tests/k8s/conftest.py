"""Fixtures for the Kubernetes test bed suites: one test bed for the whole session, a
namespace per module, and each module's wall time in the terminal summary.

The bed needs root (network and mount namespaces), iproute2, util-linux's unshare,
nsenter and setpriv, and Go or already built binaries. Where these are missing the bed's
tests are skipped with the reason, except under CI=true, where that is a failure: in CI
the suite must run."""

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from bedtools import Namespace
from testbed import Testbed

TOOLS = ("ip", "unshare", "nsenter", "setpriv", "mount")
STARTED = {}
MODULE_TIMES = {}


def missing_prerequisites():
    if os.geteuid() != 0:
        return "the test bed needs root (network and mount namespaces)"
    absent = [t for t in TOOLS if shutil.which(t) is None]
    if absent:
        return f"the test bed needs {', '.join(absent)}"
    if subprocess.run(["unshare", "--net", "--mount", "true"], capture_output=True).returncode != 0:
        return "this host does not allow creating network and mount namespaces"
    built = subprocess.run([os.path.join(os.path.dirname(__file__), "build.sh"), "--check"],
                           capture_output=True, text=True)
    if built.returncode != 0 and shutil.which("go") is None:
        return "the test bed's binaries are not built and Go is not installed"
    return None


@pytest.fixture(scope="session")
def bed():
    reason = missing_prerequisites()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI=true: the test bed suite must run)", pytrace=False)
        pytest.skip(reason)
    started = time.time()
    b = Testbed()
    try:
        b.start()
        STARTED["seconds"] = time.time() - started
        yield b
    finally:
        stopping = time.time()
        b.stop()
        shutil.rmtree(b.base, ignore_errors=True)
        STARTED["stop"] = time.time() - stopping


@pytest.fixture(scope="module")
def ns(bed, request):
    """A namespace named after the module (test_smoke.py -> smoke), deleted afterwards."""
    name = re.sub(r"[^a-z0-9-]", "-", request.module.__name__.split(".")[-1].removeprefix("test_").lower())
    bed.kubectl("create", "namespace", name)
    yield Namespace(bed, name)
    bed.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    started = time.time()
    yield
    # pytest calls this hook for every directory's tests: time only the bed's modules.
    if Path(str(item.fspath)).parent != Path(__file__).parent:
        return
    first, _ = MODULE_TIMES.get(item.fspath.basename, (started, None))
    MODULE_TIMES[item.fspath.basename] = (first, time.time())


def pytest_terminal_summary(terminalreporter):
    if not MODULE_TIMES:
        return
    terminalreporter.section("k8s test bed wall time")
    if "seconds" in STARTED:
        terminalreporter.write_line(f"test bed start (in the first module's time): {STARTED['seconds']:.1f} s")
    if "stop" in STARTED:
        terminalreporter.write_line(f"test bed stop (in the last module's time): {STARTED['stop']:.1f} s")
    for module, (first, last) in MODULE_TIMES.items():
        terminalreporter.write_line(f"{module}: {last - first:.1f} s")
