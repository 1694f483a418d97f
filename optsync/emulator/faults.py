"""API governance and fault injection: the daily request allocation, latency and faults.

Why one object: Salesforce counts every API request against a rolling 24-hour
allocation and reports usage on every response, and the same requests are where a
test wants slowness and transient failures. Keeping the counter, the latency and the
fault dice together makes the order of checks explicit (limit, count, wait, fault).
Latency is an ``await asyncio.sleep`` so a thousand concurrent clients wait in parallel.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from random import Random
from typing import Any

from optsync.emulator.errors import SalesforceError

_WINDOW_S = 24 * 3600
_BUCKET_S = 60


@dataclass
class FaultSettings:
    """Runtime knobs, changeable through ``PUT /__emulator__/settings``."""

    latency_ms: int = 0
    jitter_ms: int = 0
    fault_rate: float = 0.0
    daily_api_limit: int = 1_000_000

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def updated(self, data: dict[str, Any]) -> FaultSettings:
        """A copy with ``data`` applied; raises ``ValueError`` naming a bad key or value."""
        values = asdict(self)
        for key, value in data.items():
            if key not in values:
                raise ValueError(f"unknown setting {key!r}; use one of {sorted(values)}")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{key} must be a number")
            if key == "fault_rate":
                if not 0.0 <= float(value) <= 1.0:
                    raise ValueError("fault_rate must be between 0 and 1")
                values[key] = float(value)
            else:
                if value < 0 or int(value) != value:
                    raise ValueError(f"{key} must be a whole number of at least 0")
                values[key] = int(value)
        return FaultSettings(**values)


class Governor:
    """Counts API requests (rolling 24 h and since reset) and injects latency and faults."""

    def __init__(self, settings: FaultSettings, *, seed: int = 0):
        self.defaults = settings
        self.settings = settings
        self._rng = Random(seed)
        self._lock = threading.Lock()
        self._buckets: dict[int, int] = {}
        self._by_endpoint: Counter[str] = Counter()
        self._total = 0

    def reset(self) -> None:
        """Forget usage and restore the start-up settings."""
        with self._lock:
            self.settings = self.defaults
            self._buckets.clear()
            self._by_endpoint.clear()
            self._total = 0

    def used_today(self) -> int:
        cutoff = int(time.time() // _BUCKET_S) - _WINDOW_S // _BUCKET_S
        with self._lock:
            old = [b for b in self._buckets if b <= cutoff]
            for b in old:
                del self._buckets[b]
            return sum(self._buckets.values())

    def limit_info(self) -> str:
        return f"api-usage={self.used_today()}/{self.settings.daily_api_limit}"

    def admit(self, endpoint: str) -> None:
        """Count one API request, or refuse it when the daily allocation is used up."""
        if self.used_today() >= self.settings.daily_api_limit:
            raise SalesforceError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        bucket = int(time.time() // _BUCKET_S)
        with self._lock:
            self._buckets[bucket] = self._buckets.get(bucket, 0) + 1
            self._by_endpoint[endpoint] += 1
            self._total += 1

    async def delay(self) -> None:
        s = self.settings
        if s.latency_ms or s.jitter_ms:
            jitter = self._rng.uniform(0, s.jitter_ms) if s.jitter_ms else 0.0
            await asyncio.sleep((s.latency_ms + jitter) / 1000.0)

    def maybe_fault(self) -> None:
        """With probability ``fault_rate`` fail the request, half 503s and half row locks."""
        rate = self.settings.fault_rate
        if rate <= 0 or self._rng.random() >= rate:
            return
        if self._rng.random() < 0.5:
            raise SalesforceError(
                503, "SERVER_UNAVAILABLE", "Server temporarily unavailable. Please try again later."
            )
        raise SalesforceError(
            400, "UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record"
        )

    def row_fault(self) -> SalesforceError | None:
        """A per-row lock failure for Bulk processing, at the same fault rate."""
        rate = self.settings.fault_rate
        if rate > 0 and self._rng.random() < rate / 2:
            return SalesforceError(
                400,
                "UNABLE_TO_LOCK_ROW",
                "unable to obtain exclusive access to this record or 1 records",
            )
        return None

    def counters(self) -> dict[str, Any]:
        with self._lock:
            return {"total": self._total, "by_endpoint": dict(self._by_endpoint)}
