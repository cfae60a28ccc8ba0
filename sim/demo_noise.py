"""Execution noise for scripted-expert demonstrations (DART, Laskey et al. 2017).

The recorder sends the expert's joint targets *plus* a slowly varying offset to the arm, and
records the expert's clean targets as the action labels. The demonstrations then visit states a
little off the expert's path, each labelled with the way back to it — the states a learned policy
drifts into — so cloning them teaches correction instead of replaying one smooth path from
proprioception alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ExecutionNoise:
    """Ornstein-Uhlenbeck offsets on the arm joints' targets (never on the gripper)."""

    std_rad: float = 0.03
    """Stationary standard deviation of each joint's offset (0.03 rad moves the Panda's tool
    point about 2-3 cm)."""
    time_constant_s: float = 0.5
    """Correlation time: long enough that the arm really follows the offset, short enough that
    an episode sees several."""

    def __post_init__(self) -> None:
        if not self.std_rad >= 0:
            raise ValueError(f"std_rad must be >= 0, got {self.std_rad}")
        if not self.time_constant_s > 0:
            raise ValueError(f"time_constant_s must be > 0, got {self.time_constant_s}")


class NoisyExecution:
    """One episode's offset process; :meth:`apply` adds the next offset to a joint target."""

    def __init__(self, noise: ExecutionNoise, arm_joints: int, dt_s: float, seed: int) -> None:
        self.noise = noise
        self.arm_joints = arm_joints
        self._decay = float(np.exp(-dt_s / noise.time_constant_s))
        self._rng = np.random.default_rng(seed)
        # Start from the stationary distribution so the first second is not noise-free.
        self._offset = self._rng.normal(0.0, noise.std_rad, arm_joints)

    def apply(self, target: np.ndarray) -> np.ndarray:
        """``target`` with the current offset on its first ``arm_joints`` entries; advances the process."""
        out = np.array(target, dtype=np.float64, copy=True)
        out[: self.arm_joints] += self._offset
        innovation = self._rng.normal(0.0, self.noise.std_rad * np.sqrt(1.0 - self._decay**2), self.arm_joints)
        self._offset = self._decay * self._offset + innovation
        return out.astype(np.asarray(target).dtype, copy=False)
