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
