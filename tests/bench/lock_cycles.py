#!/usr/bin/python3
"""Lock cycles (acquire + release) from Python worker threads, against
etcd's lock service or corral, so that the two compare through one client
language.

  lock_cycles.py --backend=etcd --target=127.0.0.1:2379 --workers=8 --contended
  lock_cycles.py --backend=corral --target=127.0.0.1:50051 --workers=1

etcd: its v3 gRPC Lock API through etcd's JSON gateway (POST /v3/lock/lock
with a lease, /v3/lock/unlock), one keep-alive HTTP connection and one lease
per worker: what `etcdctl lock` does with its session. corral: the Python
client (client/python, PYTHONPATH=BUILD/client/python), one channel per
worker, AcquireLock (try once uncontended, wait up to 10 s contended) and
ReleaseLock. Prints one line: cycles, errors, cycles/s, p50/p99 per cycle.
Needs Debian's python3 (python3-grpcio) for the corral backend.
"""

import argparse
import base64
import http.client
import json
import os
import threading
import time


class EtcdWorker:
    def __init__(self, target, ttl):
        host, port = target.rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=30)
        self.lease = self.post("/v3/lease/grant", {"TTL": ttl})["ID"]

    def post(self, path, body):
        self.conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        resp = self.conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{path}: HTTP {resp.status} {data[:200]!r}")
        return json.loads(data)

    def cycle(self, key):
        name = base64.b64encode(key).decode()
        held = self.post("/v3/lock/lock", {"name": name, "lease": self.lease})["key"]
        self.post("/v3/lock/unlock", {"key": held})
        return True


class CorralWorker:
    def __init__(self, target, ttl, contended, ns):
        import corral  # noqa: PLC0415 (only the corral backend needs grpcio)
        self.corral = corral
        self.client = corral.Client(target, timeout=30)
        self.ttl = ttl
        self.wait = 10.0 if contended else 0
        self.ns = ns

    def cycle(self, key):
        grant = self.client.acquire_lock(self.ns, key, ttl=self.ttl, wait_timeout=self.wait)
        if not grant.acquired:
            return False
        return self.client.release_lock(self.ns, key, grant.token,
                                        outcome=self.corral.Outcome.SUCCESS)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", choices=["etcd", "corral"], required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--contended", action="store_true", help="all workers on one key")
    ap.add_argument("--duration", type=float, default=5.0, help="seconds")
    ap.add_argument("--ns", default="bench")
    args = ap.parse_args()

    prefix = b"pylocks-%d-" % int.from_bytes(os.urandom(6), "big")
    workers = []
    for _ in range(args.workers):
        if args.backend == "etcd":
            workers.append(EtcdWorker(args.target, 60))
        else:
            workers.append(CorralWorker(args.target, 10, args.contended, args.ns))
    lock = threading.Lock()
    samples, errors = [], [0]
    start = time.monotonic()
    end = start + args.duration

    def run(i, worker):
        key = prefix if args.contended else prefix + str(i).encode()
        mine, errs = [], 0
        while time.monotonic() < end:
            t0 = time.monotonic()
            try:
                ok = worker.cycle(key)
            except Exception:  # noqa: BLE001 (counted, the run goes on)
                ok = False
            if ok:
                mine.append(time.monotonic() - t0)
            else:
                errs += 1
        with lock:
            samples.extend(mine)
            errors[0] += errs

    threads = [threading.Thread(target=run, args=(i, w)) for i, w in enumerate(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    samples.sort()
    pick = (lambda q: samples[min(len(samples) - 1, int(q * len(samples)))] * 1e3) if samples else (lambda q: 0.0)
    print(f"backend={args.backend} workers={args.workers} contended={int(args.contended)} "
          f"cycles={len(samples)} errors={errors[0]} elapsed={elapsed:.3f}s "
          f"cycles_per_s={len(samples) / elapsed:.0f} p50={pick(0.5):.3f}ms p99={pick(0.99):.3f}ms")
    return 0 if errors[0] == 0 and samples else 1


if __name__ == "__main__":
    raise SystemExit(main())
