"""The interface every camera implements, and the bookkeeping they share."""

from __future__ import annotations

import abc
import dataclasses
from types import TracebackType

import numpy as np

from robostack.drivers.cameras.errors import CameraNotOpenError
from robostack.drivers.cameras.frame import Frame, FrameFlags
from robostack.drivers.cameras.health import FrameHealthConfig, FrameHealthMonitor
from robostack.drivers.cameras.stats import CameraStats


class Camera(abc.ABC):
    """A source of timestamped RGB frames.

    Life cycle: ``open()`` (raises a :class:`CameraError` naming what failed), then ``read()``
    repeatedly, then ``close()``; also usable as a context manager. ``read()`` blocks for at most
    about one frame period (or one reconnect back-off step) and returns ``None`` when no frame
    could be had: the device is gone and not back yet, or a file has ended. A camera is used
    from one thread (the node's capture loop); it does no locking.
    """

    def __init__(self, name: str, health: FrameHealthConfig | None = None) -> None:
        self.name = name
        self._stats = CameraStats()
        self._health = FrameHealthMonitor(health or FrameHealthConfig(), self._stats)
        self._next_index = 0

    @abc.abstractmethod
    def open(self) -> None:
        """Open the source, apply and verify its settings."""

    @abc.abstractmethod
    def read(self) -> Frame | None:
        """Return the next frame, or ``None`` when none could be had."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the source; calling it twice is harmless."""

    @property
    @abc.abstractmethod
    def is_open(self) -> bool:
        """True between ``open()`` and ``close()`` (also while reconnecting)."""

    @property
    def fps(self) -> float | None:
        """Nominal frame rate, once known (after ``open()``); ``None`` for unpaced sources."""
        period = self._health.period_ns
        return round(1e9 / period, 3) if period else None

    @property
    def stats(self) -> CameraStats:
        """A snapshot of the counters."""
        return dataclasses.replace(self._stats)

    def check_stale(self, now_ns: int) -> bool:
        """True when no frame arrived for the configured number of periods."""
        return self._health.check_stale(now_ns)

    def __enter__(self) -> Camera:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def _require_open(self) -> None:
        if not self.is_open:
            raise CameraNotOpenError(f"camera {self.name!r} is not open: call open() first")

    def _emit(
        self,
        image: np.ndarray,
        stamp_ns: int,
        sequence: int | None = None,
        flags: FrameFlags = FrameFlags.NONE,
        depth: np.ndarray | None = None,
    ) -> Frame:
        """Run the health checks on a captured image and wrap it as the next :class:`Frame`."""
        flags |= self._health.observe(image, stamp_ns, sequence)
        frame = Frame(
            image=image,
            stamp_ns=stamp_ns,
            index=self._next_index,
            sequence=sequence,
            flags=flags,
            depth=depth,
        )
        self._next_index += 1
        return frame
