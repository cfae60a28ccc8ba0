"""Diagnostic nodes for checking a link, a machine or a graph: :class:`Pulse` publishes arrays at
a rate, :class:`Relay` forwards them, :class:`Probe` measures what arrives.

Example (``launch/diagnostics.yaml``): a 640×480 camera-sized pulse at 30 Hz into a probe; the
probe's stats give latency from capture stamp, inter-arrival jitter, gaps and drops.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from robostack.clock import now_ns
from robostack.metrics import Window
from robostack.node import Input, Node, Output


@dataclass
class PulseParams:
    shape: list[int] = field(default_factory=lambda: [480, 640, 3])
    dtype: str = "uint8"
    rate_hz: float = 30.0
    codec: Literal["raw", "jpeg", "png"] = "raw"

    def __post_init__(self) -> None:
        if any(d < 0 for d in self.shape):
            raise ValueError(f"param 'shape': dimensions must be >= 0, got {self.shape}")
        try:
            np.dtype(self.dtype)
        except TypeError as exc:
            raise ValueError(f"param 'dtype': {self.dtype!r} is not a numpy dtype") from exc
        if self.rate_hz <= 0:
            raise ValueError(f"param 'rate_hz' must be > 0, got {self.rate_hz}")


class Pulse(Node):
    """Publishes ``{"data": array}`` of the given shape and dtype at ``rate_hz``, stamped at
    creation. The content changes every message (a counter in the first elements), so a frozen
    stream is visible downstream."""

    outputs = {"out": Output(doc="arrays of the configured shape/dtype")}
    Params = PulseParams

    def setup(self) -> None:
        rng = np.random.default_rng(0)
        dtype = np.dtype(self.params.dtype)
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            self._data = rng.integers(info.min, info.max, size=self.params.shape, dtype=dtype, endpoint=True)
        else:
            self._data = rng.standard_normal(self.params.shape).astype(dtype)
        self._count = 0
        if self.params.codec != "raw":
            self.set_codec("out", "data", self.params.codec)

    def step(self) -> None:
        flat = self._data.reshape(-1)
        if flat.size:
            flat[0] = self._count % 256 if flat.dtype.kind in "iu" else self._count
        self._count += 1
        self.publish("out", {"data": self._data}, stamp_ns=now_ns())


class Relay(Node):
    """Forwards every message from ``in`` to ``out`` unchanged, keeping its capture stamp
    (event-driven: runs when a message arrives). Useful to measure multi-hop latency."""

    inputs = {"in": Input(trigger=True, mode="queue")}
    outputs = {"out": Output()}

    def step(self) -> None:
        for msg in self.read_all("in"):
            self.publish("out", msg.arrays, stamp_ns=msg.stamp_ns, meta=msg.meta)


@dataclass
class ProbeParams:
    expect_rate_hz: float = 0.0  # 0: do not judge the rate


class Probe(Node):
    """Subscribes to a stream and measures it: latency from capture stamp (in the node stats),
    inter-arrival jitter, throughput, sequence gaps and queue drops (``extra`` stats)."""

    inputs = {"frames": Input(trigger=True, mode="queue", queue_size=1000)}
    Params = ProbeParams

    def setup(self) -> None:
        self._interarrival_ms = Window(5000)
        self._last_arrival: int | None = None
        self._bytes = 0
        self._msgs = 0
        self._first_ns: int | None = None

    def step(self) -> None:
        for msg in self.read_all("frames"):
            t = now_ns()
            if self._last_arrival is not None:
                self._interarrival_ms.add((t - self._last_arrival) / 1e6)
            self._last_arrival = t
            self._first_ns = self._first_ns or t
            self._bytes += msg.nbytes
            self._msgs += 1

    def extra_stats(self) -> dict[str, Any]:
        span_s = ((self._last_arrival or 0) - (self._first_ns or 0)) / 1e9
        sub = self._inputs["frames"].sub.stats if "frames" in self._inputs else None
        out: dict[str, Any] = {
            "messages": self._msgs,
            "mbytes_per_s": round(self._bytes / span_s / 1e6, 3) if span_s > 0 else 0.0,
            "interarrival_ms": self._interarrival_ms.summary(),
            "gaps": sub.gaps if sub else 0,
            "dropped": sub.dropped if sub else 0,
        }
        if self.params.expect_rate_hz > 0 and span_s > 0:
            out["rate_ok"] = abs(self._msgs / span_s - self.params.expect_rate_hz) < 0.1 * self.params.expect_rate_hz
        return out
