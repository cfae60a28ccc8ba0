"""A camera that replays a video file, decoded by OpenCV, with real capture stamps."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from robostack.drivers.cameras.base import Camera
from robostack.drivers.cameras.errors import CameraOpenError
from robostack.drivers.cameras.frame import Frame, FrameFlags
from robostack.drivers.cameras.health import FrameHealthConfig
from robostack.drivers.cameras.image_convert import to_rgb
from robostack.drivers.cameras.pacing import FrameClock


@dataclass
class VideoFileCameraConfig:
    """``fps=None`` replays at the file's own rate. In real time (the default) frame ``k`` is
    returned at ``open + k / fps`` and stamped then; with ``drop_late_frames`` a reader that
    falls behind gets the newest due frame, like a live camera, and the skipped ones count as
    dropped. ``lockstep=True`` returns every frame in order as fast as it is asked for, stamped
    when decoded. ``loop`` starts over at the end instead of ending the stream."""

    path: str | os.PathLike[str]
    fps: float | None = None
    loop: bool = False
    lockstep: bool = False
    drop_late_frames: bool = True
    name: str | None = None
    health: FrameHealthConfig = field(default_factory=FrameHealthConfig)

    def __post_init__(self) -> None:
        if self.fps is not None and not self.fps > 0:
            raise ValueError(f"fps must be > 0 or None (the file's own rate), got {self.fps}")


class VideoFileCamera(Camera):
    """Replays a video file. ``Frame.sequence`` is the stream position (it keeps counting
    across loops; the position within the file is ``sequence % frame_count``)."""

    def __init__(self, config: VideoFileCameraConfig) -> None:
        self.config = config
        self.path = Path(config.path)
        super().__init__(config.name or self.path.name, config.health)
        self._capture: cv2.VideoCapture | None = None
        self._clock: FrameClock | None = None
        self._pending: np.ndarray | None = None  # decoded by open(), not yet returned
        self._looped = False  # started over since the last returned frame
        self._next_sequence = 0
        self._finished = False
        self.file_fps: float | None = None

    @property
    def is_open(self) -> bool:
        return self._capture is not None

    @property
    def finished(self) -> bool:
        """True once a non-looping file has returned its last frame."""
        return self._finished

    def open(self) -> None:
        if self.is_open:
            return
        self._capture = self._open_capture()
        self.file_fps = _valid_fps(self._capture.get(cv2.CAP_PROP_FPS))
        fps = self.config.fps or self.file_fps
        if fps is None:
            self.close()
            raise CameraOpenError(
                f"video file {self.path} does not state its frame rate; pass fps= explicitly"
            )
        first = self._decode_next()
        if first is None:
            self.close()
            raise CameraOpenError(f"video file {self.path} has no decodable frames")
        self._pending = first
        self._looped = False
        self._next_sequence = 0
        self._finished = False
        if self.config.lockstep:
            self._clock = None
            self._health.period_ns = None
        else:
            self._clock = FrameClock(fps)
            self._health.period_ns = self._clock.period_ns
        self._health.restart(time.monotonic_ns())

    def read(self) -> Frame | None:
        self._require_open()
        if self._finished:
            return None
        sequence = self._next_sequence
        if self._clock is not None and self.config.drop_late_frames:
            latest = self._clock.latest_due(time.monotonic_ns())
            while sequence < latest:  # the reader fell behind: skip what a live camera would
                if not self._skip_one():
                    self._finished = True
                    return None
                sequence += 1
        image = self._decode_one()
        if image is None:
            self._finished = True
            return None
        if self._clock is None:
            stamp_ns = time.monotonic_ns()
        else:
            stamp_ns = self._clock.wait_until_due(sequence)
        self._next_sequence = sequence + 1
        flags = FrameFlags.LOOPED if self._looped else FrameFlags.NONE
        self._looped = False
        return self._emit(image, stamp_ns, sequence, flags)

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
        self._capture = None
        self._pending = None

    def _open_capture(self) -> cv2.VideoCapture:
        if not self.path.exists():
            raise CameraOpenError(f"video file {self.path} does not exist")
        if not self.path.is_file():
            raise CameraOpenError(f"video file {self.path} is not a regular file")
        capture = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        if not capture.isOpened():
            capture.release()
            raise CameraOpenError(
                f"cannot decode video file {self.path}: not a video OpenCV/FFmpeg can read, "
                "or the file is truncated"
            )
        return capture

    def _decode_one(self) -> np.ndarray | None:
        """The next frame of the stream, starting over at the end when looping."""
        pending, self._pending = self._pending, None
        if pending is not None:
            return pending
        image = self._decode_next()
        if image is None and self.config.loop and self._restart_file():
            image = self._decode_next()
        return image

    def _skip_one(self) -> bool:
        """Pass over the next frame without converting it; False at the end of the stream."""
        if self._pending is not None:
            self._pending = None
            return True
        assert self._capture is not None
        if self._capture.grab():
            return True
        return self.config.loop and self._restart_file() and self._capture.grab()

    def _decode_next(self) -> np.ndarray | None:
        assert self._capture is not None
        ok, image = self._capture.read()
        if not ok or image is None:
            return None
        return to_rgb(image)

    def _restart_file(self) -> bool:
        """Reopen the file to start over (seeking is unreliable in some containers)."""
        assert self._capture is not None
        self._capture.release()
        try:
            self._capture = self._open_capture()
        except CameraOpenError:
            # The file vanished mid-replay: the stream ends, the camera stays open.
            self._capture = cv2.VideoCapture()
            return False
        self._looped = True
        return True


def _valid_fps(value: float) -> float | None:
    return value if math.isfinite(value) and value > 0 else None
