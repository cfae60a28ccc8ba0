"""End-effector inverse kinematics for teleop jogging, with PyBullet (DIRECT mode, no window).

``pybullet`` is imported when a solver is made, never at module import. A URDF path may start with
``pybullet_data:`` to name a model shipped with pybullet (e.g.
``pybullet_data:franka_panda/panda.urdf``), so launch files need no absolute paths.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

PYBULLET_DATA_PREFIX = "pybullet_data:"


def resolve_urdf(path: str) -> str:
    """An existing URDF path (``pybullet_data:`` resolved); clear error if it does not exist."""
    if path.startswith(PYBULLET_DATA_PREFIX):
        import pybullet_data

        path = os.path.join(pybullet_data.getDataPath(), path[len(PYBULLET_DATA_PREFIX):])
    if not os.path.isfile(path):
        raise FileNotFoundError(f"URDF {path!r} does not exist")
    return path


class PyBulletIK:
    """Position (and held orientation) IK of one end-effector link over the named joints.

    ``joints`` lists, in the arm's joint order, the URDF joint each arm joint is (``""`` for an arm
    joint the URDF does not model, e.g. a gripper; it is passed through unchanged).
    """

    def __init__(self, urdf: str, end_effector_link: str, joints: Sequence[str]) -> None:
        import pybullet

        self._pb = pybullet
        self._client = pybullet.connect(pybullet.DIRECT)
        try:
            self._body = pybullet.loadURDF(resolve_urdf(urdf), useFixedBase=True, physicsClientId=self._client)
            info = [pybullet.getJointInfo(self._body, i, physicsClientId=self._client)
                    for i in range(pybullet.getNumJoints(self._body, physicsClientId=self._client))]
            by_name = {j[1].decode(): j for j in info}
            links = {j[12].decode(): j[0] for j in info}
            if end_effector_link not in links:
                raise ValueError(f"URDF {urdf!r} has no link {end_effector_link!r}; links: {sorted(links)}")
            self._ee = links[end_effector_link]
            # pybullet's IK returns one value per movable (non-fixed) joint, in index order.
            self._movable = [j[0] for j in info if j[2] != pybullet.JOINT_FIXED]
            self._lower = np.array([info[i][8] for i in self._movable])
            self._upper = np.array([info[i][9] for i in self._movable])
            unknown = [n for n in joints if n and n not in by_name]
            if unknown:
                raise ValueError(f"URDF {urdf!r} has no joint(s) {unknown}; joints: {sorted(by_name)}")
            self._arm_to_dof = [self._movable.index(by_name[n][0]) if n else -1 for n in joints]
            if all(k < 0 for k in self._arm_to_dof):
                raise ValueError("none of the arm's joints is in the URDF; set 'urdf_joints'")
        except BaseException:
            pybullet.disconnect(self._client)
            raise
        self.n_joints = len(joints)

    def _set(self, q: np.ndarray) -> np.ndarray:
        dofs = np.clip(np.zeros(len(self._movable)), self._lower, np.maximum(self._lower, self._upper))
        for arm_i, dof in enumerate(self._arm_to_dof):
            if dof >= 0:
                dofs[dof] = q[arm_i]
        for dof, joint in enumerate(self._movable):
            self._pb.resetJointState(self._body, joint, float(dofs[dof]), physicsClientId=self._client)
        return dofs

    def forward(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """End-effector position (m) and orientation quaternion (x, y, z, w) at joints ``q``."""
        self._set(np.asarray(q, dtype=np.float64))
        state = self._pb.getLinkState(self._body, self._ee, computeForwardKinematics=True,
                                      physicsClientId=self._client)
        return np.array(state[4]), np.array(state[5])

    def solve(self, q_now: np.ndarray, position: np.ndarray, orientation: np.ndarray | None = None,
              iterations: int = 4) -> tuple[np.ndarray, float]:
        """Joints near ``q_now`` putting the end effector at ``position`` (and ``orientation``);
        returns them and the remaining position error in metres."""
        q = np.asarray(q_now, dtype=np.float64).copy()
        pb = self._pb
        error = np.inf
        for _ in range(iterations):  # pybullet's damped least squares converges in a few restarts
            dofs = self._set(q)
            kwargs = dict(lowerLimits=self._lower.tolist(), upperLimits=self._upper.tolist(),
                          jointRanges=(self._upper - self._lower).tolist(), restPoses=dofs.tolist(),
                          maxNumIterations=100, residualThreshold=1e-6, physicsClientId=self._client)
            if orientation is not None:
                sol = pb.calculateInverseKinematics(self._body, self._ee, list(position), list(orientation), **kwargs)
            else:
                sol = pb.calculateInverseKinematics(self._body, self._ee, list(position), **kwargs)
            sol = np.clip(np.asarray(sol), self._lower, np.maximum(self._lower, self._upper))
            for arm_i, dof in enumerate(self._arm_to_dof):
                if dof >= 0:
                    q[arm_i] = sol[dof]
            error = float(np.linalg.norm(self.forward(q)[0] - np.asarray(position)))
            if error < 1e-4:
                break
        return q, error

    def close(self) -> None:
        if self._client is not None:
            self._pb.disconnect(self._client)
            self._client = None
