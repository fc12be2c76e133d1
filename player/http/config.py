"""Settings of the HTTP driver, and its one retry policy.

Every duration is in presentation seconds (the player's clock, `player.http.clock`) unless
its name says wall; the connect timeout is wall seconds because TCP set-up is not emulated.
`RetryPolicy` is the single rule for when a failed fetch is tried again and when it is
given up; manifests, segments, init segments, indexes and licences all use it (licences
with fewer attempts, `HttpConfig.license_retry`).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class RetryPolicy:
    """When a failed fetch is tried again, and when it is given up.

    Attempt n (0 = the first retry) waits ``min(backoff_max_s, backoff_s × 2ⁿ)`` scaled by a
    uniform jitter in [0.5, 1] (half fixed, half random, so clients that failed together do
    not retry together). One object is given up when `budget_s` has passed since its first
    attempt or after `attempts` attempts (None: the budget alone); after `per_edge`
    consecutive failures on one alternative (edge) the fetcher fails over to the next.
    """

    backoff_s: float = 0.25
    backoff_max_s: float = 4.0
    budget_s: float = 60.0
    attempts: int | None = None
    per_edge: int = 3
    attempt_timeout_s: float | None = None   # whole attempt; None: from the object's duration
    seed: int = 0
    rng: random.Random = field(default=None, repr=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.rng is None:
            self.rng = random.Random(f"abrlab-retry:{self.seed}")

    def delay(self, n: int) -> float:
        """The wait before retry `n` (0-based): exponential backoff with jitter."""
        base = min(self.backoff_max_s, self.backoff_s * (2 ** max(0, n)))
        return base * (0.5 + 0.5 * self.rng.random())

    def gives_up(self, attempts: int, elapsed_s: float) -> bool:
        """Whether an object tried `attempts` times over `elapsed_s` is given up."""
        return elapsed_s >= self.budget_s or (self.attempts is not None and attempts >= self.attempts)


@dataclass
class HttpConfig:
    """Timeouts (presentation seconds unless stated), retries and checks of the HTTP driver."""

    connect_timeout_s: float = 4.0          # wall seconds
    first_byte_timeout_s: float = 10.0
    idle_timeout_s: float = 10.0
    total_timeout_factor: float = 8.0       # × segment duration
    min_total_timeout_s: float = 20.0
    retries_per_edge: int = 3
    backoff_s: float = 0.25
    backoff_max_s: float = 4.0
    max_retry_s: float = 60.0               # per object: the retry budget
    failover_penalty_s: float = 60.0
    max_redirects: int = 5                  # hops followed per request (http/https only)
    abandon_interval_s: float = 0.25
    max_failures_per_segment: int = 6
    license_attempts: int = 3
    license_timeout_s: float = 10.0
    renew_at: float = 0.8                   # fraction of the license duration
    real_time_play_out: bool = False        # wait for the buffer to play out at the end
    seed: int = 0

    def retry(self) -> RetryPolicy:
        """The retry policy of manifests, segments, init segments and indexes."""
        return RetryPolicy(self.backoff_s, self.backoff_max_s, self.max_retry_s, None, self.retries_per_edge,
                           seed=self.seed)

    def license_retry(self) -> RetryPolicy:
        """The retry policy of licence requests: `license_attempts` attempts of at most
        `license_timeout_s` each, backing off twice as long as media."""
        return RetryPolicy(2 * self.backoff_s, self.backoff_max_s, self.max_retry_s, self.license_attempts,
                           self.license_attempts, self.license_timeout_s, seed=self.seed + 1)
