#!/usr/bin/python3
"""A slow, paid plant-identification API, faked: the upstream that corral
protects in the examples and tests.

    fake_upstream.py serve [--port 0] [--min-delay 2] [--max-delay 9] [--fail]
        Serves until killed. Prints "fake-upstream ready url=http://HOST:PORT"
        on stderr once listening.
        POST /identify   body: image bytes -> 200 JSON identification after a
                         random delay in [min, max] s; 503 while failing.
        POST /fail       body "1" or "0": switch failing on or off.
        GET  /stats      JSON {"calls": N, "failures": N, "per_image": {sha256: N}}
    fake_upstream.py identify --upstream URL IMAGE
        One identification; writes the response body to stdout (for
        `corralctl get-or-compute --exec`). Exit 1 on failure.

Each answer carries the upstream's call number, so two computes of the same
image give different bytes: a test can tell one compute from two.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SPECIES = ["Rosa canina", "Tulipa gesneriana", "Monstera deliciosa", "Ficus lyrata",
           "Lavandula angustifolia", "Quercus robur", "Helianthus annuus", "Aloe vera"]


class UpstreamError(Exception):
    """The upstream answered with an error, or could not be reached."""


class _State:
    def __init__(self, min_delay: float, max_delay: float, failing: bool):
        self.min_delay, self.max_delay = min_delay, max_delay
        self.failing = failing
        self.mu = threading.Lock()
        self.calls = 0
        self.failures = 0
        self.per_image: dict = {}


def _handler(state: _State):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # Quiet: tests read stderr for "ready".
            pass

        def _reply(self, code: int, body: bytes, ctype="application/json"):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def do_GET(self):
            if self.path != "/stats":
                return self._reply(404, b"not found\n", "text/plain")
            with state.mu:
                stats = {"calls": state.calls, "failures": state.failures,
                         "per_image": dict(state.per_image)}
            self._reply(200, json.dumps(stats, sort_keys=True).encode())

        def do_POST(self):
            body = self._body()
            if self.path == "/fail":
                with state.mu:
                    state.failing = body.strip() in (b"1", b"true", b"on")
                return self._reply(200, b"{}")
            if self.path != "/identify":
                return self._reply(404, b"not found\n", "text/plain")
            image_sha = hashlib.sha256(body).hexdigest()
            with state.mu:
                state.calls += 1
                call = state.calls
                state.per_image[image_sha] = state.per_image.get(image_sha, 0) + 1
                failing = state.failing
            time.sleep(random.uniform(state.min_delay, state.max_delay))
            if failing:
                with state.mu:
                    state.failures += 1
                return self._reply(503, b'{"error": "plant.id unavailable"}')
            answer = {"image_sha256": image_sha,
                      "species": SPECIES[int(image_sha[:8], 16) % len(SPECIES)],
                      "confidence": round(0.5 + (int(image_sha[8:12], 16) % 50) / 100, 2),
                      "upstream_call": call}
            self._reply(200, json.dumps(answer, sort_keys=True, separators=(",", ":")).encode())

    return Handler


def identify(upstream: str, image: bytes, timeout: float = 30.0) -> bytes:
    """POSTs ``image`` to ``upstream``/identify and returns the response
    body; raises UpstreamError on an error status or a transport failure."""
    req = urllib.request.Request(upstream.rstrip("/") + "/identify", data=image, method="POST",
                                 headers={"Content-Type": "application/octet-stream"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.read()
    except urllib.error.HTTPError as e:
        raise UpstreamError(f"upstream answered {e.code}: {e.read()[:200]!r}") from None
    except (urllib.error.URLError, OSError) as e:
        raise UpstreamError(f"upstream unreachable: {e}") from None


def set_failing(upstream: str, failing: bool) -> None:
    """Switches the upstream's failure mode."""
    urllib.request.urlopen(urllib.request.Request(
        upstream.rstrip("/") + "/fail", data=b"1" if failing else b"0", method="POST"), timeout=5).read()


def stats(upstream: str) -> dict:
    with urllib.request.urlopen(upstream.rstrip("/") + "/stats", timeout=5) as resp:
        return json.loads(resp.read())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0)
    serve.add_argument("--min-delay", type=float, default=2.0, help="seconds (default 2)")
    serve.add_argument("--max-delay", type=float, default=9.0, help="seconds (default 9)")
    serve.add_argument("--fail", action="store_true", help="start failing (503)")
    ident = sub.add_parser("identify")
    ident.add_argument("--upstream", required=True)
    ident.add_argument("image")
    args = parser.parse_args(argv)

    if args.command == "identify":
        with open(args.image, "rb") as f:
            image = f.read()
        try:
            sys.stdout.buffer.write(identify(args.upstream, image))
        except UpstreamError as e:
            print(f"fake_upstream identify: {e}", file=sys.stderr)
            return 1
        return 0

    if args.min_delay < 0 or args.max_delay < args.min_delay:
        parser.error("need 0 <= --min-delay <= --max-delay")
    ThreadingHTTPServer.request_queue_size = 128  # Stampedes arrive at once.
    server = ThreadingHTTPServer((args.host, args.port),
                                 _handler(_State(args.min_delay, args.max_delay, args.fail)))
    server.daemon_threads = True
    host, port = server.server_address[:2]
    print(f"fake-upstream ready url=http://{host}:{port}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
