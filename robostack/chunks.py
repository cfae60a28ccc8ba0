"""Action chunks and the policy interface shared by executors, the twin and the policy server.

A policy answers an observation with an :class:`ActionChunk`: ``H`` actions, the first meant for
``start_ns`` and each following one ``dt_ns`` later, all on the clock of the observation's capture
stamp (``CLOCK_MONOTONIC`` of the robot host, or sim time in lockstep mode).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Protocol, runtime_checkable

import numpy as np

Observation = Mapping[str, np.ndarray]
"""Named arrays: camera images (H, W, 3) uint8, ``state`` (D,) float32, etc."""


@dataclass(frozen=True)
class ActionChunk:
    """``H`` timestamped actions of dimension ``D``.

    ``obs_stamp_ns`` is the capture stamp of the observation the chunk was computed from; action
    ``i`` is meant for ``start_ns + i * dt_ns``.
    """

    actions: np.ndarray
    start_ns: int
    dt_ns: int
    obs_stamp_ns: int
    meta: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        actions = np.asarray(self.actions)
        if actions.ndim != 2 or actions.shape[0] == 0:
            raise ValueError(f"ActionChunk.actions must have shape (H>0, D), got {actions.shape}")
        if not np.issubdtype(actions.dtype, np.floating):
            raise ValueError(f"ActionChunk.actions must be floating point, got {actions.dtype}")
        if self.dt_ns <= 0:
            raise ValueError(f"ActionChunk.dt_ns must be > 0, got {self.dt_ns}")
        object.__setattr__(self, "actions", actions)

    @property
    def horizon(self) -> int:
        return int(self.actions.shape[0])

    @property
    def action_dim(self) -> int:
        return int(self.actions.shape[1])

    @property
    def end_ns(self) -> int:
        """Stamp of the last action."""
        return self.start_ns + (self.horizon - 1) * self.dt_ns

    def times_ns(self) -> np.ndarray:
        """Absolute stamp of every action, shape (H,) int64."""
        return self.start_ns + np.arange(self.horizon, dtype=np.int64) * self.dt_ns


@runtime_checkable
class Policy(Protocol):
    """Observation in, action chunk out. Implemented by scripted experts, in-process ONNX
    policies and the policy-server client alike, so evaluation can swap them."""

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode (clear any per-episode state)."""

    def act(self, obs: Observation, stamp_ns: int) -> ActionChunk:
        """Return the chunk for the observation captured at ``stamp_ns``."""


# --- on the wire ----------------------------------------------------------------------------
# A chunk travels as a message with one array ``actions`` (H, D) float32 and its times in meta:
# ``{"start_ns", "dt_ns", "obs_stamp_ns", ...}``; the message's capture stamp is obs_stamp_ns.


def chunk_to_message_parts(chunk: ActionChunk) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    """``(arrays, meta)`` to publish ``chunk`` with (stamp it with ``chunk.obs_stamp_ns``)."""
    meta = {k: v for k, v in dict(chunk.meta).items() if k not in ("start_ns", "dt_ns", "obs_stamp_ns")}
    meta.update(start_ns=int(chunk.start_ns), dt_ns=int(chunk.dt_ns), obs_stamp_ns=int(chunk.obs_stamp_ns))
    return {"actions": np.asarray(chunk.actions, dtype=np.float32)}, meta


def chunk_from_message(arrays: Mapping[str, np.ndarray], meta: Mapping[str, object]) -> ActionChunk:
    """Rebuild a chunk from a received message; raises ``ValueError`` naming what is missing."""
    if "actions" not in arrays:
        raise ValueError("chunk message has no 'actions' array")
    for key in ("start_ns", "dt_ns", "obs_stamp_ns"):
        if type(meta.get(key)) is not int:
            raise ValueError(f"chunk message meta needs integer {key!r}, got {meta.get(key)!r}")
    extra = {k: v for k, v in meta.items() if k not in ("start_ns", "dt_ns", "obs_stamp_ns")}
    return ActionChunk(
        actions=np.array(arrays["actions"], dtype=np.float64),
        start_ns=int(meta["start_ns"]),  # type: ignore[arg-type]
        dt_ns=int(meta["dt_ns"]),  # type: ignore[arg-type]
        obs_stamp_ns=int(meta["obs_stamp_ns"]),  # type: ignore[arg-type]
        meta=extra,
    )
