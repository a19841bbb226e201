'use strict';
// When and how soon a failed attempt is retried (see errors.isRetryable).
// Mirrors client/python/corral/_retry.py; times are seconds.

const { isRetryable } = require('./errors');

const DEFAULT_RETRY = Object.freeze({
  maxAttempts: 8, initialBackoff: 0.05, maxBackoff: 1.0, multiplier: 2.0, jitter: 0.2,
});
const NO_RETRY = Object.freeze({ ...DEFAULT_RETRY, maxAttempts: 1 });

// The attempts of one call: `policy` (attempts, the first included, and
// exponential backoff scaled by a random factor in [1 - jitter, 1]) bounded
// by `deadline` (a performance.now() instant, ms).
class RetryState {
  constructor(policy, deadline) {
    this.policy = { ...DEFAULT_RETRY, ...policy };
    this.deadline = deadline;
    this.attempts = 1;
  }

  // After attempt `attempts` failed with `err`: ms to wait before the next
  // one, or null to give up.
  nextDelayMs(err, computeRan) {
    const p = this.policy;
    if (!isRetryable(err, computeRan) || this.attempts >= p.maxAttempts) return null;
    const base = Math.min(p.maxBackoff, p.initialBackoff * p.multiplier ** (this.attempts - 1));
    const delayMs = base * (1 - p.jitter * Math.random()) * 1000;
    if (performance.now() + delayMs >= this.deadline) return null;
    this.attempts += 1;
    return delayMs;
  }

  // The call's deadline as a Date for grpc-js (at least 1 ms ahead, so that a
  // late attempt fails with DEADLINE_EXCEEDED rather than not starting).
  grpcDeadline() {
    return new Date(Date.now() + Math.max(1, this.deadline - performance.now()));
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

module.exports = { DEFAULT_RETRY, NO_RETRY, RetryState, sleep };
