"""A V4L2 camera (USB/UVC webcams and the like) read through OpenCV, with reconnection."""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2

from robostack.drivers.cameras.base import Camera
from robostack.drivers.cameras.errors import CameraError, CameraOpenError, CameraSettingsError
from robostack.drivers.cameras.frame import Frame, FrameFlags
from robostack.drivers.cameras.health import FrameHealthConfig
from robostack.drivers.cameras.image_convert import to_rgb
from robostack.drivers.cameras.reconnect import Backoff

log = logging.getLogger(__name__)

BACKENDS = {"v4l2": cv2.CAP_V4L2, "ffmpeg": cv2.CAP_FFMPEG, "any": cv2.CAP_ANY}

# Driver buffer stamps older than this relative to the grab are not believed: they come from
# another clock domain rather than from a frame that waited in the queue.
MAX_DRIVER_STAMP_AGE_NS = 1_000_000_000


@dataclass
class OpenCVCameraConfig:
    """``device`` is an index (``0`` for ``/dev/video0``), a device path, or preferably a stable
    path such as ``/dev/v4l/by-id/usb-...-video-index0``, which keeps naming the same camera
    after a replug or reboot. ``None`` for ``width``/``height``/``fps``/``fourcc`` keeps the
    device's current setting; anything requested is verified after opening.

    ``backend`` is ``"v4l2"`` for cameras; ``"ffmpeg"``/``"any"`` let the same class read a
    stream URL or a file (used by the tests to exercise reconnection).
    """

    device: int | str
    width: int | None = 640
    height: int | None = 480
    fps: float | None = 30.0
    fourcc: str | None = "MJPG"
    buffer_size: int | None = 1
    backend: str = "v4l2"
    use_driver_stamps: bool = True
    read_timeout_s: float = 1.0
    max_consecutive_failures: int = 3
    reconnect_initial_s: float = 0.1
    reconnect_max_s: float = 2.0
    wait_for_device_s: float = 0.0
    fps_tolerance: float = 0.02
    name: str | None = None
    health: FrameHealthConfig = field(default_factory=FrameHealthConfig)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {sorted(BACKENDS)}, got {self.backend!r}")
        if self.fourcc is not None and len(self.fourcc) != 4:
            raise ValueError(f"fourcc must be 4 characters such as 'MJPG', got {self.fourcc!r}")
        if (self.width is None) != (self.height is None):
            raise ValueError("set both width and height, or neither")
        for name in ("width", "height", "buffer_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if self.fps is not None and not self.fps > 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")
        if self.max_consecutive_failures < 1:
            raise ValueError(
                f"max_consecutive_failures must be >= 1, got {self.max_consecutive_failures}"
            )


@dataclass(frozen=True)
class CaptureSettings:
    """Format of a capture as requested or as the device reports it."""

    width: int | None = None
    height: int | None = None
    fps: float | None = None
    fourcc: str | None = None


def settings_mismatches(
    requested: CaptureSettings, actual: CaptureSettings, fps_tolerance: float = 0.02
) -> list[str]:
    """Human-readable list of what the device did not accept (empty when all was accepted)."""
    refused = []
    if requested.fourcc is not None and requested.fourcc != actual.fourcc:
        refused.append(f"pixel format {requested.fourcc} (device uses {actual.fourcc})")
    if requested.width is not None and (requested.width, requested.height) != (
        actual.width,
        actual.height,
    ):
        refused.append(
            f"resolution {requested.width}x{requested.height} "
            f"(device uses {actual.width}x{actual.height})"
        )
    if requested.fps is not None and (
        actual.fps is None or abs(actual.fps - requested.fps) > fps_tolerance * requested.fps
    ):
        refused.append(f"frame rate {requested.fps:g} fps (device uses {actual.fps} fps)")
    return refused


def pick_capture_stamp(
    driver_msec: float, after_grab_ns: int, last_stamp_ns: int | None
) -> tuple[int, bool]:
    """Choose a frame's capture stamp: the driver's buffer timestamp when it is believable,
    else the host clock right after the grab returned.

    V4L2 drivers (uvcvideo) stamp each buffer with ``CLOCK_MONOTONIC`` when the frame arrived;
    OpenCV reports it as ``CAP_PROP_POS_MSEC``. It is earlier and steadier than the time the
    grab returns, but only usable if it is on our clock: not in the future, not more than
    :data:`MAX_DRIVER_STAMP_AGE_NS` old, and later than the previous frame. Returns the stamp
    and whether it came from the driver.
    """
    if math.isfinite(driver_msec) and driver_msec > 0:
        candidate = round(driver_msec * 1e6)
        age = after_grab_ns - candidate
        increasing = last_stamp_ns is None or candidate > last_stamp_ns
        if 0 <= age <= MAX_DRIVER_STAMP_AGE_NS and increasing:
            return candidate, True
    return after_grab_ns, False


def fourcc_to_str(code: float) -> str | None:
    value = int(code)
    if value <= 0:
        return None
    return value.to_bytes(4, "little").decode("ascii", errors="replace")


class OpenCVCamera(Camera):
    """A camera read through ``cv2.VideoCapture``.

    After ``max_consecutive_failures`` failed reads the device is closed and reopened with
    exponential back-off (each ``read()`` meanwhile waits for the next attempt and returns
    ``None``); the first frame after a successful reopen carries ``AFTER_RECONNECT``.
    """

    def __init__(self, config: OpenCVCameraConfig) -> None:
        self.config = config
        super().__init__(config.name or str(config.device), config.health)
        self._capture: cv2.VideoCapture | None = None
        self._opened = False
        self._failures = 0
        self._just_reconnected = False
        self._backoff = Backoff(config.reconnect_initial_s, config.reconnect_max_s)
        self.actual: CaptureSettings | None = None
        """What the device reported after the settings were applied."""
        self.last_error: str | None = None
        """Why the last read or reconnect attempt failed."""

    @property
    def is_open(self) -> bool:
        return self._opened

    @property
    def connected(self) -> bool:
        """False while the device is lost and being reopened."""
        return self._capture is not None

    def open(self) -> None:
        if self._opened:
            return
        deadline = time.monotonic_ns() + round(self.config.wait_for_device_s * 1e9)
        self._backoff.reset()
        while True:
            try:
                self._capture = self._connect()
                break
            except CameraOpenError as error:
                if time.monotonic_ns() >= deadline:
                    raise
                self.last_error = str(error)
                self._backoff.schedule()
                self._backoff.wait()
        self._backoff.reset()
        self._opened = True
        self._failures = 0
        fps = (self.actual.fps if self.actual else None) or self.config.fps
        self._health.period_ns = round(1e9 / fps) if fps else None
        self._health.restart(time.monotonic_ns())

    def read(self) -> Frame | None:
        self._require_open()
        if self._capture is None and not self._try_reconnect():
            return None
        return self._grab()

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
        self._capture = None
        self._opened = False

    def _grab(self) -> Frame | None:
        capture = self._capture
        assert capture is not None
        ok = capture.grab()
        after_grab_ns = time.monotonic_ns()
        image = None
        if ok:
            ok, image = capture.retrieve()
        if not ok or image is None:
            self._read_failed(after_grab_ns)
            return None
        self._failures = 0
        flags = FrameFlags.NONE
        stamp_ns = after_grab_ns
        if self.config.use_driver_stamps and self.config.backend == "v4l2":
            stamp_ns, from_driver = pick_capture_stamp(
                capture.get(cv2.CAP_PROP_POS_MSEC), after_grab_ns, self._stats.last_stamp_ns
            )
            if from_driver:
                flags |= FrameFlags.DRIVER_STAMP
        if self._just_reconnected:
            flags |= FrameFlags.AFTER_RECONNECT
            self._just_reconnected = False
        return self._emit(to_rgb(image), stamp_ns, None, flags)

    def _read_failed(self, now_ns: int) -> None:
        self._stats.read_errors += 1
        self._failures += 1
        self._health.check_stale(now_ns)
        if self._failures >= self.config.max_consecutive_failures:
            self.last_error = f"{self._failures} consecutive failed reads; reconnecting"
            log.warning("camera %s: %s", self.name, self.last_error)
            assert self._capture is not None
            self._capture.release()
            self._capture = None
            self._failures = 0
            self._backoff.reset()
            self._backoff.schedule(now_ns)

    def _try_reconnect(self) -> bool:
        """Wait for the next reconnect attempt and make it; True once the device is back."""
        self._backoff.wait()
        try:
            self._capture = self._connect()
        except CameraError as error:
            self.last_error = str(error)
            self._backoff.schedule()
            self._health.check_stale(time.monotonic_ns())
            return False
        self._stats.reconnects += 1
        self._backoff.reset()
        self._just_reconnected = True
        self._health.restart(time.monotonic_ns())
        log.info("camera %s: reconnected", self.name)
        return True

    def _resolve_device(self) -> int | str:
        device = self.config.device
        if isinstance(device, str) and device.isdigit():
            device = int(device)
        if isinstance(device, int):
            node = Path(f"/dev/video{device}")
            if self.config.backend == "v4l2" and not node.exists():
                raise CameraOpenError(f"camera {self.name}: {_missing(node)}")
            return device
        path = Path(device)
        if not path.exists():
            raise CameraOpenError(f"camera {self.name}: {_missing(path)}")
        # Follow /dev/v4l/by-id links again at every (re)open: after a replug the same camera
        # may be /dev/video2 instead of /dev/video0, and the link tracks it.
        return os.path.realpath(path)

    def _connect(self) -> cv2.VideoCapture:
        target = self._resolve_device()
        capture = cv2.VideoCapture(target, BACKENDS[self.config.backend])
        if not capture.isOpened():
            capture.release()
            raise CameraOpenError(
                f"camera {self.name}: cannot open {target} with the {self.config.backend} "
                "backend (busy in another program, no permission, or not a capture device)"
            )
        try:
            self._apply_settings(capture)
        except CameraError:
            capture.release()
            raise
        return capture

    def _apply_settings(self, capture: cv2.VideoCapture) -> None:
        cfg = self.config
        # Order matters on V4L2: the pixel format limits which sizes and rates are offered.
        if cfg.fourcc is not None:
            capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*cfg.fourcc))
        if cfg.width is not None and cfg.height is not None:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, cfg.width)
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, cfg.height)
        if cfg.fps is not None:
            capture.set(cv2.CAP_PROP_FPS, cfg.fps)
        if cfg.buffer_size is not None and not capture.set(
            cv2.CAP_PROP_BUFFERSIZE, cfg.buffer_size
        ):
            log.info("camera %s: backend ignores buffer size %d", self.name, cfg.buffer_size)
        capture.set(cv2.CAP_PROP_READ_TIMEOUT_MSEC, cfg.read_timeout_s * 1000)

        fps = capture.get(cv2.CAP_PROP_FPS)
        self.actual = CaptureSettings(
            width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            fps=fps if math.isfinite(fps) and fps > 0 else None,
            fourcc=fourcc_to_str(capture.get(cv2.CAP_PROP_FOURCC)),
        )
        requested = CaptureSettings(cfg.width, cfg.height, cfg.fps, cfg.fourcc)
        refused = settings_mismatches(requested, self.actual, cfg.fps_tolerance)
        if refused:
            raise CameraSettingsError(
                f"camera {self.name} refused: {'; '.join(refused)}. "
                "`robostack cameras list` shows the formats it offers"
            )
        if cfg.width is not None:
            # Some drivers report the new size but keep delivering the old one.
            ok, image = capture.read()
            if not ok or image is None:
                raise CameraOpenError(f"camera {self.name} opened but delivered no frame")
            if image.shape[:2] != (cfg.height, cfg.width):
                raise CameraSettingsError(
                    f"camera {self.name} reports {cfg.width}x{cfg.height} but delivers "
                    f"{image.shape[1]}x{image.shape[0]} frames"
                )


def _missing(path: Path) -> str:
    return (
        f"device {path} does not exist (unplugged?); "
        "`robostack cameras list` shows the connected cameras"
    )
