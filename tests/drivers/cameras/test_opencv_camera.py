from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from robostack.drivers.cameras import (
    CameraOpenError,
    CameraSettingsError,
    FrameFlags,
    OpenCVCamera,
    OpenCVCameraConfig,
)
from robostack.drivers.cameras.opencv_camera import (
    MAX_DRIVER_STAMP_AGE_NS,
    CaptureSettings,
    pick_capture_stamp,
    settings_mismatches,
)
from robostack.drivers.cameras.pattern import COUNTER_BITS, read_frame_counter

VideoMaker = Callable[..., Path]  # the make_video fixture (conftest.py)


def file_config(path: Path, **overrides: object) -> OpenCVCameraConfig:
    """The camera class reading a file through FFmpeg: same grab/retrieve/reconnect path as a
    V4L2 device, with nothing to configure."""
    settings: dict[str, object] = dict(
        width=None,
        height=None,
        fps=None,
        fourcc=None,
        backend="ffmpeg",
        reconnect_initial_s=0.02,
        reconnect_max_s=0.05,
    )
    settings.update(overrides)
    return OpenCVCameraConfig(str(path), **settings)  # type: ignore[arg-type]


# --- settings verification --------------------------------------------------------------------


def test_accepted_settings_give_no_complaint() -> None:
    requested = CaptureSettings(1280, 720, 30.0, "MJPG")
    assert settings_mismatches(requested, CaptureSettings(1280, 720, 30.0, "MJPG")) == []
    assert settings_mismatches(CaptureSettings(), CaptureSettings(640, 480, 15.0, "YUYV")) == []


def test_each_refused_setting_is_named_with_what_the_device_uses() -> None:
    refused = settings_mismatches(
        CaptureSettings(1920, 1080, 60.0, "MJPG"), CaptureSettings(640, 480, 30.0, "YUYV")
    )
    assert refused == [
        "pixel format MJPG (device uses YUYV)",
        "resolution 1920x1080 (device uses 640x480)",
        "frame rate 60 fps (device uses 30.0 fps)",
    ]


def test_frame_rate_within_tolerance_is_accepted() -> None:
    requested = CaptureSettings(fps=30.0)
    assert settings_mismatches(requested, CaptureSettings(fps=29.97)) == []
    assert settings_mismatches(requested, CaptureSettings(fps=25.0)) != []


# --- capture stamps ---------------------------------------------------------------------------


def test_believable_driver_stamp_is_used() -> None:
    after = 5_000_000_000
    stamp, from_driver = pick_capture_stamp((after - 12_000_000) / 1e6, after, None)
    assert from_driver and stamp == after - 12_000_000


@pytest.mark.parametrize(
    ("driver_msec", "last"),
    [
        (0.0, None),  # OpenCV reports 0 before the first capture / when unsupported
        (float("nan"), None),
        (6_000.0, None),  # in the future: another clock
        ((5_000_000_000 - MAX_DRIVER_STAMP_AGE_NS - 1) / 1e6, None),  # too old: another clock
        (1.7e12, None),  # wall-clock milliseconds
        (4_990.0, 4_995_000_000),  # not after the previous frame
    ],
)
def test_unbelievable_driver_stamp_falls_back_to_host_clock(
    driver_msec: float, last: int | None
) -> None:
    after = 5_000_000_000
    assert pick_capture_stamp(driver_msec, after, last) == (after, False)


# --- capture through OpenCV -------------------------------------------------------------------


def test_reads_frames_in_order_as_rgb(make_video: VideoMaker) -> None:
    path = make_video(range(8), codec="MJPG", size=(240, 180))
    with OpenCVCamera(file_config(path)) as camera:
        frames = [camera.read() for _ in range(8)]
        actual = camera.actual
    assert [read_frame_counter(f.image) for f in frames] == list(range(8))
    assert [f.index for f in frames] == list(range(8))
    assert all(not f.flags & FrameFlags.DRIVER_STAMP for f in frames)
    stamps = [f.stamp_ns for f in frames]
    assert stamps == sorted(stamps)
    cell = 240 // COUNTER_BITS
    red = frames[0].image[180 - cell // 2, cell // 2].astype(int)
    assert red[0] > 200 and red[2] < 60
    assert actual == CaptureSettings(240, 180, 50.0, "MJPG")


def test_reconnects_after_the_source_disappears_and_returns(make_video: VideoMaker) -> None:
    path = make_video(range(5), codec="MJPG")
    away = path.with_name("unplugged.avi")
    with OpenCVCamera(file_config(path, max_consecutive_failures=3)) as camera:
        assert [read_frame_counter(camera.read().image) for _ in range(5)] == list(range(5))
        os.rename(path, away)  # "unplug": the stream ends and the source is gone
        results = [camera.read() for _ in range(6)]
        assert results == [None] * 6
        assert not camera.connected
        assert "does not exist" in (camera.last_error or "")
        os.rename(away, path)  # "plug back in"
        deadline = time.monotonic() + 2.0
        frame = None
        while frame is None and time.monotonic() < deadline:
            frame = camera.read()
        stats = camera.stats
    assert frame is not None
    assert frame.flags & FrameFlags.AFTER_RECONNECT
    assert frame.index == 5  # the stream goes on
    assert read_frame_counter(frame.image) == 0
    assert stats.reconnects == 1
    assert stats.read_errors >= 3


def test_reconnect_backoff_keeps_reads_from_spinning(make_video: VideoMaker) -> None:
    path = make_video(range(2), codec="MJPG")
    config = file_config(path, max_consecutive_failures=1, reconnect_initial_s=0.05)
    with OpenCVCamera(config) as camera:
        camera.read(), camera.read()
        os.remove(path)
        start = time.monotonic()
        for _ in range(4):
            assert camera.read() is None
        elapsed = time.monotonic() - start
    # the first failure is immediate, then waits of 0.05 s, 0.05 s (capped) between attempts
    assert elapsed >= 0.09


def test_open_waits_for_a_device_path_that_appears_later(make_video: VideoMaker) -> None:
    ready = make_video(range(3), codec="MJPG")
    target = ready.with_name("appears.avi")
    timer = threading.Timer(0.2, os.rename, (ready, target))
    timer.start()
    try:
        camera = OpenCVCamera(file_config(target, wait_for_device_s=3.0))
        camera.open()
        frame = camera.read()
        camera.close()
    finally:
        timer.join()
    assert frame is not None and read_frame_counter(frame.image) == 0


def test_missing_device_path_is_named(tmp_path: Path) -> None:
    device = "/dev/v4l/by-id/usb-No_Such_Camera-video-index0"
    with pytest.raises(CameraOpenError, match=f"device {device} does not exist"):
        OpenCVCamera(OpenCVCameraConfig(device)).open()


def test_missing_device_index_is_named() -> None:
    with pytest.raises(CameraOpenError, match="/dev/video99 does not exist"):
        OpenCVCamera(OpenCVCameraConfig(99)).open()


def test_non_device_is_refused_by_the_v4l2_backend(make_video: VideoMaker) -> None:
    path = make_video(range(2), codec="MJPG")
    with pytest.raises(CameraOpenError, match="cannot open .* v4l2 backend"):
        OpenCVCamera(OpenCVCameraConfig(str(path))).open()


def test_refused_resolution_and_rate_are_reported(make_video: VideoMaker) -> None:
    path = make_video(range(2), codec="MJPG", size=(192, 144), fps=50)
    config = file_config(path, width=640, height=480, fps=30.0)
    camera = OpenCVCamera(config)
    with pytest.raises(CameraSettingsError) as error:
        camera.open()
    message = str(error.value)
    assert "resolution 640x480 (device uses 192x144)" in message
    assert "frame rate 30 fps (device uses 50.0 fps)" in message
    assert not camera.is_open


def test_read_before_open_is_a_clear_error() -> None:
    from robostack.drivers.cameras import CameraNotOpenError

    with pytest.raises(CameraNotOpenError):
        OpenCVCamera(OpenCVCameraConfig(0)).read()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"fourcc": "MJPEG"}, "fourcc"),
        ({"width": 640, "height": None}, "both width and height"),
        ({"backend": "dshow"}, "backend"),
        ({"fps": -1.0}, "fps"),
        ({"buffer_size": 0}, "buffer_size"),
    ],
)
def test_bad_config_is_refused_with_the_reason(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        OpenCVCameraConfig(0, **overrides)
