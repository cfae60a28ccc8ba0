"""Fixtures that write real video files of the burned-in-counter test pattern."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import pytest

from robostack.drivers.cameras.pattern import render_test_pattern

VideoMaker = Callable[..., Path]

CODEC_SUFFIX = {"mp4v": ".mp4", "MJPG": ".avi"}


@pytest.fixture
def make_video(tmp_path: Path) -> VideoMaker:
    """``make_video(numbers, fps=50, codec="mp4v", size=(192, 144))`` writes one frame per
    entry of ``numbers`` showing that counter value (repeat a number to repeat a frame)."""

    def make(
        numbers: Sequence[int],
        fps: float = 50.0,
        codec: str = "mp4v",
        size: tuple[int, int] = (192, 144),
        name: str = "clip",
    ) -> Path:
        path = tmp_path / f"{name}{CODEC_SUFFIX[codec]}"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*codec), fps, size)
        assert writer.isOpened(), f"OpenCV cannot write {codec} here"
        for number in numbers:
            rgb = render_test_pattern(size[0], size[1], number)
            writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        writer.release()
        return path

    return make
