"""The observations a policy conditions on: the recent past on the policy's own time grid.

Kept by whoever talks to the model — the in-process ONNX policy, or the serving client that
sends the stack with every request — so both pick exactly the same frames.
"""

from __future__ import annotations

from collections import deque

from robostack.chunks import Observation


class ObservationHistory:
    """Observations by capture stamp, trimmed to what ``horizon`` steps of ``dt_ns`` need."""

    def __init__(self, horizon: int, dt_ns: int) -> None:
        self.horizon = horizon
        self.dt_ns = dt_ns
        self._items: deque[tuple[int, Observation]] = deque()

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def newest_stamp_ns(self) -> int | None:
        return self._items[-1][0] if self._items else None

    def add(self, obs: Observation, stamp_ns: int) -> None:
        """Add an observation; one with the newest stamp replaces it, an older one is refused."""
        items = self._items
        if items and stamp_ns < items[-1][0]:
            raise ValueError(f"observation stamp {stamp_ns} is older than the previous one {items[-1][0]}")
        if items and stamp_ns == items[-1][0]:
            items.pop()
        items.append((int(stamp_ns), obs))
        horizon_ns = self.horizon * self.dt_ns
        while len(items) > 1 and items[1][0] <= stamp_ns - horizon_ns:
            items.popleft()

    def frames(self) -> list[Observation]:
        """For each grid time ``newest - k·dt`` the newest observation at or before it (the oldest
        held when none), oldest first."""
        newest = self._items[-1][0]
        out = []
        for k in range(self.horizon - 1, -1, -1):
            target = newest - k * self.dt_ns
            chosen = self._items[0][1]
            for stamp, obs in self._items:
                if stamp <= target:
                    chosen = obs
            out.append(chosen)
        return out
