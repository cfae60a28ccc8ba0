"""Intel RealSense colour (and optionally aligned depth) through ``pyrealsense2``.

``pyrealsense2`` is an optional dependency (``pip install pyrealsense2``); it is imported by
``open()``, so configs can be built and validated without it. Written against the documented
pipeline API; not exercised by the test suite, which has no RealSense device.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from robostack.drivers.cameras.base import Camera
from robostack.drivers.cameras.errors import (
    CameraDependencyError,
    CameraOpenError,
    CameraSettingsError,
)
from robostack.drivers.cameras.frame import Frame, FrameFlags
from robostack.drivers.cameras.health import FrameHealthConfig
from robostack.drivers.cameras.reconnect import Backoff

log = logging.getLogger(__name__)


@dataclass
class RealSenseCameraConfig:
    """``serial`` picks one device when several are connected (``None``: the first found).
    ``depth=True`` adds a ``uint16`` depth image aligned to the colour image."""

    serial: str | None = None
    width: int = 640
    height: int = 480
    fps: int = 30
    depth: bool = False
    timeout_ms: int = 1000
    max_consecutive_failures: int = 3
    reconnect_initial_s: float = 0.1
    reconnect_max_s: float = 2.0
    name: str | None = None
    health: FrameHealthConfig = field(default_factory=FrameHealthConfig)


def import_pyrealsense2() -> Any:
    try:
        import pyrealsense2
    except ImportError as error:
        raise CameraDependencyError(
            "RealSenseCamera needs the optional package pyrealsense2 (pip install pyrealsense2); "
            f"it could not be imported: {error}"
        ) from error
    return pyrealsense2


class RealSenseCamera(Camera):
    """Colour frames (RGB8 from the camera itself) stamped on the host clock when
    ``wait_for_frames`` returns; ``Frame.sequence`` is the device frame number, so gaps in it
    count as dropped frames. The device's own timestamps are not used as ``stamp_ns``: their
    domain (hardware clock or wall clock) is not ``CLOCK_MONOTONIC``."""

    def __init__(self, config: RealSenseCameraConfig | None = None) -> None:
        self.config = config or RealSenseCameraConfig()
        super().__init__(
            self.config.name or f"realsense:{self.config.serial or 'first'}", self.config.health
        )
        self._rs: Any = None
        self._pipeline: Any = None
        self._align: Any = None
        self._opened = False
        self._failures = 0
        self._just_reconnected = False
        self._backoff = Backoff(self.config.reconnect_initial_s, self.config.reconnect_max_s)
        self.depth_scale_m: float | None = None
        """Metres per depth unit, known after ``open()`` with ``depth=True``."""
        self.last_error: str | None = None

    @property
    def is_open(self) -> bool:
        return self._opened

    def open(self) -> None:
        if self._opened:
            return
        self._rs = import_pyrealsense2()
        self._start()
        self._opened = True
        self._health.period_ns = round(1e9 / self.config.fps)
        self._health.restart(time.monotonic_ns())

    def read(self) -> Frame | None:
        self._require_open()
        if self._pipeline is None and not self._try_reconnect():
            return None
        try:
            frames = self._pipeline.wait_for_frames(self.config.timeout_ms)
        except RuntimeError as error:  # timeout or device lost
            self._read_failed(str(error))
            return None
        stamp_ns = time.monotonic_ns()
        if self._align is not None:
            frames = self._align.process(frames)
        color = frames.get_color_frame()
        if not color:
            self._read_failed("frame set without a colour frame")
            return None
        self._failures = 0
        image = np.array(color.get_data(), dtype=np.uint8, copy=True)
        depth = None
        if self.config.depth:
            depth_frame = frames.get_depth_frame()
            if depth_frame:
                depth = np.array(depth_frame.get_data(), dtype=np.uint16, copy=True)
        flags = FrameFlags.NONE
        if self._just_reconnected:
            flags |= FrameFlags.AFTER_RECONNECT
            self._just_reconnected = False
        return self._emit(image, stamp_ns, int(color.get_frame_number()), flags, depth)

    def close(self) -> None:
        self._stop()
        self._opened = False

    def _start(self) -> None:
        rs, cfg = self._rs, self.config
        rs_config = rs.config()
        if cfg.serial:
            rs_config.enable_device(cfg.serial)
        rs_config.enable_stream(rs.stream.color, cfg.width, cfg.height, rs.format.rgb8, cfg.fps)
        if cfg.depth:
            rs_config.enable_stream(rs.stream.depth, cfg.width, cfg.height, rs.format.z16, cfg.fps)
        pipeline = rs.pipeline()
        if not rs_config.can_resolve(rs.pipeline_wrapper(pipeline)):
            what = f"colour {cfg.width}x{cfg.height} RGB8 at {cfg.fps} fps"
            if cfg.depth:
                what += " with Z16 depth at the same size"
            device = f"RealSense {cfg.serial}" if cfg.serial else "any connected RealSense"
            if len(rs.context().query_devices()) == 0:
                raise CameraOpenError("no RealSense device is connected")
            raise CameraSettingsError(f"{device} cannot stream {what}")
        try:
            profile = pipeline.start(rs_config)
        except RuntimeError as error:
            raise CameraOpenError(f"camera {self.name}: cannot start streaming: {error}") from error
        if cfg.depth:
            self.depth_scale_m = float(profile.get_device().first_depth_sensor().get_depth_scale())
            self._align = rs.align(rs.stream.color)
        self._pipeline = pipeline

    def _stop(self) -> None:
        if self._pipeline is not None:
            # stop() raises when the device vanished and the pipeline already ended.
            with contextlib.suppress(RuntimeError):
                self._pipeline.stop()
        self._pipeline = None
        self._align = None

    def _read_failed(self, reason: str) -> None:
        self._stats.read_errors += 1
        self._failures += 1
        self.last_error = reason
        now_ns = time.monotonic_ns()
        self._health.check_stale(now_ns)
        if self._failures >= self.config.max_consecutive_failures:
            log.warning("camera %s: %s; reconnecting", self.name, reason)
            self._stop()
            self._failures = 0
            self._backoff.reset()
            self._backoff.schedule(now_ns)

    def _try_reconnect(self) -> bool:
        self._backoff.wait()
        try:
            self._start()
        except (CameraOpenError, CameraSettingsError, RuntimeError) as error:
            self.last_error = str(error)
            self._backoff.schedule()
            self._health.check_stale(time.monotonic_ns())
            return False
        self._stats.reconnects += 1
        self._backoff.reset()
        self._just_reconnected = True
        self._health.restart(time.monotonic_ns())
        return True
