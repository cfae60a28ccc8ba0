"""Exponential back-off between attempts to reopen a lost device."""

from __future__ import annotations

import time


class Backoff:
    """Delays ``initial_s, 2*initial_s, ...`` capped at ``max_s``; ``reset()`` after a success."""

    def __init__(self, initial_s: float = 0.1, max_s: float = 2.0, factor: float = 2.0) -> None:
        if not 0 < initial_s <= max_s:
            raise ValueError(f"need 0 < initial_s <= max_s, got {initial_s} and {max_s}")
        if factor < 1:
            raise ValueError(f"back-off factor must be >= 1, got {factor}")
        self.initial_s = initial_s
        self.max_s = max_s
        self.factor = factor
        self._delay_s = initial_s
        self.next_attempt_ns = 0

    def reset(self) -> None:
        self._delay_s = self.initial_s
        self.next_attempt_ns = 0

    def schedule(self, now_ns: int | None = None) -> float:
        """Set the next attempt one delay from now and grow the delay; returns that delay."""
        now_ns = time.monotonic_ns() if now_ns is None else now_ns
        delay = self._delay_s
        self.next_attempt_ns = now_ns + round(delay * 1e9)
        self._delay_s = min(self.max_s, self._delay_s * self.factor)
        return delay

    def wait(self) -> None:
        """Sleep until the next attempt is due (returns at once if it already is)."""
        remaining = self.next_attempt_ns - time.monotonic_ns()
        if remaining > 0:
            time.sleep(remaining / 1e9)
