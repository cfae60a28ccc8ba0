"""A diagnostic chunk source: sine-wave action chunks that stand in for a policy.

Not a policy and not for real work: it exists to exercise an arm driver end to end (executor,
safety layer, bus) without a model. Each step it sends one chunk computed "from" the arm state
captured ``latency_ms`` ago, as a policy server with that inference latency would, so the
executor's latency handling (drop the past, blend, never pause) is exercised too. The trajectory
is a pure function of time, ``center + amplitude * sin(2 pi (t - t0) / period_s)`` per joint, so
consecutive chunks agree where they overlap.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from robostack.chunks import ActionChunk, chunk_to_message_parts
from robostack.clock import now_ns
from robostack.node import Input, Node, Output


@dataclass
class SineChunkParams:
    rate_hz: float = 5.0  # chunks per second
    horizon: int = 50
    dt_ms: float = 20.0
    amplitude: float | list[float] = 0.3  # radians; a list gives one per joint (0 keeps a joint still)
    period_s: float = 4.0
    center: list[float] | None = None  # default: where the arm is when the first state arrives
    latency_ms: float = 0.0  # simulated inference latency: observation this long before sending

    def __post_init__(self) -> None:
        if self.rate_hz <= 0 or self.horizon < 2 or self.dt_ms <= 0 or self.period_s <= 0:
            raise ValueError("params 'rate_hz', 'dt_ms', 'period_s' must be > 0 and 'horizon' >= 2")
        if self.latency_ms < 0:
            raise ValueError(f"param 'latency_ms' must be >= 0, got {self.latency_ms}")


def sine_target(t_ns: np.ndarray | int, t0_ns: int, center: np.ndarray, amplitude: np.ndarray,
                period_s: float) -> np.ndarray:
    """The trajectory at times ``t_ns``: shape (len(t), D) for an array, (D,) for one time."""
    t = (np.asarray(t_ns, dtype=np.float64) - t0_ns) / 1e9
    phase = np.sin(2 * np.pi * t / period_s)
    return center + np.multiply.outer(phase, amplitude)


class SineChunkSource(Node):
    """Publishes sine-wave ``chunk`` messages for an arm driver's ``chunk`` input (diagnostic)."""

    inputs = {"state": Input(mode="queue", queue_size=200, required=False,
                             doc="the arm's state: observation stamps and the starting position")}
    outputs = {"chunk": Output(doc="actions (H, D) float32; meta start_ns, dt_ns, obs_stamp_ns")}
    Params = SineChunkParams

    def setup(self) -> None:
        self._center: np.ndarray | None = None
        if self.params.center is not None:
            self._center = np.asarray(self.params.center, dtype=np.float64)
        if self._center is None and "state" not in self._inputs:
            raise ValueError("param 'center' is required when the 'state' input is not wired")
        self._t0: int | None = None
        self._states: deque[int] = deque(maxlen=400)  # recent state stamps

    def step(self) -> None:
        p = self.params
        if "state" in self._inputs:
            for msg in self.read_all("state"):
                self._states.append(msg.stamp_ns)
                if self._center is None:
                    self._center = np.asarray(msg["position"], dtype=np.float64)
        if self._center is None:
            return  # waiting for the arm's first state
        now = now_ns()
        if self._t0 is None:
            self._t0 = now
        obs = now - int(p.latency_ms * 1e6)
        if self._states:
            # The newest observation that is at least the latency old, as a server would have used.
            older = [s for s in self._states if s <= obs]
            obs = older[-1] if older else self._states[0]
        amplitude = np.broadcast_to(np.asarray(p.amplitude, dtype=np.float64), self._center.shape)
        dt = int(p.dt_ms * 1e6)
        times = obs + dt * np.arange(p.horizon, dtype=np.int64)
        actions = sine_target(times, self._t0, self._center, amplitude, p.period_s)
        chunk = ActionChunk(actions=actions, start_ns=obs, dt_ns=dt, obs_stamp_ns=obs, meta={"source": "sine"})
        arrays, meta = chunk_to_message_parts(chunk)
        self.publish("chunk", arrays, stamp_ns=obs, meta=meta)
