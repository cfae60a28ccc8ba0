"""Rolling measurements for live stats and benchmarks: percentiles over a sample window and
event rates."""

from __future__ import annotations

from collections import deque

import numpy as np


def percentiles(samples, qs=(50, 99)) -> dict[str, float]:
    """``{"p50": ..., "p99": ..., "max": ..., "mean": ..., "n": ...}`` of ``samples`` (NaN if empty)."""
    arr = np.asarray(samples, dtype=np.float64)
    out: dict[str, float] = {"n": int(arr.size)}
    if arr.size == 0:
        out.update({f"p{q}": float("nan") for q in qs})
        out.update(max=float("nan"), mean=float("nan"))
        return out
    for q, v in zip(qs, np.percentile(arr, qs)):
        out[f"p{q}"] = float(v)
    out["max"] = float(arr.max())
    out["mean"] = float(arr.mean())
    return out


class Window:
    """The last ``size`` samples of a quantity (latencies, period errors)."""

    def __init__(self, size: int = 2000) -> None:
        self._buf = np.empty(size, dtype=np.float64)
        self._n = 0
        self._size = size

    def add(self, value: float) -> None:
        self._buf[self._n % self._size] = value
        self._n += 1

    def __len__(self) -> int:
        return min(self._n, self._size)

    def summary(self) -> dict[str, float]:
        return percentiles(self._buf[: len(self)])


class RateMeter:
    """Events per second over the last ``horizon_s`` seconds."""

    def __init__(self, horizon_s: float = 2.0) -> None:
        self._horizon_ns = int(horizon_s * 1e9)
        self._stamps: deque[int] = deque()
        self.total = 0

    def tick(self, t_ns: int) -> None:
        self._stamps.append(t_ns)
        self.total += 1

    def rate(self, t_ns: int) -> float:
        while self._stamps and t_ns - self._stamps[0] > self._horizon_ns:
            self._stamps.popleft()
        if len(self._stamps) < 2:
            return 0.0
        span = max(t_ns - self._stamps[0], self._stamps[-1] - self._stamps[0])
        return (len(self._stamps) - 1) * 1e9 / span if span > 0 else 0.0
