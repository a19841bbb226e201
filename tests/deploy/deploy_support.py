"""Shared helpers for the deploy/ tests: paths, required tools, and real
redis-server + corrald processes on free loopback ports."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from corral_testing import redis_process_id  # noqa: E402  (stdlib only)

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("CORRAL_SOURCE_DIR") or os.path.normpath(os.path.join(HERE, "..", ".."))
BUILD = os.environ.get("CORRAL_BUILD_DIR") or os.path.join(SOURCE, "build")
CORRALD = os.path.join(BUILD, "server", "corrald")
CORRALCTL = os.path.join(BUILD, "client", "corralctl", "corralctl")
BENCH = os.path.join(BUILD, "client", "bench", "corral-bench")

# The metric contract (docs/OPERATIONS.md "Metrics and recording rules"): rules and
# dashboards may use these names only. Histograms also expose _bucket, _sum
# and _count.
COUNTERS_AND_GAUGES = {
    "corral_lookups_total", "corral_lock_acquisitions_total", "corral_computes_total",
    "corral_duplicate_computes_total", "corral_waiters", "corral_breaker_state",
    "corral_breaker_state_since_seconds", "corral_breaker_transitions_total",
    "corral_breaker_open_seconds_total",
    "corral_store_up", "corral_rpc_requests_total", "corral_auth_failures_total",
    "corral_refreshes_started_total", "corral_stale_served_total",
    "corral_negative_cache_hits_total", "corral_read_cache_hits_total",
    "corral_read_cache_entries", "corral_read_cache_bytes",
    "corral_near_cache_sessions", "corral_near_cache_registrations",
    "corral_near_cache_invalidations_pushed_total", "corral_near_cache_resets_total",
    "corral_store_replica_ack_failures_total",
    "corral_budget_in_flight", "corral_budget_waits_total",
    "corral_budget_shadow_over_total", "corral_budget_rejections_total",
}
HISTOGRAMS = {"corral_lock_wait_seconds", "corral_store_op_seconds", "corral_rpc_duration_seconds",
              "corral_store_replica_ack_seconds"}
KNOWN_METRICS = COUNTERS_AND_GAUGES | {
    f"{h}{suffix}" for h in HISTOGRAMS for suffix in ("_bucket", "_sum", "_count")}


def src(*parts):
    return os.path.join(SOURCE, *parts)


def require_tool(name):
    """The path of a declared dependency; fails the test loudly if missing."""
    path = shutil.which(name)
    if path is None:
        raise AssertionError(
            f"{name} is not installed: it is a declared test dependency "
            f"(scripts/deps.sh installs it); run scripts/deps.sh")
    return path


def run(args, timeout=60, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metric_names(expr):
    """corral_* metric names an expression mentions (not recording rules)."""
    return set(re.findall(r"(?<![:\w])(corral_[a-z_]+)", expr))


_FLAGS = None


def corrald_flags():
    """Flag names `corrald --help` documents (absl exits 1 after --help)."""
    global _FLAGS
    if _FLAGS is None:
        out = run([CORRALD, "--help"])
        _FLAGS = set(re.findall(r"^\s+--(\w+) \(", out.stdout + out.stderr, re.M))
        if not {"listen_address", "metrics_address", "redis", "config"} <= _FLAGS:
            raise AssertionError(f"cannot read corrald's flags from --help:\n{out.stdout}{out.stderr}")
    return _FLAGS


def assert_known_flags(testcase, args, where):
    for arg in args:
        if arg.startswith("--"):
            name = arg[2:].split("=", 1)[0]
            testcase.assertIn(name, corrald_flags(),
                              f"{where}: corrald has no flag --{name} (corrald --help)")


class Processes:
    """Starts redis-server and corrald instances; stops them in reverse order."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="corral-deploy-test-")
        self.procs = []

    def redis(self):
        """A redis-server of this test on a free port; returns the port.

        free_port() only finds a port that was free a moment ago: another
        test may bind it before this redis-server does, which then exits,
        and a PING alone would be answered by that other test's Redis --
        which goes away when that test ends, and corrald then answers
        "store unavailable: ... Connection refused" while its health stays
        SERVING. So ready means: this process answers (INFO's process_id),
        and a lost port is retried on another one."""
        log_text = ""
        for _ in range(5):
            port = free_port()
            log_path = os.path.join(self.dir, f"redis-{port}.log")
            with open(log_path, "w") as log:
                p = subprocess.Popen(
                    [require_tool("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
                     "--save", "", "--appendonly", "no"],
                    stdout=log, stderr=subprocess.STDOUT)
            if self._answers(p, port):
                self.procs.append(p)
                return port
            if p.poll() is None:
                p.kill()
            p.wait()
            with open(log_path) as f:
                log_text = f.read()[-2000:]
        raise AssertionError(f"redis-server did not start on a free port:\n{log_text}")

    @staticmethod
    def _answers(proc, port, timeout=10):
        """Whether `proc` itself answers on `port` before `timeout` (False:
        it exited, e.g. the port was taken, or never answered)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if redis_process_id(port) == proc.pid:
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def corrald(self, args, name="corrald"):
        """Starts corrald with `args`; returns (proc, grpc_port, metrics_port)."""
        log = os.path.join(self.dir, f"{name}-{len(self.procs)}.log")
        with open(log, "w") as out:
            p = subprocess.Popen([CORRALD, *args], stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(p)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with open(log) as f:
                text = f.read()
            m = re.search(r"corrald ready listen=\S+:(\d+) metrics=(\S+)", text)
            if m:
                metrics = m.group(2)
                return p, int(m.group(1)), (None if metrics == "off" else int(metrics.rsplit(":", 1)[1]))
            if p.poll() is not None:
                raise AssertionError(f"corrald {args} exited with {p.returncode}:\n{text}")
            time.sleep(0.05)
        with open(log) as f:
            raise AssertionError(f"corrald {args} not ready after 20 s:\n{f.read()}")

    def stop(self, proc, timeout=20):
        """SIGTERM; returns the exit code."""
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout=timeout)

    def close(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()


class TestCase(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.procs = None

    def processes(self):
        if self.procs is None:
            self.procs = Processes()
            self.addCleanup(self.procs.close)
        return self.procs
