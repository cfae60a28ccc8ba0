"""Stale/frozen-frame detection and dropped-frame counting shared by every camera."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from robostack.drivers.cameras.frame import FrameFlags
from robostack.drivers.cameras.stats import CameraStats


@dataclass
class FrameHealthConfig:
    """Thresholds of :class:`FrameHealthMonitor`.

    A frame is *frozen* when it is near-identical to each of the previous ``frozen_repeats``
    frames (0 turns the check off). Near-identical means the mean absolute difference over a
    ``sample_rows x sample_cols`` grid of single pixels is at most ``frozen_threshold`` grey
    levels. Single pixels, not block averages: averaging would wash out sensor noise, and noise
    is what tells a live camera looking at a still scene from a driver re-delivering one buffer.

    The stream is *stale* when no new frame came for ``stale_periods`` nominal periods. Frames
    are counted as dropped when a stamp gap exceeds ``gap_tolerance`` periods (sources without a
    sequence number only).
    """

    frozen_repeats: int = 2
    frozen_threshold: float = 0.5
    sample_rows: int = 24
    sample_cols: int = 32
    stale_periods: float = 3.0
    gap_tolerance: float = 1.5

    def __post_init__(self) -> None:
        if self.frozen_repeats < 0:
            raise ValueError(f"frozen_repeats must be >= 0, got {self.frozen_repeats}")
        if self.frozen_threshold < 0:
            raise ValueError(f"frozen_threshold must be >= 0, got {self.frozen_threshold}")
        if self.sample_rows < 1 or self.sample_cols < 1:
            raise ValueError(
                f"sample grid must be at least 1x1, got {self.sample_rows}x{self.sample_cols}"
            )
        if self.stale_periods <= 1:
            raise ValueError(f"stale_periods must be > 1, got {self.stale_periods}")
        if self.gap_tolerance <= 1:
            raise ValueError(f"gap_tolerance must be > 1, got {self.gap_tolerance}")


class FrameHealthMonitor:
    """Watches one camera's stream and updates its :class:`CameraStats`.

    ``period_ns`` is the nominal frame period, or ``None`` when wall time says nothing about the
    stream (lockstep replay): then only sequence gaps and frozen images are checked.
    """

    def __init__(
        self, config: FrameHealthConfig, stats: CameraStats, period_ns: int | None = None
    ) -> None:
        self.config = config
        self.stats = stats
        self.period_ns = period_ns
        self._signatures: deque[np.ndarray] = deque(maxlen=max(1, config.frozen_repeats))
        self._last_stamp_ns: int | None = None
        self._last_sequence: int | None = None
        # Last frame, or the restart time: what "no new frame for K periods" is measured from.
        self._stale_ref_ns: int | None = None
        self._stale_reported = False

    def restart(self, now_ns: int | None = None) -> None:
        """Forget the previous frame (after open or a reconnect) so the outage is not counted as
        dropped frames; ``now_ns`` starts the stale clock."""
        self._signatures.clear()
        self._last_stamp_ns = None
        self._stale_ref_ns = now_ns
        self._last_sequence = None
        self._stale_reported = False

    def observe(self, image: np.ndarray, stamp_ns: int, sequence: int | None = None) -> FrameFlags:
        """Account for a new frame; returns the flags it earns (``FROZEN``, ``AFTER_GAP``)."""
        flags = FrameFlags.NONE
        missed = self._missed_before(stamp_ns, sequence)
        if missed > 0:
            self.stats.dropped_frames += missed
            flags |= FrameFlags.AFTER_GAP
        # A long wait explained by a sequence jump means the source ran and the reader was slow;
        # without a sequence number the two cannot be told apart and both are counted.
        sequence_explains_gap = sequence is not None and missed > 0
        if (
            self.period_ns
            and self._stale_ref_ns is not None
            and not self._stale_reported
            and not sequence_explains_gap
            and stamp_ns - self._stale_ref_ns >= self.config.stale_periods * self.period_ns
        ):
            self.stats.stale_events += 1
        if self._is_frozen(image):
            self.stats.frozen_frames += 1
            flags |= FrameFlags.FROZEN
        self._last_stamp_ns = stamp_ns
        self._stale_ref_ns = stamp_ns
        if sequence is not None:
            self._last_sequence = sequence
        self._stale_reported = False
        self.stats.frames += 1
        self.stats.last_stamp_ns = stamp_ns
        return flags

    def check_stale(self, now_ns: int) -> bool:
        """True when no frame came for ``stale_periods`` periods; counts each outage once."""
        if not self.period_ns or self._stale_ref_ns is None:
            return False
        stale = now_ns - self._stale_ref_ns >= self.config.stale_periods * self.period_ns
        if stale and not self._stale_reported:
            self.stats.stale_events += 1
            self._stale_reported = True
        return stale

    def _missed_before(self, stamp_ns: int, sequence: int | None) -> int:
        if sequence is not None and self._last_sequence is not None:
            return max(0, sequence - self._last_sequence - 1)
        if sequence is None and self.period_ns and self._last_stamp_ns is not None:
            gap = stamp_ns - self._last_stamp_ns
            if gap > self.config.gap_tolerance * self.period_ns:
                return max(1, round(gap / self.period_ns) - 1)
        return 0

    def _is_frozen(self, image: np.ndarray) -> bool:
        if self.config.frozen_repeats == 0:
            return False
        signature = self._signature(image)
        frozen = len(self._signatures) == self.config.frozen_repeats and all(
            float(np.abs(signature - previous).mean()) <= self.config.frozen_threshold
            for previous in self._signatures
        )
        self._signatures.append(signature)
        return frozen

    def _signature(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        rows = np.linspace(0, h - 1, min(h, self.config.sample_rows)).astype(np.intp)
        cols = np.linspace(0, w - 1, min(w, self.config.sample_cols)).astype(np.intp)
        return image[np.ix_(rows, cols)].astype(np.int16)
