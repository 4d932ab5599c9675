"""A per-user token bucket for the API: ``rate`` requests a minute with bursts up to ``burst``."""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class RateLimiter:
    """``allow(user)`` -> 0 when the request may run, else the seconds to wait (for ``Retry-After``).

    ``rate`` 0 turns the limit off (``LMW_RATE_LIMIT``: requests per minute per user, default 120)."""

    rate: float = 120.0
    burst: float = 20.0
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict, repr=False)  # user -> (tokens, at)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_env(cls) -> RateLimiter:
        rate = os.environ.get("LMW_RATE_LIMIT", "").strip()
        burst = os.environ.get("LMW_RATE_BURST", "").strip()
        return cls(rate=float(rate) if rate.isdigit() else cls.rate,
                   burst=float(burst) if burst.isdigit() and int(burst) > 0 else cls.burst)

    def allow(self, user: str) -> int:
        if self.rate <= 0:
            return 0
        per_s = self.rate / 60.0
        with self._lock:
            now = self.clock()
            tokens, at = self._buckets.get(user, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * per_s)
            if tokens >= 1:
                self._buckets[user] = (tokens - 1, now)
                return 0
            self._buckets[user] = (tokens, now)
            return max(1, math.ceil((1 - tokens) / per_s))
