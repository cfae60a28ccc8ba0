"""Synthetic sources for exercising a recorder without hardware: a camera that burns its own
message sequence number into a test pattern (so a decoded frame tells which message it was)
and a joint stream whose values are a function of its sequence number. They publish the
standard topics (``frames`` / ``state`` / ``action``, see ``docs/topics.md``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from robostack.clock import now_ns
from robostack.node import Node, Output


@dataclass
class PatternCameraParams:
    width: int = 640
    height: int = 480
    rate_hz: float = 30.0
    name: str = "synthetic"
    noise: int = 0  # amplitude of a moving noise texture, so encoders see camera-like detail
    pause_after: int = -1  # stop publishing after this many frames ...
    pause_s: float = 0.0  # ... for this long (a camera hiccup), then resume

    def __post_init__(self) -> None:
        from robostack.drivers.cameras.pattern import check_pattern_size

        check_pattern_size(self.width, self.height)
        if self.rate_hz <= 0:
            raise ValueError(f"param 'rate_hz' must be > 0, got {self.rate_hz}")
        if not 0 <= self.noise <= 64:
            raise ValueError(f"param 'noise' must be in [0, 64], got {self.noise}")


class PatternCamera(Node):
    """Publishes ``frames`` with the test pattern of :mod:`robostack.drivers.cameras.pattern`
    showing the message's own sequence number."""

    outputs = {"frames": Output(doc="image (H, W, 3) uint8 RGB; meta index, camera, flags")}
    Params = PatternCameraParams

    def setup(self) -> None:
        p = self.params
        self._count = 0
        self._paused_until = 0
        self._noise = None
        if p.noise:
            rng = np.random.default_rng(1)
            self._noise = rng.integers(-p.noise, p.noise + 1, size=(p.height, p.width * 2, 1), dtype=np.int16)

    def step(self) -> None:
        from robostack.drivers.cameras.pattern import counter_cell, render_test_pattern

        p = self.params
        t = now_ns()
        if p.pause_after >= 0 and self._count == p.pause_after and not self._paused_until:
            self._paused_until = t + int(p.pause_s * 1e9)
        if self._paused_until and t < self._paused_until:
            return
        image = render_test_pattern(p.width, p.height, self._count)
        if self._noise is not None:
            shift = (self._count * 7) % p.width
            cell = counter_cell(p.width)
            body = image[cell:].astype(np.int16) + self._noise[cell:, shift : shift + p.width]
            image[cell:] = np.clip(body, 0, 255).astype(np.uint8)
        self.publish("frames", {"image": image}, stamp_ns=t, meta={"index": self._count, "camera": p.name, "flags": []})
        self._count += 1


@dataclass
class JointWaveParams:
    dof: int = 7
    rate_hz: float = 30.0
    joints: list[str] = field(default_factory=list)


class JointWave(Node):
    """Publishes ``state`` (and the same on ``action``) with ``position[j] = seq + j / 100``."""

    outputs = {"state": Output(doc="position (D,) float32"), "action": Output(doc="position (D,) float32")}
    Params = JointWaveParams

    def setup(self) -> None:
        self._count = 0
        self._joints = list(self.params.joints) or [f"joint{j}" for j in range(self.params.dof)]
        self._offsets = np.arange(self.params.dof, dtype=np.float32) / 100

    def step(self) -> None:
        pos = (self._count + self._offsets).astype(np.float32)
        t = now_ns()
        for out in ("state", "action"):
            if out in self._outputs:
                self.publish(out, {"position": pos}, stamp_ns=t, meta={"joints": self._joints, "source": "wave"})
        self._count += 1
