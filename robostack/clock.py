"""Time: capture stamps and the drift-free rate schedule every periodic loop uses.

All stamps are ``CLOCK_MONOTONIC`` nanoseconds of the host (:func:`now_ns`), the clock that
``time.monotonic_ns`` reads; it is shared by every process on one host, so latency from a capture
stamp can be measured across processes. Wall-clock nanoseconds travel beside it only to relate
hosts and for humans.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

now_ns = time.monotonic_ns
wall_ns = time.time_ns


def _set_timer_slack_ns(slack_ns: int) -> None:
    """Shrink Linux's default 50 µs timer slack so short sleeps wake close to their deadline."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_TIMERSLACK = 29
        libc.prctl(PR_SET_TIMERSLACK, ctypes.c_ulong(max(1, slack_ns)), 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the default slack only costs jitter
        pass


@dataclass
class RateStats:
    """Counters of a :class:`Rate` since it was created."""

    ticks: int = 0
    overruns: int = 0  # deadlines already missed by more than one period when we got there
    skipped: int = 0  # periods dropped to catch up after an overrun


class Rate:
    """Drift-free periodic schedule: deadlines are ``t0 + k * period``, never ``now + period``.

    :meth:`sleep` sleeps until ``spin_s`` before the next deadline, then spins on the clock, which
    is cheap and low-jitter in Python. When a deadline was missed by more than a whole period the
    schedule skips the lost periods (counted as overruns) instead of bursting to catch up.
    """

    def __init__(self, hz: float, spin_s: float = 0.001, start_ns: int | None = None) -> None:
        if not hz > 0:
            raise ValueError(f"Rate hz must be > 0, got {hz!r}")
        self.period_ns = int(round(1e9 / hz))
        self.spin_ns = int(min(spin_s * 1e9, self.period_ns))
        self._next_ns = (now_ns() if start_ns is None else start_ns) + self.period_ns
        self.stats = RateStats()
        _set_timer_slack_ns(1000)

    @property
    def next_deadline_ns(self) -> int:
        return self._next_ns

    def remaining_ns(self) -> int:
        """Nanoseconds until the next deadline (negative when late)."""
        return self._next_ns - now_ns()

    def sleep(self) -> int:
        """Wait for the next deadline; return the lateness in ns (wake time minus deadline)."""
        deadline = self._next_ns
        coarse = deadline - self.spin_ns - now_ns()
        if coarse > 0:
            time.sleep(coarse / 1e9)
        t = now_ns()
        while t < deadline:
            t = now_ns()
        self.advance(t)
        return t - deadline

    def advance(self, woke_ns: int) -> None:
        """Move to the next deadline after waking at ``woke_ns`` (for loops that wait themselves,
        e.g. in a socket poll, and then call this)."""
        self.stats.ticks += 1
        self._next_ns += self.period_ns
        if woke_ns - self._next_ns > 0:
            # Woke more than a period late: drop the lost periods rather than burst.
            lost = (woke_ns - self._next_ns) // self.period_ns + 1
            self.stats.overruns += 1
            self.stats.skipped += int(lost)
            self._next_ns += int(lost) * self.period_ns
