"""The client's near cache, sans I/O: hot values kept in this process's
memory and kept coherent by corrald (corral.proto, "Near cache";
docs/ARCHITECTURE.md 3.8). The shells (client.py, aio.py) run the NearCache
stream and the Gets; this module decides what is kept, for how long, and
what an invalidation removes. Thread-safe (the blocking client's stream
runs on a thread of its own).

The rules, as the server's protocol needs them:
- nothing is kept while there is no session (the stream is not started, or
  was lost: losing it empties the cache);
- a Get takes a ticket before it is sent; an invalidation of its key (or a
  reset, or the loss of the stream) before the answer spoils the ticket,
  and a spoiled ticket plants nothing: the answer is used once, not kept;
- an entry lives ``near_cache_for`` counted from when its Get was *sent*,
  never longer (the server never grants past the TTL or into the
  early-refresh window);
- every answer ends the right to plant of the key's older reads still in
  flight (they may carry an older value), and an answer that is not kept
  drops the key's entry (planted meanwhile, maybe older) unless it holds
  the same value: no thread sees a key go back in time through the near
  cache;
- memory is bounded by entries and by bytes (key + value), least recently
  used first out.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
from typing import Dict, Iterable, List, Optional, Tuple

NearKey = Tuple[str, bytes]

#: Bookkeeping counted per entry on top of its key and value.
ENTRY_OVERHEAD = 64


@dataclasses.dataclass(frozen=True)
class NearCacheLimits:
    """How much the near cache may hold: ``max_entries`` values and
    ``max_bytes`` of keys and values together (the least recently used go
    first). A value larger than ``max_bytes`` is never kept."""

    max_entries: int = 10_000
    max_bytes: int = 64 << 20

    def __post_init__(self):
        if self.max_entries < 1 or self.max_bytes < 1:
            raise ValueError("near cache limits must be positive")


class Entry:
    __slots__ = ("value", "expires", "stored_at", "value_expires", "size")

    def __init__(self, value: bytes, expires: float, stored_at: float, value_expires: float,
                 size: int):
        self.value = value
        self.expires = expires  # monotonic: serve until then
        self.stored_at = stored_at  # monotonic instant the server's age counts from
        self.value_expires = value_expires  # monotonic: the value's TTL ends
        self.size = size


class Ticket:
    """Taken before a Get is sent; spoiled by an invalidation of its key,
    a reset or the loss of the session before the answer is planted."""

    __slots__ = ("key", "session", "sent", "spoiled")

    def __init__(self, key: NearKey, session: bytes, sent: float):
        self.key = key
        self.session = session
        self.sent = sent
        self.spoiled = False


class NearCache:
    def __init__(self, limits: NearCacheLimits = NearCacheLimits(), clock=time.monotonic):
        self.limits = limits
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: "collections.OrderedDict[NearKey, Entry]" = collections.OrderedDict()
        self._bytes = 0
        self._pending: Dict[NearKey, List[Ticket]] = {}
        self._session: bytes = b""
        # Counters for tests, benchmarks and logs.
        self.hits = 0
        self.planted = 0
        self.not_planted = 0
        self.invalidated = 0
        self.evicted = 0
        self.resets = 0

    # -- the session (the NearCache stream) ---------------------------------
    @property
    def session(self) -> bytes:
        """The open stream's session; empty while there is none."""
        return self._session

    def start(self, session: bytes) -> None:
        """The stream answered NearCacheStarted."""
        with self._lock:
            self._drop_all()
            self._session = bytes(session)

    def lost(self) -> None:
        """The stream ended: keep nothing until the next one starts."""
        with self._lock:
            self._session = b""
            self._drop_all()

    def reset(self) -> None:
        """NearCacheReset: drop everything; the session stays."""
        with self._lock:
            self._drop_all()

    def invalidate(self, keys: Iterable[NearKey]) -> None:
        """NearCacheInvalidations, or this client's own Set/Invalidate."""
        with self._lock:
            for key in keys:
                entry = self._entries.pop(key, None)
                if entry is not None:
                    self._bytes -= entry.size
                    self.invalidated += 1
                for t in self._pending.get(key, ()):
                    t.spoiled = True

    def _drop_all(self) -> None:
        self.resets += 1
        self._entries.clear()
        self._bytes = 0
        for tickets in self._pending.values():
            for t in tickets:
                t.spoiled = True

    # -- reads ---------------------------------------------------------------
    def lookup(self, key: NearKey) -> Optional[Entry]:
        """The entry to serve, or None (absent or expired)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if self._clock() >= entry.expires:
                del self._entries[key]
                self._bytes -= entry.size
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry

    def ticket(self, key: NearKey) -> Optional[Ticket]:
        """Before a Get is sent: its ticket, or None while there is no
        session (the Get then carries none, and nothing is kept)."""
        with self._lock:
            if not self._session:
                return None
            t = Ticket(key, self._session, self._clock())
            self._pending.setdefault(key, []).append(t)
            return t

    def plant(self, ticket: Ticket, value: bytes, near_cache_for: float, age: float,
              ttl_remaining: float) -> bool:
        """The Get answered ``value`` with ``near_cache_for`` seconds (0: not
        granted). Keeps it unless the ticket was spoiled, the grant is over
        or the value does not fit. Always ends the ticket."""
        with self._lock:
            self._end(ticket)
            expires = ticket.sent + near_cache_for
            size = len(ticket.key[0]) + len(ticket.key[1]) + len(value) + ENTRY_OVERHEAD
            if (ticket.spoiled or ticket.session != self._session or near_cache_for <= 0
                    or expires <= self._clock() or size > self.limits.max_bytes):
                self.not_planted += 1
                self._drop(ticket.key, unless=value)
                return False
            old = self._entries.pop(ticket.key, None)
            if old is not None:
                self._bytes -= old.size
            self._entries[ticket.key] = Entry(bytes(value), expires, ticket.sent - age,
                                              ticket.sent + ttl_remaining, size)
            self._bytes += size
            while (len(self._entries) > self.limits.max_entries
                   or self._bytes > self.limits.max_bytes):
                _, out = self._entries.popitem(last=False)
                self._bytes -= out.size
                self.evicted += 1
            self.planted += 1
            return True

    def cancel(self, ticket: Ticket) -> None:
        """The Get failed, or its answer (a miss, a stale value, a refresh
        due) is not to be kept."""
        with self._lock:
            self._end(ticket)
            self._drop(ticket.key)

    def _end(self, ticket: Ticket) -> None:
        """The ticket's answer is in: the key's other reads still in flight
        may carry an older value; none may plant."""
        tickets = self._pending.get(ticket.key)
        if tickets is None:
            return
        try:
            tickets.remove(ticket)
        except ValueError:
            return
        if not tickets:
            del self._pending[ticket.key]
            return
        for t in tickets:
            t.spoiled = True

    def _drop(self, key: NearKey, unless: Optional[bytes] = None) -> None:
        """Drops the key's entry (planted meanwhile, maybe older than this
        answer) unless it holds the value ``unless`` (many concurrent reads
        of one value would otherwise keep erasing each other's plants)."""
        entry = self._entries.get(key)
        if entry is None or (unless is not None and entry.value == unless):
            return
        del self._entries[key]
        self._bytes -= entry.size

    # -- what it holds ---------------------------------------------------------
    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        return self._bytes

    def age_and_ttl(self, entry: Entry) -> Tuple[float, float]:
        """The entry's value's age and remaining TTL now."""
        now = self._clock()
        return max(now - entry.stored_at, 0.0), max(entry.value_expires - now, 0.0)


#: Between attempts to open the NearCache stream on a server without it
#: (UNIMPLEMENTED: an older corrald): it may be upgraded under the client.
UNSUPPORTED_BACKOFF = 30.0


class Backoff:
    """Delays between attempts to reopen the NearCache stream: 0.05 s
    doubling to ``cap``; back to the start once a stream started."""

    def __init__(self, first: float = 0.05, cap: float = 2.0):
        self._first, self._cap = first, cap
        self._next = first

    def started(self) -> None:
        self._next = self._first

    def delay(self) -> float:
        d = self._next
        self._next = min(self._next * 2, self._cap)
        return d
