"""Camera capture: V4L2 devices through OpenCV, video files, a synthetic pattern, RealSense.

Every camera implements :class:`Camera` and returns :class:`Frame` objects holding an RGB
``uint8`` image and a ``CLOCK_MONOTONIC`` capture stamp. The interface, frame and health
checks import only numpy; the concrete cameras (which import OpenCV or pyrealsense2) load on
first use, so ``import robostack.drivers.cameras`` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from robostack.drivers.cameras.base import Camera
from robostack.drivers.cameras.errors import (
    CameraDependencyError,
    CameraError,
    CameraNotOpenError,
    CameraOpenError,
    CameraSettingsError,
)
from robostack.drivers.cameras.frame import Frame, FrameFlags
from robostack.drivers.cameras.health import FrameHealthConfig, FrameHealthMonitor
from robostack.drivers.cameras.stats import CameraStats
from robostack.drivers.cameras.synthetic_camera import SyntheticCamera, SyntheticCameraConfig

if TYPE_CHECKING:
    from robostack.drivers.cameras.opencv_camera import (  # noqa: F401
        OpenCVCamera,
        OpenCVCameraConfig,
    )
    from robostack.drivers.cameras.realsense_camera import (  # noqa: F401
        RealSenseCamera,
        RealSenseCameraConfig,
    )
    from robostack.drivers.cameras.video_file_camera import (  # noqa: F401
        VideoFileCamera,
        VideoFileCameraConfig,
    )

_LAZY = {
    "OpenCVCamera": "opencv_camera",
    "OpenCVCameraConfig": "opencv_camera",
    "VideoFileCamera": "video_file_camera",
    "VideoFileCameraConfig": "video_file_camera",
    "RealSenseCamera": "realsense_camera",
    "RealSenseCameraConfig": "realsense_camera",
}

__all__ = [
    "Camera",
    "CameraDependencyError",
    "CameraError",
    "CameraNotOpenError",
    "CameraOpenError",
    "CameraSettingsError",
    "CameraStats",
    "Frame",
    "FrameFlags",
    "FrameHealthConfig",
    "FrameHealthMonitor",
    "SyntheticCamera",
    "SyntheticCameraConfig",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
