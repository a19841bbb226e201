"""A held corral lock, renewed on a background thread (``Client.lock``).

    with client.lock("plant_id", key, ttl=30, wait_timeout=15) as lock:
        value = compute()
        client.set("plant_id", key, value, lock_token=lock.token)  # fenced
        lock.release(corral.Outcome.SUCCESS)  # or let the block release it

While the lock is held a daemon thread renews it every ``renew_every``
(default ttl/3). If the server says it was not renewed (it expired and
someone else may hold it), or renewals keep failing until it has expired,
``lost`` turns true and ``on_lost`` runs once on that thread; the fencing
token then no longer protects writes (a fenced ``set`` is refused).
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Optional

from corral import _protocol
from corral.errors import CorralError
from corral.results import LockGrant, Outcome


class Lock:
    """A lock this process holds. Thread-safe; create it with Client.lock."""

    def __init__(self, client, namespace: str, key: bytes, grant: LockGrant, ttl: float,
                 renew_every: Optional[float], on_lost: Optional[Callable[[], None]]):
        self._client = client
        self.namespace = namespace
        self.key = key
        self.token = grant.token
        self.fencing_token = grant.fencing_token
        self.waited = grant.waited
        self._on_lost = on_lost
        self._mu = threading.Lock()
        self._expires_at = grant.expires_at
        self._timing = _protocol.RenewTiming(ttl, renew_every, time.monotonic())  # Under _mu.
        self._lost = False
        self._released = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew_loop, daemon=True,
                                        name=f"corral-lock-renew-{grant.fencing_token}")

    @classmethod
    def start(cls, client, namespace: str, key: bytes, grant: LockGrant, ttl: float, *,
              wait_timeout: Optional[float], renew_every=None, on_lost=None) -> "Lock":
        """The held lock for ``grant``, renewing; LockNotAcquired if it is not."""
        _protocol.check_acquired(grant, wait_timeout)
        lock = cls(client, namespace, key, grant, ttl, renew_every, on_lost)
        lock._thread.start()
        return lock

    @property
    def expires_at(self):
        """The server's word on when the lock expires, as of the last renewal."""
        with self._mu:
            return self._expires_at

    @property
    def lost(self) -> bool:
        with self._mu:
            return self._lost

    @property
    def released(self) -> bool:
        with self._mu:
            return self._released

    def release(self, outcome: Outcome = Outcome.UNSPECIFIED) -> bool:
        """Stops renewing, then releases the lock, telling the breaker
        ``outcome``. Returns whether the server released it (False: it had
        been lost). A second call raises RuntimeError. Not to be called from
        ``on_lost``."""
        with self._mu:
            if self._released:
                raise RuntimeError("lock already released")
            self._released = True
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join()
        return self._client.release_lock(self.namespace, self.key, self.token, outcome=outcome)

    def __enter__(self) -> "Lock":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.released:
            return
        try:
            self.release()
        except CorralError:
            if exc is None:
                raise
            # The block's own exception matters more; the lock expires anyway.

    def _renew_loop(self) -> None:
        timing = self._timing  # Its ttl and period never change.
        while not self._stop.wait(timing.period):
            sent = time.monotonic()
            try:
                r = self._client.renew_lock(self.namespace, self.key, self.token, ttl=timing.ttl,
                                            timeout=timing.call_timeout)
            except CorralError:
                r = None  # Still ours until it expires; try again next period.
            with self._mu:
                held = timing.still_held(r, sent, time.monotonic())
                if held and r is not None:
                    self._expires_at = r.expires_at
            if not held:
                self._mark_lost()
                return

    def _mark_lost(self) -> None:
        with self._mu:
            if self._released:
                return
            self._lost = True
        if self._on_lost is not None:
            self._on_lost()
