from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from robostack.drivers.cameras import (
    CameraOpenError,
    FrameFlags,
    VideoFileCamera,
    VideoFileCameraConfig,
)
from robostack.drivers.cameras.pattern import COUNTER_BITS, read_frame_counter

VideoMaker = Callable[..., Path]  # the make_video fixture (conftest.py)


def read_all(camera: VideoFileCamera, limit: int = 1000) -> list:
    frames = []
    while len(frames) < limit and (frame := camera.read()) is not None:
        frames.append(frame)
    return frames


@pytest.mark.parametrize("codec", ["mp4v", "MJPG"])
def test_replay_returns_every_frame_at_the_files_rate(make_video: VideoMaker, codec: str) -> None:
    path = make_video(range(15), fps=50, codec=codec)
    with VideoFileCamera(VideoFileCameraConfig(path)) as camera:
        start = time.monotonic_ns()
        frames = read_all(camera)
        elapsed_s = (time.monotonic_ns() - start) / 1e9
        assert camera.finished
        assert camera.read() is None
    assert [read_frame_counter(f.image) for f in frames] == list(range(15))
    assert [f.sequence for f in frames] == list(range(15))
    assert [f.index for f in frames] == list(range(15))
    periods_ms = np.diff([f.stamp_ns for f in frames]) / 1e6
    assert np.median(periods_ms) == pytest.approx(20.0, abs=1.0)
    assert elapsed_s == pytest.approx(14 * 0.020, abs=0.08)
    assert camera.fps == pytest.approx(50.0)


def test_given_rate_overrides_the_files_rate(make_video: VideoMaker) -> None:
    path = make_video(range(10), fps=25)
    with VideoFileCamera(VideoFileCameraConfig(path, fps=100)) as camera:
        frames = read_all(camera)
    periods_ms = np.diff([f.stamp_ns for f in frames]) / 1e6
    assert np.median(periods_ms) == pytest.approx(10.0, abs=1.0)
    assert camera.file_fps == pytest.approx(25.0)


def test_lockstep_returns_frames_as_fast_as_asked(make_video: VideoMaker) -> None:
    path = make_video(range(40), fps=10)  # 4 s of video in real time
    with VideoFileCamera(VideoFileCameraConfig(path, lockstep=True)) as camera:
        start = time.monotonic()
        frames = read_all(camera)
        elapsed_s = time.monotonic() - start
    assert [read_frame_counter(f.image) for f in frames] == list(range(40))
    assert elapsed_s < 1.0
    stamps = [f.stamp_ns for f in frames]
    assert stamps == sorted(stamps)
    assert camera.stats.dropped_frames == 0


def test_loop_starts_over_and_keeps_counting(make_video: VideoMaker) -> None:
    path = make_video(range(6))
    with VideoFileCamera(VideoFileCameraConfig(path, loop=True, lockstep=True)) as camera:
        frames = [camera.read() for _ in range(15)]
    assert [f.sequence for f in frames] == list(range(15))
    assert [read_frame_counter(f.image) for f in frames] == [k % 6 for k in range(15)]
    looped = [f.sequence for f in frames if f.flags & FrameFlags.LOOPED]
    assert looped == [6, 12]
    assert not camera.finished


@pytest.mark.parametrize("codec", ["mp4v", "MJPG"])
def test_file_with_repeated_frames_is_flagged_frozen(make_video: VideoMaker, codec: str) -> None:
    numbers = [0, 1, 2, 3, 3, 3, 3, 3, 4, 5, 6]
    path = make_video(numbers, codec=codec)
    with VideoFileCamera(VideoFileCameraConfig(path, lockstep=True)) as camera:
        frames = read_all(camera)
    frozen = [f.sequence for f in frames if f.flags & FrameFlags.FROZEN]
    # the 3rd, 4th and 5th copies each match the two frames before them
    assert frozen == [5, 6, 7]
    assert camera.stats.frozen_frames == 3


def test_slow_reader_skips_frames_like_a_live_camera(make_video: VideoMaker) -> None:
    path = make_video(range(30), fps=100)
    with VideoFileCamera(VideoFileCameraConfig(path)) as camera:
        first = camera.read()
        time.sleep(0.065)
        late = camera.read()
        stats = camera.stats
    assert first is not None and late is not None
    assert late.sequence >= 5
    assert read_frame_counter(late.image) == late.sequence  # skipped frames really passed
    assert late.flags & FrameFlags.AFTER_GAP
    assert stats.dropped_frames == late.sequence - 1


def test_without_dropping_a_slow_reader_gets_every_frame_late(make_video: VideoMaker) -> None:
    path = make_video(range(10), fps=100)
    config = VideoFileCameraConfig(path, drop_late_frames=False)
    with VideoFileCamera(config) as camera:
        camera.read()
        time.sleep(0.05)
        frames = read_all(camera)
    assert [f.sequence for f in frames] == list(range(1, 10))
    assert camera.stats.dropped_frames == 0


def test_frames_are_rgb(make_video: VideoMaker) -> None:
    path = make_video([7], codec="MJPG", size=(240, 180))
    with VideoFileCamera(VideoFileCameraConfig(path, lockstep=True)) as camera:
        frame = camera.read()
    assert frame is not None
    cell = 240 // COUNTER_BITS
    red = frame.image[180 - cell // 2, cell // 2].astype(int)
    assert red[0] > 200 and red[1] < 60 and red[2] < 60


def test_missing_file_is_named_in_the_error(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.mp4"
    with pytest.raises(CameraOpenError, match="nowhere.mp4 does not exist"):
        VideoFileCamera(VideoFileCameraConfig(path)).open()


def test_undecodable_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "garbage.mp4"
    path.write_bytes(b"this is not a video" * 100)
    with pytest.raises(CameraOpenError, match="cannot decode video file .*garbage.mp4"):
        VideoFileCamera(VideoFileCameraConfig(path)).open()


def test_directory_is_not_a_video_file(tmp_path: Path) -> None:
    with pytest.raises(CameraOpenError, match="not a regular file"):
        VideoFileCamera(VideoFileCameraConfig(tmp_path)).open()


def test_nonpositive_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="fps"):
        VideoFileCameraConfig("x.mp4", fps=0)
