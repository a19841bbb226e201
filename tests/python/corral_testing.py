"""Test support: real redis-server, corrald and fake-upstream processes.

Every process is started in its own process group, with a parent-death
signal (setpriv --pdeathsig KILL), so that nothing outlives the test even if
the test process is killed; stop() kills the whole group and reaps it.

Paths come from the environment ctest sets (tests/python/CMakeLists.txt):
CORRAL_BUILD_DIR (default <repo>/build) and CORRAL_SOURCE_DIR.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import List, Optional

SOURCE_DIR = os.environ.get("CORRAL_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD_DIR = os.environ.get("CORRAL_BUILD_DIR") or os.path.join(SOURCE_DIR, "build")
PYTHON = "/usr/bin/python3"  # Debian's, with python3-grpcio and python3-protobuf.
PYTHONPATH = os.path.join(BUILD_DIR, "client", "python")
EXAMPLES_DIR = os.path.join(SOURCE_DIR, "client", "python", "examples")
CORRALD = os.path.join(BUILD_DIR, "server", "corrald")
CORRALCTL = os.path.join(BUILD_DIR, "client", "corralctl", "corralctl")
CC_PLANT_WORKER = os.path.join(BUILD_DIR, "client", "examples", "plant_worker")
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"

for path in (PYTHONPATH, EXAMPLES_DIR):
    if path not in sys.path:
        sys.path.insert(0, path)

START_TIMEOUT = 15.0


def free_port() -> int:
    """A port that was free a moment ago (for servers that cannot bind 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env(**extra) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = PYTHONPATH + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra)
    return env


def spawn(argv: List[str], **kwargs) -> subprocess.Popen:
    """Starts ``argv`` in a new process group, killed if this process dies."""
    return subprocess.Popen(["setpriv", "--pdeathsig", "KILL", "--", *argv],
                            process_group=0, **kwargs)


def kill_group(proc: Optional[subprocess.Popen], grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` s, to the process group; reaps."""
    if proc is None or proc.returncode is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(wait)
            break
        except subprocess.TimeoutExpired:
            continue
    try:  # Anything left in the group (the leader has been reaped).
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class _LoggedProcess:
    """A server whose stderr goes to a log file, scanned for its ready line."""

    name = "process"

    def __init__(self, argv: List[str], log_dir: str, ready: "re.Pattern"):
        self.log_path = os.path.join(log_dir, f"{self.name}-{time.monotonic_ns()}.log")
        self._log = open(self.log_path, "wb")
        self.proc = spawn(argv, stdout=self._log, stderr=subprocess.STDOUT,
                          stdin=subprocess.DEVNULL, env=child_env())
        self.match = self._wait_ready(ready)

    def _wait_ready(self, ready: "re.Pattern"):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as f:
                m = ready.search(f.read().decode("utf-8", "replace"))
            if m:
                return m
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"{self.name} did not start:\n{self.log()}")

    def log(self) -> str:
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")[-4000:]

    def stop(self) -> None:
        kill_group(self.proc)
        self._log.close()


class Corrald(_LoggedProcess):
    """A real corrald on free ports; ``target`` is its gRPC address."""

    name = "corrald"

    def __init__(self, log_dir: str, redis_uri: Optional[str] = None, extra: List[str] = ()):
        argv = [CORRALD, "--listen_address=127.0.0.1:0", "--metrics_address=127.0.0.1:0"]
        if redis_uri:
            argv.append(f"--redis={redis_uri}")
        super().__init__(argv + list(extra), log_dir,
                         re.compile(r"corrald ready listen=(\S+) metrics=(\S+) store=(\S+)"))
        self.target, self.metrics_address = self.match.group(1), self.match.group(2)


class FakeUpstream(_LoggedProcess):
    """The example's fake plant-identification API (client/python/examples)."""

    name = "fake-upstream"

    def __init__(self, log_dir: str, min_delay: float = 0.2, max_delay: float = 0.3):
        super().__init__([PYTHON, os.path.join(EXAMPLES_DIR, "fake_upstream.py"), "serve",
                          f"--min-delay={min_delay}", f"--max-delay={max_delay}"],
                         log_dir, re.compile(r"fake-upstream ready url=(\S+)"))
        self.url = self.match.group(1)



def redis_process_id(port: int) -> Optional[int]:
    """The process_id that the Redis on 127.0.0.1:`port` reports (INFO
    server); None if the answer has none (-LOADING and the like: not ready
    yet). OSError when nothing answers. Tells a test's own Redis from
    another's that took the port (tests/deploy uses it too)."""
    with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
        s.settimeout(1)
        s.sendall(b"INFO server\r\n")
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                return None
            data += chunk
        header, _, body = data.partition(b"\r\n")
        if not header.startswith(b"$"):
            return None
        size = int(header[1:])
        while len(body) < size:
            chunk = s.recv(4096)
            if not chunk:
                return None
            body += chunk
    m = re.search(rb"^process_id:(\d+)\r?$", body, re.M)
    return int(m.group(1)) if m else None


class RedisServer:
    """A real redis-server on a free port, no persistence."""

    def __init__(self, log_dir: str, port: Optional[int] = None):
        """``port``: this one (a restart on the same port); else a free one."""
        last = ""
        for _ in range(5):  # The free port may be taken before redis binds it.
            self.port = port or free_port()
            self._log = open(os.path.join(log_dir, f"redis-{self.port}.log"), "wb")
            self.proc = spawn([REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                               "--save", "", "--appendonly", "no", "--dir", log_dir],
                              stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            if self._wait_answering():
                self.uri = f"redis://127.0.0.1:{self.port}"
                return
            self.stop()
            with open(self._log.name, "rb") as f:
                last = f.read().decode("utf-8", "replace")[-2000:]
        raise RuntimeError(f"redis-server did not start:\n{last}")

    def _wait_answering(self) -> bool:
        """Whether this redis-server itself answers: a PONG could come from
        another test's Redis that bound the port first (this one then
        exits), which goes away when that test ends."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if self._process_id() == self.proc.pid:
                    return True
            except OSError:
                pass
            time.sleep(0.02)
        return False

    def _process_id(self) -> Optional[int]:
        return redis_process_id(self.port)

    def stop(self) -> None:
        kill_group(self.proc)
        self._log.close()


class Fleet:
    """One redis-server and ``replicas`` corralds sharing it (or one corrald
    on the embedded store). Stop it with stop() (tests: addCleanup)."""

    def __init__(self, replicas: int = 1, redis: bool = True, upstream: bool = False,
                 upstream_delay=(0.2, 0.3), corrald_args: List[str] = ()):
        self.dir = tempfile.mkdtemp(prefix="corral-pytest-")
        self.redis: Optional[RedisServer] = None
        self.replicas: List[Corrald] = []
        self.upstream: Optional[FakeUpstream] = None
        try:
            if redis:
                self.redis = RedisServer(self.dir)
            for _ in range(replicas):
                self.replicas.append(Corrald(self.dir, self.redis.uri if self.redis else None,
                                             list(corrald_args)))
            if upstream:
                self.upstream = FakeUpstream(self.dir, *upstream_delay)
        except BaseException:
            self.stop()
            raise

    @property
    def targets(self) -> List[str]:
        return [r.target for r in self.replicas]

    def logs(self) -> str:
        return "\n".join(f"--- {r.name} {r.log_path}\n{r.log()}" for r in self.replicas)

    def stop(self) -> None:
        if self.upstream:
            self.upstream.stop()
        for r in self.replicas:
            r.stop()
        if self.redis:
            self.redis.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def unique_key(prefix: str = "k") -> str:
    """A key no other test (or earlier run) has used."""
    return f"{prefix}-{os.getpid()}-{time.monotonic_ns()}"


def waiters(fleet: Fleet, namespace: str) -> int:
    """Callers waiting (for a lock or a value) in ``namespace``, summed over
    the fleet's replicas, from corrald's `corral_waiters` gauge."""
    import urllib.request
    pattern = re.compile(r'^corral_waiters\{namespace="%s"\} (\S+)$' % re.escape(namespace), re.M)
    total = 0.0
    for r in fleet.replicas:
        with urllib.request.urlopen(f"http://{r.metrics_address}/metrics", timeout=5) as resp:
            m = pattern.search(resp.read().decode("utf-8", "replace"))
        total += float(m.group(1)) if m else 0.0
    return int(total)


def poll_until(condition, timeout: float = 10.0, what: str = "the condition"):
    """Calls ``condition`` until it returns something truthy, and returns
    that; AssertionError after ``timeout`` seconds. For what a test waits on
    in real time (Redis' TTLs, another process): never a fixed sleep."""
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(pause)
        pause = min(pause * 2, 0.02)


async def poll_until_async(condition, timeout: float = 10.0, what: str = "the condition"):
    """poll_until for asyncio tests: awaits ``condition()`` (a coroutine
    function) until it returns something truthy, and returns that, without
    blocking the event loop between attempts."""
    import asyncio
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        result = await condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.02)


def wait_for_waiters(fleet: Fleet, namespace: str, n: int, timeout: float = 10.0) -> None:
    """Blocks until at least ``n`` callers wait in ``namespace`` (so that a
    test acts while they are really waiting, not before they arrive)."""
    deadline = time.monotonic() + timeout
    while waiters(fleet, namespace) < n:
        if time.monotonic() > deadline:
            raise AssertionError(f"{n} waiters never showed up in {namespace} "
                                 f"(now {waiters(fleet, namespace)})")
        time.sleep(0.02)


def rpcs(fleet: Fleet, method: str) -> int:
    """Finished RPCs of ``method`` (e.g. "GetOrCompute"), summed over the
    fleet's replicas and status codes, from `corral_rpc_requests_total`."""
    import urllib.request
    pattern = re.compile(r'^corral_rpc_requests_total\{([^}]*)\} (\S+)$', re.M)
    total = 0.0
    for r in fleet.replicas:
        with urllib.request.urlopen(f"http://{r.metrics_address}/metrics", timeout=5) as resp:
            text = resp.read().decode("utf-8", "replace")
        for labels, value in pattern.findall(text):
            if f'method="{method}"' in labels:
                total += float(value)
    return int(total)


def poll(condition, timeout: float = 10.0, what: str = "condition") -> None:
    """Blocks until ``condition()`` is true; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} never became true within {timeout:g}s")
        time.sleep(0.01)
