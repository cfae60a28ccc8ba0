"""A camera that generates a moving test pattern, for tests and for running without hardware."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from robostack.drivers.cameras.base import Camera
from robostack.drivers.cameras.frame import Frame
from robostack.drivers.cameras.health import FrameHealthConfig
from robostack.drivers.cameras.pacing import FrameClock
from robostack.drivers.cameras.pattern import check_pattern_size, render_test_pattern


@dataclass
class SyntheticCameraConfig:
    """``lockstep=True`` returns each next frame at once (stamped when made); otherwise frames
    come at ``fps`` in real time and, with ``drop_late_frames``, a slow reader gets the newest
    due frame like with a live camera."""

    width: int = 640
    height: int = 480
    fps: float = 30.0
    lockstep: bool = False
    drop_late_frames: bool = True
    bar_speed_px: int = 4
    name: str = "synthetic"
    health: FrameHealthConfig = field(default_factory=FrameHealthConfig)

    def __post_init__(self) -> None:
        check_pattern_size(self.width, self.height)
        if not self.fps > 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")


class SyntheticCamera(Camera):
    """Moving colour bars with the frame number burned in (see :mod:`.pattern`);
    ``Frame.sequence`` equals the burned-in number."""

    def __init__(self, config: SyntheticCameraConfig | None = None) -> None:
        self.config = config or SyntheticCameraConfig()
        super().__init__(self.config.name, self.config.health)
        self._clock: FrameClock | None = None
        self._next_sequence = 0
        self._open = False

    @property
    def is_open(self) -> bool:
        return self._open

    def open(self) -> None:
        self._next_sequence = 0
        if self.config.lockstep:
            self._clock = None
            self._health.period_ns = None
        else:
            self._clock = FrameClock(self.config.fps)
            self._health.period_ns = self._clock.period_ns
        self._health.restart(time.monotonic_ns())
        self._open = True

    def read(self) -> Frame | None:
        self._require_open()
        sequence = self._next_sequence
        if self._clock is not None and self.config.drop_late_frames:
            sequence = max(sequence, self._clock.latest_due(time.monotonic_ns()))
        image = render_test_pattern(
            self.config.width, self.config.height, sequence, self.config.bar_speed_px
        )
        if self._clock is None:
            stamp_ns = time.monotonic_ns()
        else:
            stamp_ns = self._clock.wait_until_due(sequence)
        self._next_sequence = sequence + 1
        return self._emit(image, stamp_ns, sequence)

    def close(self) -> None:
        self._open = False
