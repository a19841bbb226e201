"""Running the example plant workers (Python and C++) and corralctl as
separate processes, and reading their result lines."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import subprocess
import time
from typing import Dict, List

import corral_testing
from corral_testing import CC_PLANT_WORKER, CORRALCTL, EXAMPLES_DIR, PYTHON

PY_WORKER = os.path.join(EXAMPLES_DIR, "plant_worker.py")
FAKE_UPSTREAM = os.path.join(EXAMPLES_DIR, "fake_upstream.py")


@dataclasses.dataclass
class Line:
    """One result line: key, then a source ("computed", ...) and the value,
    or "error" with the reason in ``value``."""

    key: str
    source: str
    value: bytes


@dataclasses.dataclass
class Run:
    name: str
    proc: subprocess.Popen
    out_path: str
    err_path: str
    key: str = ""  # corralctl runs: the one key they asked for.

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            corral_testing.kill_group(self.proc)
            raise AssertionError(f"{self.name} did not finish in {timeout}s:\n{self.stderr()}")

    def stdout(self) -> bytes:
        with open(self.out_path, "rb") as f:
            return f.read()

    def stderr(self) -> str:
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")[-3000:]

    def ctl_source(self) -> str:
        """corralctl --verbose: "computed" if it ran --exec, else the source."""
        m = re.search(r"source=(\S+)", self.stderr())
        return m.group(1) if m else "?"

    def lines(self) -> List[Line]:
        """Parsed worker output (not for corralctl, which prints the bare value)."""
        out = []
        for raw in self.stdout().split(b"\n"):
            if raw:
                key, source, value = raw.split(b"\t", 2)
                out.append(Line(key.decode(), source.decode(), value))
        return out


def make_images(directory: str, count: int, tag: str) -> Dict[str, str]:
    """Writes ``count`` distinct fake images; returns {sha256 hex: path}."""
    images = {}
    for i in range(count):
        data = f"fake jpeg {tag} #{i} {time.monotonic_ns()}".encode() * 16
        path = os.path.join(directory, f"plant-{i:02d}.jpg")
        with open(path, "wb") as f:
            f.write(data)
        images[hashlib.sha256(data).hexdigest()] = path
    return images


class Launcher:
    """Starts runs in ``directory``, each killed by ``stop_all``."""

    def __init__(self, directory: str):
        self.dir = directory
        self.runs: List[Run] = []

    def _start(self, name: str, argv: List[str], key: str = "") -> Run:
        out = os.path.join(self.dir, f"{name}.out")
        err = os.path.join(self.dir, f"{name}.err")
        with open(out, "wb") as o, open(err, "wb") as e:
            proc = corral_testing.spawn(argv, stdout=o, stderr=e, stdin=subprocess.DEVNULL,
                                        env=corral_testing.child_env())
        run = Run(name, proc, out, err, key)
        self.runs.append(run)
        return run

    def python_worker(self, name, target, upstream, images, namespace, mode="sync",
                      concurrency=8, repeat=1, start_at=0.0) -> Run:
        return self._start(name, [PYTHON, PY_WORKER, f"--target={target}", f"--upstream={upstream}",
                                  f"--namespace={namespace}",
                                  f"--mode={mode}", f"--concurrency={concurrency}",
                                  f"--repeat={repeat}", f"--start-at={start_at}",
                                  f"--worker-id={name}", *images])

    def cc_worker(self, name, target, upstream, images, namespace, threads=8, repeat=1,
                  start_at=0.0) -> Run:
        return self._start(name, [CC_PLANT_WORKER, f"--target={target}", f"--upstream={upstream}",
                                  f"--namespace={namespace}",
                                  f"--threads={threads}", f"--repeat={repeat}",
                                  f"--start_at={start_at}", f"--worker_id={name}", *images])

    def corralctl(self, name, target, upstream, namespace, key, image, start_at=0.0) -> Run:
        """`corralctl get-or-compute --exec` calling the upstream through
        fake_upstream.py identify; started now, it sleeps until start_at."""
        exec_cmd = f"{PYTHON} {FAKE_UPSTREAM} identify --upstream {upstream} {image}"
        delay = max(0.0, start_at - time.time())
        shell = (f'sleep {delay:.3f}; exec "$0" --verbose --target "$1" get-or-compute "$2" "$3" '
                 f'--wait 15s --exec "$4"')
        return self._start(name, ["/bin/sh", "-c", shell, CORRALCTL, target, namespace, key,
                                  exec_cmd], key)

    def stop_all(self) -> None:
        for run in self.runs:
            corral_testing.kill_group(run.proc, grace=1.0)
