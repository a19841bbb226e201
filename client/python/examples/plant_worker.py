#!/usr/bin/python3
"""A plant-identification worker: the seed's Django fix, ported to corral.

For each image it computes the SHA-256 (the cache key), then asks corral for
the identification. On a miss exactly one worker fleet-wide calls the slow,
paid upstream; every other worker, in any language, waits and gets that
answer. When the namespace's breaker is open the upstream is not called and
the image is answered "503, retry after N s", like the seed's fast-fail.

    PYTHONPATH=build/client/python client/python/examples/plant_worker.py \\
        --target 127.0.0.1:50051 --upstream http://127.0.0.1:8000 rose.jpg

Modes:
  sync   corral.Client.get_or_compute from --concurrency threads (default)
  async  corral.aio.AsyncClient.get_or_compute from --concurrency tasks
  lock   the seed's shape, on corral's lock: cache check, lock (15 s wait,
         30 s expiry, renewed), double check, call the upstream, fenced set,
         release with the outcome for the breaker

Each image is looked up --repeat times (jobs shuffled, so a worker races
itself too). One line per job on stdout, tab-separated:
  IMAGE_SHA256  SOURCE  VALUE              (SOURCE: computed, peer_fill, cache, ...)
  IMAGE_SHA256  error   REASON  DETAILS    (REASON: breaker-open, peer-compute-failed, ...)
Exit status: 0 when every job got a value, 1 otherwise, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fake_upstream  # noqa: E402  (the example's upstream client)

try:
    import corral  # noqa: E402
    import corral.aio  # noqa: E402
except ImportError as e:  # pragma: no cover - a setup problem, said plainly
    sys.exit(f"plant_worker: cannot import corral ({e}); build it and set "
             "PYTHONPATH=<build>/client/python")

NAMESPACE = "plant_id"  # One namespace per upstream; --namespace overrides.
# The seed's numbers: wait 15 s for another worker's compute, lock expiry 30 s.
WAIT_TIMEOUT = 15.0
LOCK_TTL = 30.0


def image_key(image: bytes) -> str:
    """The cache key of an image: its SHA-256, hex (what every worker uses)."""
    return hashlib.sha256(image).hexdigest()


class Printer:
    """Writes whole result lines from many threads."""

    def __init__(self):
        self._mu = threading.Lock()
        self.failures = 0

    def value(self, key: str, source: str, value: bytes) -> None:
        line = f"{key}\t{source}\t{value.decode('utf-8', 'replace')}\n"
        with self._mu:
            sys.stdout.write(line)
            sys.stdout.flush()

    def error(self, key: str, err: BaseException) -> None:
        if isinstance(err, corral.BreakerOpen):
            reason = "breaker-open"
            details = f"503: plant identification paused, retry after {err.retry_after or 0:g}s"
        elif isinstance(err, corral.ComputeBudgetExhausted):
            # The upstream's budget (its quota, shared by the fleet) is spent
            # for now: answer 429 and let the client come back after
            # retry_after, rather than retrying here and adding to the queue.
            reason = "compute-budget"
            details = f"429: plant identification quota busy, retry after {err.retry_after or 0:g}s"
        elif isinstance(err, corral.CorralError):
            reason, details = err.reason or err.code.name.lower(), str(err)
        else:
            reason, details = "upstream-failed", f"{type(err).__name__}: {err}"
        with self._mu:
            self.failures += 1
            sys.stdout.write(f"{key}\terror\t{reason}\t{details}\n")
            sys.stdout.flush()


def identify_sync(client: corral.Client, ns: str, upstream: str, image: bytes) -> tuple:
    """(source, value) through GetOrCompute."""
    result = client.get_or_compute_result(
        ns, image_key(image), lambda: fake_upstream.identify(upstream, image),
        wait_timeout=WAIT_TIMEOUT)
    return str(result.source), result.value


def identify_with_lock(client: corral.Client, ns: str, upstream: str, image: bytes) -> tuple:
    """(source, value) the seed's way: check, lock, double check, compute,
    fenced write, release. The lock is the one GetOrCompute takes, so these
    workers coordinate with GetOrCompute workers in any language."""
    key = image_key(image)
    cached = client.get(ns, key)
    if cached is not None:
        return "cache", cached.value
    try:
        lock = client.lock(ns, key, ttl=LOCK_TTL, wait_timeout=WAIT_TIMEOUT)
    except corral.LockNotAcquired:
        # The seed's fallback: check once more, then call without the lock.
        cached = client.get(ns, key)
        if cached is not None:
            return "cache_after_timeout", cached.value
        value = fake_upstream.identify(upstream, image)
        client.set(ns, key, value)
        return "computed", value
    with lock:
        cached = client.get(ns, key)  # Another worker may have filled it.
        if cached is not None:
            return "cache_after_lock", cached.value
        try:
            value = fake_upstream.identify(upstream, image)
        except fake_upstream.UpstreamError:
            lock.release(corral.Outcome.FAILURE)  # Counts against the breaker.
            raise
        # Fenced: stored only while we hold the lock; wakes GetOrCompute waiters.
        client.set(ns, key, value, lock_token=lock.token)
        lock.release(corral.Outcome.SUCCESS)
        return "computed", value


async def identify_async(client: "corral.aio.AsyncClient", ns: str, upstream: str,
                         image: bytes) -> tuple:
    async def compute():
        return await asyncio.to_thread(fake_upstream.identify, upstream, image)
    result = await client.get_or_compute_result(ns, image_key(image), compute,
                                                wait_timeout=WAIT_TIMEOUT)
    return str(result.source), result.value


def run_threads(args, jobs, printer: Printer) -> None:
    identify = identify_with_lock if args.mode == "lock" else identify_sync
    with corral.Client(args.target, worker_id=args.worker_id, timeout=60) as client:
        def one(image: bytes) -> None:
            try:
                printer.value(image_key(image), *identify(client, args.namespace, args.upstream, image))
            except (corral.CorralError, fake_upstream.UpstreamError) as e:
                printer.error(image_key(image), e)
        with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            list(pool.map(one, jobs))


async def run_tasks(args, jobs, printer: Printer) -> None:
    async with corral.aio.AsyncClient(args.target, worker_id=args.worker_id, timeout=60) as client:
        gate = asyncio.Semaphore(args.concurrency)

        async def one(image: bytes) -> None:
            async with gate:
                try:
                    printer.value(image_key(image),
                                  *await identify_async(client, args.namespace, args.upstream, image))
                except (corral.CorralError, fake_upstream.UpstreamError) as e:
                    printer.error(image_key(image), e)
        await asyncio.gather(*(one(image) for image in jobs))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default=os.environ.get("CORRAL_TARGET", "127.0.0.1:50051"),
                        help="corrald address (default $CORRAL_TARGET, else 127.0.0.1:50051)")
    parser.add_argument("--upstream", required=True, help="fake upstream URL, http://HOST:PORT")
    parser.add_argument("--namespace", default=NAMESPACE, help=f"corral namespace (default {NAMESPACE})")
    parser.add_argument("--mode", choices=("sync", "async", "lock"), default="sync",
                        help="see Modes above (default sync)")
    parser.add_argument("--concurrency", type=int, default=8, help="threads or tasks (default 8)")
    parser.add_argument("--repeat", type=int, default=1, help="lookups per image (default 1)")
    parser.add_argument("--start-at", type=float, default=0.0,
                        help="UNIX time to start at (lines up racing workers)")
    parser.add_argument("--worker-id", default=f"py-{os.getpid()}")
    parser.add_argument("images", nargs="+", help="image files")
    args = parser.parse_args(argv)
    if args.concurrency < 1 or args.repeat < 1:
        parser.error("--concurrency and --repeat must be at least 1")

    images = []
    for path in args.images:
        with open(path, "rb") as f:
            images.append(f.read())
    jobs = images * args.repeat
    random.shuffle(jobs)
    if args.start_at:
        time.sleep(max(0.0, args.start_at - time.time()))

    printer = Printer()
    if args.mode == "async":
        asyncio.run(run_tasks(args, jobs, printer))
    else:
        run_threads(args, jobs, printer)
    return 1 if printer.failures else 0


if __name__ == "__main__":
    sys.exit(main())
