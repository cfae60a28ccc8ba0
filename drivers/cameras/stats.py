"""Counters every camera keeps, published by the node that wraps it."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class CameraStats:
    """What happened to a camera's stream since ``open()``.

    ``dropped_frames`` are frames the source produced that this reader never returned, known
    from a jump in the source's sequence number or, for sources without one, from a gap between
    stamps longer than the tolerance (see :class:`FrameHealthConfig`). A reader slower than the
    source drops frames by design (latest-frame semantics) and they are counted here.
    """

    frames: int = 0
    dropped_frames: int = 0
    frozen_frames: int = 0
    stale_events: int = 0
    reconnects: int = 0
    read_errors: int = 0
    last_stamp_ns: int | None = None

    def as_dict(self) -> dict[str, int | None]:
        return asdict(self)
