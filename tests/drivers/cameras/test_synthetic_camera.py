from __future__ import annotations

import time

import numpy as np
import pytest

from robostack.drivers.cameras import (
    CameraNotOpenError,
    FrameFlags,
    SyntheticCamera,
    SyntheticCameraConfig,
)
from robostack.drivers.cameras.pattern import read_frame_counter


def test_lockstep_frames_carry_consecutive_readable_indices() -> None:
    with SyntheticCamera(SyntheticCameraConfig(width=320, height=240, lockstep=True)) as camera:
        frames = [camera.read() for _ in range(30)]
    assert all(f is not None for f in frames)
    assert [f.index for f in frames] == list(range(30))
    assert [f.sequence for f in frames] == list(range(30))
    assert [read_frame_counter(f.image) for f in frames] == list(range(30))
    assert frames[0].image.shape == (240, 320, 3)
    stamps = [f.stamp_ns for f in frames]
    assert stamps == sorted(stamps)


def test_real_time_frames_are_paced_at_the_configured_rate() -> None:
    with SyntheticCamera(SyntheticCameraConfig(width=160, height=120, fps=100)) as camera:
        start = time.monotonic_ns()
        frames = [camera.read() for _ in range(20)]
        elapsed_s = (time.monotonic_ns() - start) / 1e9
    periods_ms = np.diff([f.stamp_ns for f in frames]) / 1e6
    assert np.median(periods_ms) == pytest.approx(10.0, abs=0.5)
    assert elapsed_s == pytest.approx(0.19, abs=0.06)
    assert camera.fps == pytest.approx(100.0)


def test_slow_reader_gets_newest_frame_and_drops_are_counted() -> None:
    with SyntheticCamera(SyntheticCameraConfig(width=160, height=120, fps=100)) as camera:
        first = camera.read()
        time.sleep(0.055)  # about five periods
        late = camera.read()
        stats = camera.stats
    assert first is not None and late is not None
    skipped = late.sequence - first.sequence - 1
    assert skipped >= 4
    assert late.flags & FrameFlags.AFTER_GAP
    assert read_frame_counter(late.image) == late.sequence
    assert late.index == 1
    assert stats.dropped_frames == skipped
    assert stats.stale_events == 0  # the source kept running; the reader was slow


def test_reader_that_keeps_up_drops_nothing_and_sees_no_frozen_frames() -> None:
    with SyntheticCamera(SyntheticCameraConfig(width=160, height=120, fps=50)) as camera:
        for _ in range(20):
            camera.read()
        stats = camera.stats
    assert stats.frames == 20
    assert stats.frozen_frames == 0
    assert stats.dropped_frames <= 1  # one slip allowed on a loaded 2-core machine


def test_read_before_open_is_a_clear_error() -> None:
    camera = SyntheticCamera()
    with pytest.raises(CameraNotOpenError, match="open"):
        camera.read()


def test_resolution_too_small_for_the_counter_is_refused() -> None:
    with pytest.raises(ValueError, match="32x32"):
        SyntheticCameraConfig(width=32, height=32)
