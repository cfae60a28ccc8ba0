"""Real-time mode: advance a lockstep twin so that sim time keeps up with the wall clock."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol
from collections.abc import Callable


class Steppable(Protocol):
    @property
    def time_ns(self) -> int: ...
    def step(self, n_steps: int = 1) -> None: ...


@dataclass
class RealTimeStats:
    steps: int = 0
    """Physics steps taken."""
    max_lag_s: float = 0.0
    """Worst observed lag of sim time behind the wall clock (after catching up)."""
    dropped_s: float = 0.0
    """Sim time skipped because the host could not keep up (see ``max_catchup_s``)."""


class RealTimeStepper:
    """Keeps an environment's sim time in step with a wall clock.

    Call :meth:`sync` as often as you like (e.g. from a node's loop): it takes as many physics
    steps as the wall clock has moved since :meth:`start`. If the host falls behind by more than
    ``max_catchup_s``, the excess is dropped (counted in ``stats.dropped_s``) rather than run in
    a burst that would make the arm appear to jump.
    """

    def __init__(
        self,
        env: Steppable,
        timestep_s: float,
        clock_ns: Callable[[], int] = time.monotonic_ns,
        max_catchup_s: float = 0.1,
    ) -> None:
        if timestep_s <= 0:
            raise ValueError(f"timestep_s must be > 0, got {timestep_s}")
        self.env = env
        self.timestep_ns = int(round(timestep_s * 1e9))
        self.clock_ns = clock_ns
        self.max_catchup_ns = int(max_catchup_s * 1e9)
        self.stats = RealTimeStats()
        self._wall_origin_ns: int | None = None
        self._sim_origin_ns = 0
        self._dropped_ns = 0

    def start(self) -> None:
        """Tie the current sim time to the current wall-clock time."""
        self._wall_origin_ns = self.clock_ns()
        self._sim_origin_ns = self.env.time_ns
        self._dropped_ns = 0

    def sync(self) -> int:
        """Step physics up to the wall clock; returns the number of steps taken."""
        if self._wall_origin_ns is None:
            self.start()
        assert self._wall_origin_ns is not None
        wall_elapsed = self.clock_ns() - self._wall_origin_ns - self._dropped_ns
        behind = wall_elapsed - (self.env.time_ns - self._sim_origin_ns)
        if behind > self.max_catchup_ns:
            self._dropped_ns += behind - self.max_catchup_ns
            self.stats.dropped_s = self._dropped_ns * 1e-9
            behind = self.max_catchup_ns
        steps = max(0, behind // self.timestep_ns)
        if steps:
            self.env.step(int(steps))
            self.stats.steps += int(steps)
        lag = (behind - steps * self.timestep_ns) * 1e-9
        self.stats.max_lag_s = max(self.stats.max_lag_s, lag)
        return int(steps)

    def run_for(self, duration_s: float, poll_s: float = 0.002) -> None:
        """Follow the wall clock for ``duration_s`` (sleeping between syncs)."""
        if self._wall_origin_ns is None:
            self.start()
        end = self.clock_ns() + int(duration_s * 1e9)
        while self.clock_ns() < end:
            self.sync()
            time.sleep(poll_s)
        self.sync()
