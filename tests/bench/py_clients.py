#!/usr/bin/python3
"""The Python clients against the original app's pattern (issue 19), in one
run on one redis-server and one corrald (started here on free ports):

  hits      P processes hammer one warm key (100-byte pickled value) for D s
            each way, back to back, R rounds: redis-py GET + pickle.loads
            (the original app's hit path), corral get_or_compute with the
            near cache (default), get_or_compute without it
            (near_cache=False: one unary Get per hit), corral get with it.
  threads   one process, N threads sharing one corral.Client, one cold key,
            compute 0.5 s: computes, latency p50/p99/max, GetOrCompute and
            Get RPCs counted by corrald.
  tasks     the same with N asyncio tasks sharing one AsyncClient.
  coherence two replicas: a client of replica A holds a key in its near
            cache; a client of replica B sets it; the time from sending
            that Set until A's near cache no longer holds the key (K times).

  /usr/bin/python3 tests/bench/py_clients.py [--build build] [--procs 8]
      [--duration 3] [--rounds 3] [--threads 1000] [--tasks 10000]
"""

import argparse
import asyncio
import multiprocessing
import os
import pickle
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "python"))

NS = "bench"
KEY = "warm-key"
VALUE = pickle.dumps({"species": "Monstera deliciosa", "score": 0.97, "pad": "v" * 40})


def _hit_loop(kind, target, redis_port, duration, start_at, out):
    import corral_testing  # noqa: F401 - puts the built package on sys.path
    import corral
    import redis
    n = 0
    if kind == "redis_get_unpickle":
        r = redis.Redis(port=redis_port)
        fetch = lambda: pickle.loads(r.get(KEY))  # noqa: E731
    else:
        c = corral.Client(target, timeout=10)
        compute = lambda: VALUE  # noqa: E731
        if kind == "corral_goc_near":
            fetch = lambda: pickle.loads(c.get_or_compute(NS, KEY, compute))  # noqa: E731
        elif kind == "corral_goc_no_near":
            fetch = lambda: pickle.loads(  # noqa: E731
                c.get_or_compute(NS, KEY, compute, near_cache=False))
        else:  # corral_get_near
            fetch = lambda: pickle.loads(c.get(NS, KEY).value)  # noqa: E731
        fetch()  # Warm: the near cache's stream opens, the key is planted.
        deadline = time.monotonic() + 5
        while (kind != "corral_goc_no_near" and c.near_cache.session == b""
               and time.monotonic() < deadline):
            time.sleep(0.01)
        fetch()
    while time.time() < start_at:
        time.sleep(0.001)
    end = time.monotonic() + duration
    while time.monotonic() < end:
        fetch()
        n += 1
    out.put(n)


def hits(args, target, redis_port, metrics):
    print(f"# hits: {args.procs} processes, one warm key ({len(VALUE)}-byte pickled value), "
          f"{args.duration:g} s per run", flush=True)
    kinds = ["redis_get_unpickle", "corral_goc_near", "corral_goc_no_near", "corral_get_near"]
    per_kind = {k: [] for k in kinds}
    for rnd in range(1, args.rounds + 1):
        line = [f"round={rnd}"]
        for kind in kinds:
            # spawn, not fork: a forked child of a process that used gRPC can hang.
            ctx = multiprocessing.get_context("spawn")
            q = ctx.Queue()
            start_at = time.time() + 8.0  # Spawned interpreters import grpc first.
            procs = [ctx.Process(target=_hit_loop, args=(
                kind, target, redis_port, args.duration, start_at, q)) for _ in range(args.procs)]
            for p in procs:
                p.start()
            total = sum(q.get(timeout=120) for _ in procs)
            for p in procs:
                p.join(30)
            rate = total / args.duration
            per_kind[kind].append(rate)
            line.append(f"{kind}={rate:.0f}/s")
        base = per_kind["redis_get_unpickle"][-1]
        line.append(f"goc_near_ratio={per_kind['corral_goc_near'][-1] / base:.2f}")
        line.append(f"goc_no_near_ratio={per_kind['corral_goc_no_near'][-1] / base:.2f}")
        print(" ".join(line), flush=True)
    print("median " + " ".join(f"{k}={statistics.median(v):.0f}/s" for k, v in per_kind.items()))


def _rpcs(metrics, method):
    import corral_testing

    class One:
        replicas = [type("R", (), {"metrics_address": metrics})()]
    return corral_testing.rpcs(One, method)


def _summary(name, latencies, computes, metrics, before, errors):
    lat = sorted(latencies)
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]  # noqa: E731
    goc = _rpcs(metrics, "GetOrCompute") - before[0]
    get = _rpcs(metrics, "Get") - before[1]
    print(f"{name}: callers={len(latencies) + errors} errors={errors} computes={computes} "
          f"p50={p(0.5):.3f}s p99={p(0.99):.3f}s max={lat[-1]:.3f}s "
          f"rpcs_getorcompute={goc} rpcs_get={get}", flush=True)


def threads(args, target, metrics):
    import corral
    for rnd in range(1, args.rounds + 1):
        client = corral.Client(target, timeout=60)
        key = f"cold-threads-{os.getpid()}-{rnd}-{time.monotonic_ns()}"
        computes, latencies, errors = [], [], []
        before = (_rpcs(metrics, "GetOrCompute"), _rpcs(metrics, "Get"))
        barrier = threading.Barrier(args.threads + 1)

        def compute():
            computes.append(1)
            time.sleep(0.5)
            return VALUE

        def worker():
            barrier.wait()
            t0 = time.monotonic()
            try:
                client.get_or_compute(NS, key, compute)
                latencies.append(time.monotonic() - t0)
            except Exception:  # noqa: BLE001 - counted
                errors.append(1)

        ts = [threading.Thread(target=worker) for _ in range(args.threads)]
        for t in ts:
            t.start()
        barrier.wait()
        for t in ts:
            t.join()
        _summary(f"threads round={rnd}", latencies, len(computes), metrics, before, len(errors))
        client.close()


def tasks(args, target, metrics):
    import corral.aio

    async def one_round(rnd):
        client = corral.aio.AsyncClient(target, timeout=60)
        key = f"cold-tasks-{os.getpid()}-{rnd}-{time.monotonic_ns()}"
        computes, latencies, errors = [], [], []
        before = (_rpcs(metrics, "GetOrCompute"), _rpcs(metrics, "Get"))

        async def compute():
            computes.append(1)
            await asyncio.sleep(0.5)
            return VALUE

        async def caller(t0):
            try:
                await client.get_or_compute(NS, key, compute)
                latencies.append(time.monotonic() - t0)
            except Exception:  # noqa: BLE001 - counted
                errors.append(1)

        t0 = time.monotonic()  # Every task is created now: latency counts from here.
        await asyncio.gather(*(caller(t0) for _ in range(args.tasks)))
        _summary(f"tasks round={rnd}", latencies, len(computes), metrics, before, len(errors))
        await client.close()

    for rnd in range(1, args.rounds + 1):
        asyncio.run(one_round(rnd))


def coherence(args, fleet):
    import corral
    from corral._protocol import near_key
    reader = corral.Client(fleet.targets[0], timeout=10)
    writer = corral.Client(fleet.targets[1], timeout=10)
    delays = []
    for i in range(args.coherence):
        key = f"coherent-{i}-{time.monotonic_ns()}"
        writer.set(NS, key, VALUE, ttl=600)
        deadline = time.monotonic() + 10
        while not reader.get_or_compute_result(NS, key, lambda: VALUE).near_cache:
            if time.monotonic() > deadline:
                raise SystemExit(f"{key} never reached the near cache")
            time.sleep(0.001)
        nk = near_key(NS, key)
        t0 = time.monotonic()
        writer.set(NS, key, b"new", ttl=600)
        while reader.near_cache.lookup(nk) is not None:
            time.sleep(0)  # Lets the stream's thread take the GIL.
            if time.monotonic() - t0 > 5:
                raise SystemExit(f"{key}: the write never reached the near cache")
        delays.append(time.monotonic() - t0)
    lat = sorted(delays)
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]  # noqa: E731
    print(f"coherence: writes={len(lat)} from_set_sent_to_gone p50={p(0.5) * 1000:.2f}ms "
          f"p99={p(0.99) * 1000:.2f}ms max={lat[-1] * 1000:.2f}ms (includes the Set's own round trip)",
          flush=True)
    reader.close()
    writer.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--procs", type=int, default=8)
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1000)
    ap.add_argument("--tasks", type=int, default=10000)
    ap.add_argument("--coherence", type=int, default=200)
    ap.add_argument("--client-path", help="a directory holding another `corral` package "
                    "(e.g. an older commit's) to measure instead of the build's")
    ap.add_argument("--only", choices=["hits", "threads", "tasks", "coherence"])
    args = ap.parse_args()
    os.environ["CORRAL_BUILD_DIR"] = os.path.abspath(args.build)
    import corral_testing  # Reads CORRAL_BUILD_DIR; puts the built package on sys.path.
    if args.client_path:
        sys.path.insert(0, os.path.abspath(args.client_path))

    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    import corral
    print(f"# py_clients.py {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} commit={commit} "
          f"corral={os.path.dirname(corral.__file__)} "
          f"nproc={os.cpu_count()} load={load} args={vars(args)}", flush=True)
    fleet = corral_testing.Fleet(replicas=2)
    try:
        target, metrics = fleet.targets[0], fleet.replicas[0].metrics_address
        import redis
        redis.Redis(port=fleet.redis.port).set(KEY, VALUE)  # The original app's copy.
        import corral
        with corral.Client(target) as c:
            c.set(NS, KEY, VALUE, ttl=3600)
        if args.only in (None, "hits"):
            hits(args, target, fleet.redis.port, metrics)
        if args.only in (None, "threads"):
            threads(args, target, metrics)
        if args.only in (None, "tasks"):
            tasks(args, target, metrics)
        if args.only in (None, "coherence"):
            coherence(args, fleet)
    finally:
        fleet.stop()


if __name__ == "__main__":
    main()
