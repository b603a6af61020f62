"""Where the training time goes: wall-clock totals per phase of the loop."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager


class PhaseTimer:
    """Accumulates wall-clock seconds per named phase (``with timer.phase("env"): ...``)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start

    def summary(self, env_steps: int, total_seconds: float) -> dict[str, dict[str, float]]:
        """Seconds, microseconds per env step and share of ``total_seconds`` for each phase."""
        phases = dict(self.seconds)
        phases["other"] = max(total_seconds - sum(phases.values()), 0.0)
        return {
            name: {
                "seconds": seconds,
                "us_per_env_step": 1e6 * seconds / max(env_steps, 1),
                "share": seconds / total_seconds if total_seconds > 0 else 0.0,
            }
            for name, seconds in phases.items()
        }
