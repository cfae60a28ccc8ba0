"""Camera nodes: each publishes ``frames`` (``image`` (H, W, 3) uint8 RGB, capture stamp, frame
index and flags in meta; see ``docs/topics.md``). The camera paces the node: ``step`` blocks in
``read()`` for at most about one frame period."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from robostack.drivers.cameras.base import Camera
from robostack.drivers.cameras.frame import Frame, FrameFlags
from robostack.node import Node, Output

_FLAG_NAMES = {
    FrameFlags.FROZEN: "frozen",
    FrameFlags.AFTER_GAP: "after_gap",
    FrameFlags.AFTER_RECONNECT: "after_reconnect",
    FrameFlags.LOOPED: "looped",
    FrameFlags.DRIVER_STAMP: "driver_stamp",
}


class _CameraNode(Node):
    outputs = {"frames": Output(doc="image (H, W, 3) uint8 RGB; meta: index, camera, flags")}
    free_running = True

    def make_camera(self) -> Camera:
        raise NotImplementedError

    def setup(self) -> None:
        self.camera = self.make_camera()
        self.camera.open()
        if getattr(self.params, "codec", "raw") != "raw":
            self.set_codec("frames", "image", self.params.codec)
        self._stale_reported = False

    def step(self) -> None:
        frame = self.camera.read()
        if frame is None:
            if getattr(self.camera, "finished", False):
                self.log.info("video ended; stopping")
                self.request_stop()
            elif self.camera.check_stale(_now()) and not self._stale_reported:
                self.log.warning("camera %s: no frame for several periods", self.name)
                self._stale_reported = True
            return
        self._stale_reported = False
        self.publish("frames", {"image": frame.image}, stamp_ns=frame.stamp_ns, meta=_frame_meta(self.name, frame))

    def close(self) -> None:
        camera = getattr(self, "camera", None)
        if camera is not None:
            camera.close()

    def extra_stats(self) -> dict[str, Any]:
        camera = getattr(self, "camera", None)
        return camera.stats.as_dict() if camera is not None else {}


def _now() -> int:
    from robostack.clock import now_ns

    return now_ns()


def _frame_meta(camera: str, frame: Frame) -> dict[str, Any]:
    return {
        "index": frame.index,
        "camera": camera,
        "flags": [name for flag, name in _FLAG_NAMES.items() if frame.flags & flag],
    }


@dataclass
class SyntheticCameraParams:
    width: int = 640
    height: int = 480
    fps: float = 30.0
    codec: Literal["raw", "jpeg", "png"] = "raw"


class SyntheticCameraNode(_CameraNode):
    """A moving test pattern with a frame counter burned in (no hardware needed)."""

    Params = SyntheticCameraParams

    def make_camera(self) -> Camera:
        from robostack.drivers.cameras.synthetic_camera import SyntheticCamera, SyntheticCameraConfig

        p = self.params
        return SyntheticCamera(SyntheticCameraConfig(width=p.width, height=p.height, fps=p.fps))


@dataclass
class VideoFileCameraParams:
    path: str = ""
    fps: float | None = None
    loop: bool = False
    drop_late_frames: bool = True
    """Like a live camera, skip (and count) the frames that fell due while the node was behind;
    False replays every frame, late ones as soon as the node gets to them."""
    codec: Literal["raw", "jpeg", "png"] = "raw"

    def __post_init__(self) -> None:
        if not self.path:
            raise ValueError("param 'path': the video file to replay is required")


class VideoFileCameraNode(_CameraNode):
    """Replays a video file at its own fps (or ``fps``) with real capture stamps; stops at the
    end unless ``loop``."""

    Params = VideoFileCameraParams

    def make_camera(self) -> Camera:
        from robostack.drivers.cameras.video_file_camera import VideoFileCamera, VideoFileCameraConfig

        p = self.params
        return VideoFileCamera(VideoFileCameraConfig(p.path, fps=p.fps, loop=p.loop, drop_late_frames=p.drop_late_frames))


@dataclass
class V4L2CameraParams:
    device: str = "0"  # index, /dev/videoN or a stable /dev/v4l/by-id/... path
    width: int = 640
    height: int = 480
    fps: float = 30.0
    fourcc: str = "MJPG"
    codec: Literal["raw", "jpeg", "png"] = "raw"


class V4L2CameraNode(_CameraNode):
    """A USB/V4L2 camera through OpenCV; reconnects after an unplug."""

    Params = V4L2CameraParams

    def make_camera(self) -> Camera:
        from robostack.drivers.cameras.opencv_camera import OpenCVCamera, OpenCVCameraConfig

        p = self.params
        device: int | str = int(p.device) if p.device.isdigit() else p.device
        return OpenCVCamera(OpenCVCameraConfig(device=device, width=p.width, height=p.height, fps=p.fps, fourcc=p.fourcc))


@dataclass
class RealSenseCameraParams:
    serial: str | None = None
    width: int = 640
    height: int = 480
    fps: int = 30
    codec: Literal["raw", "jpeg", "png"] = "raw"


class RealSenseCameraNode(_CameraNode):
    """Intel RealSense colour stream (needs the optional pyrealsense2)."""

    Params = RealSenseCameraParams

    def make_camera(self) -> Camera:
        from robostack.drivers.cameras.realsense_camera import RealSenseCamera, RealSenseCameraConfig

        p = self.params
        return RealSenseCamera(RealSenseCameraConfig(serial=p.serial, width=p.width, height=p.height, fps=p.fps))
