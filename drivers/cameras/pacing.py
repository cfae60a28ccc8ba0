"""Real-time pacing for cameras that make their frames on demand (files, patterns)."""

from __future__ import annotations

import time


class FrameClock:
    """Frame ``k`` of a stream is due at ``start + k * period``, drift-free.

    Used by replayed and synthetic cameras so they behave like a live camera: a frame becomes
    available at its due time, and a reader that falls behind gets the newest due frame, the
    older ones being dropped (counted through the sequence gap).
    """

    def __init__(self, fps: float, start_ns: int | None = None) -> None:
        if not fps > 0:
            raise ValueError(f"frame rate must be > 0, got {fps}")
        self.period_ns = round(1e9 / fps)
        self.start_ns = time.monotonic_ns() if start_ns is None else start_ns

    def due_ns(self, sequence: int) -> int:
        return self.start_ns + sequence * self.period_ns

    def latest_due(self, now_ns: int) -> int:
        """The highest sequence number whose due time has passed (-1 before the first)."""
        return (now_ns - self.start_ns) // self.period_ns

    def wait_until_due(self, sequence: int) -> int:
        """Sleep until frame ``sequence`` is due; returns the monotonic time on waking."""
        due = self.due_ns(sequence)
        while True:
            now = time.monotonic_ns()
            if now >= due:
                return now
            time.sleep((due - now) / 1e9)
