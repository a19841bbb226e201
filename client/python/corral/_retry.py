"""When and how soon a failed attempt is retried (see errors.is_retryable)."""

from __future__ import annotations

import dataclasses
import random
import time
from typing import Optional

from corral.errors import CorralError, is_retryable


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """Attempts per call (the first included; 1 disables retries) and the
    exponential backoff between them. Each delay is scaled by a random
    factor in [1 - jitter, 1] so that clients that failed together do not
    come back together. The call's deadline bounds the attempts too."""

    max_attempts: int = 8
    initial_backoff: float = 0.05
    max_backoff: float = 1.0
    multiplier: float = 2.0
    jitter: float = 0.2

    def delay(self, retry: int, random01: float) -> float:
        """The delay before retry number ``retry`` (0 for the first)."""
        base = min(self.max_backoff, self.initial_backoff * self.multiplier ** retry)
        return base * (1.0 - self.jitter * random01)


class RetryState:
    """The attempts of one call. Not thread-safe: one per call."""

    def __init__(self, policy: RetryPolicy, deadline: float):
        self._policy = policy
        self._deadline = deadline  # time.monotonic() instant
        self.attempts = 1

    def next_delay(self, err: CorralError, compute_ran: bool) -> Optional[float]:
        """After attempt ``attempts`` failed with ``err``: seconds to wait
        before the next one, or None to give up."""
        if not is_retryable(err, compute_ran) or self.attempts >= self._policy.max_attempts:
            return None
        delay = self._policy.delay(self.attempts - 1, random.random())
        if time.monotonic() + delay >= self._deadline:
            return None
        self.attempts += 1
        return delay

    def remaining(self) -> float:
        """Seconds left before the call's deadline (at least 1 ms, so that a
        late attempt fails with DEADLINE_EXCEEDED rather than not starting)."""
        return max(0.001, self._deadline - time.monotonic())
