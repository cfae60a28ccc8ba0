"""Jogging a target pose with keys: joint space, or the end effector in Cartesian space via IK.

:class:`Jogger` is pure (no terminal, no zmq): keys in (:meth:`Jogger.key`), a target joint vector
out (:attr:`Jogger.target`). The keyboard node feeds it key names from ``terminal/keys``; the
SpaceMouse node uses :meth:`Jogger.move_end_effector` directly.

Keys (names as ``terminal/keys`` sends them):

=================  ==================================================================
``1`` .. ``9``     select joint N (joint mode)
``left/right``     previous / next joint
``up/down``        selected joint + / - one step (joint mode)
``w/s a/d r/f``    end effector +x/-x, +y/-y, +z/-z by one step (end-effector mode)
``+`` / ``-``      double / halve the step (both modes)
``m`` or ``tab``   switch joint <-> end-effector mode (needs a URDF)
``backspace``      forget the target: take the arm's measured position again
=================  ==================================================================
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class InverseKinematics(Protocol):
    def forward(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def solve(self, q_now: np.ndarray, position: np.ndarray,
              orientation: np.ndarray | None = None) -> tuple[np.ndarray, float]: ...


EE_KEYS = {"w": (0, 1.0), "s": (0, -1.0), "a": (1, 1.0), "d": (1, -1.0), "r": (2, 1.0), "f": (2, -1.0)}
MAX_STEP_FACTOR = 16.0


class Jogger:
    """Keeps a joint-space target and changes it per key."""

    def __init__(self, n_joints: int, joint_step: float = 0.05, ee_step: float = 0.01,
                 ik: InverseKinematics | None = None, lower: np.ndarray | None = None,
                 upper: np.ndarray | None = None, max_ik_error: float = 0.005) -> None:
        if n_joints < 1 or joint_step <= 0 or ee_step <= 0:
            raise ValueError("Jogger needs n_joints >= 1 and positive steps")
        self.n_joints = n_joints
        self.joint_step0, self.ee_step0 = joint_step, ee_step
        self.scale = 1.0
        self.ik = ik
        self.lower = None if lower is None else np.asarray(lower, dtype=np.float64)
        self.upper = None if upper is None else np.asarray(upper, dtype=np.float64)
        self.max_ik_error = max_ik_error
        self.mode = "joint"
        self.joint = 0
        self.target: np.ndarray | None = None
        self.unreachable = 0  # end-effector steps refused because IK could not reach them
        self.last_message = ""

    @property
    def joint_step(self) -> float:
        return self.joint_step0 * self.scale

    @property
    def ee_step(self) -> float:
        return self.ee_step0 * self.scale

    def sync(self, measured: np.ndarray) -> None:
        """Start (or restart) from the arm's measured position."""
        measured = np.asarray(measured, dtype=np.float64)
        if measured.shape != (self.n_joints,):
            raise ValueError(f"measured position has shape {measured.shape}, expected ({self.n_joints},)")
        self.target = measured.copy()

    def key(self, name: str) -> bool:
        """Apply one key; returns whether it was understood. Needs a target (``sync`` first)
        for moves."""
        if name in ("m", "tab"):
            if self.ik is None:
                self.last_message = "end-effector mode needs a URDF and end-effector link"
                return True
            self.mode = "ee" if self.mode == "joint" else "joint"
            self.last_message = f"mode: {self.mode}"
            return True
        if name in ("+", "="):
            self.scale = min(self.scale * 2.0, MAX_STEP_FACTOR)
        elif name in ("-", "_"):
            self.scale = max(self.scale / 2.0, 1.0 / MAX_STEP_FACTOR)
        elif name.isdigit() and name != "0":
            if int(name) <= self.n_joints:
                self.joint = int(name) - 1
        elif name == "right":
            self.joint = (self.joint + 1) % self.n_joints
        elif name == "left":
            self.joint = (self.joint - 1) % self.n_joints
        elif name == "backspace":
            self.target = None
        elif name in ("up", "down") and self.mode == "joint":
            self.move_joint(self.joint, 1.0 if name == "up" else -1.0)
        elif name in EE_KEYS and self.mode == "ee":
            axis, sign = EE_KEYS[name]
            delta = np.zeros(3)
            delta[axis] = sign * self.ee_step
            self.move_end_effector(delta)
        else:
            return False
        return True

    def move_joint(self, joint: int, direction: float) -> None:
        if self.target is None:
            return
        target = self.target.copy()
        target[joint] += direction * self.joint_step
        self.target = self._clip(target)

    def move_end_effector(self, delta: np.ndarray) -> bool:
        """Move the end effector by ``delta`` (m, base frame) keeping its orientation; False (and
        the target unchanged) when IK cannot reach it within ``max_ik_error``."""
        if self.target is None or self.ik is None:
            return False
        position, orientation = self.ik.forward(self.target)
        q, error = self.ik.solve(self.target, position + np.asarray(delta, dtype=np.float64), orientation)
        q = self._clip(q)
        if error > self.max_ik_error or not np.all(np.isfinite(q)):
            self.unreachable += 1
            self.last_message = f"unreachable (IK error {error * 1000:.1f} mm)"
            return False
        self.target = q
        return True

    def _clip(self, q: np.ndarray) -> np.ndarray:
        if self.lower is not None and self.upper is not None:
            return np.clip(q, self.lower, self.upper)
        return q
