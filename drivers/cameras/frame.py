"""The frame every camera returns, and the flags that qualify it."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np


class FrameFlags(enum.IntFlag):
    """What a consumer should know about one frame beyond its pixels."""

    NONE = 0
    FROZEN = enum.auto()
    """Near-identical to each of the previous N frames: the source may have stopped updating."""
    AFTER_GAP = enum.auto()
    """Frames were lost right before this one (a jump in the source sequence or the stamps)."""
    AFTER_RECONNECT = enum.auto()
    """First frame after the device was lost and opened again."""
    LOOPED = enum.auto()
    """A video file started over from its first frame."""
    DRIVER_STAMP = enum.auto()
    """``stamp_ns`` is the driver's buffer timestamp rather than the host clock after the grab."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One captured image.

    ``image`` is ``(H, W, 3)`` ``uint8`` in **RGB** order for every camera (OpenCV's BGR is
    converted at capture), C-contiguous. ``stamp_ns`` is ``CLOCK_MONOTONIC`` nanoseconds
    (``time.monotonic_ns``) of the moment the frame was captured, never of when it was sent.
    ``index`` counts the frames this camera object has returned (0, 1, 2, ... across
    reconnects and loops). ``sequence`` is the source's own frame number when it has one
    (video file position, RealSense frame number, synthetic counter); gaps in it are dropped
    frames. ``depth`` is set only by depth cameras: ``(H, W)`` ``uint16`` in the camera's depth
    units.
    """

    image: np.ndarray
    stamp_ns: int
    index: int
    sequence: int | None = None
    flags: FrameFlags = FrameFlags.NONE
    depth: np.ndarray | None = None

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])
