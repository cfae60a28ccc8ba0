"""Tool-point inverse kinematics for the twin's arms, solved with ``mink``."""

from __future__ import annotations

import mink
import mujoco
import numpy as np

from robostack.sim.scene import build_scene


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.zeros(4)
    mujoco.mju_mulQuat(out, np.asarray(a, float), np.asarray(b, float))
    return out


def yaw_quat(yaw: float) -> np.ndarray:
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])


def quat_yaw(quat: np.ndarray) -> float:
    """Rotation about world z of an orientation (w, x, y, z) that is mostly a yaw."""
    w, x, y, z = quat
    return float(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))


def _conjugate(quat: np.ndarray) -> np.ndarray:
    return quat * np.array([1.0, -1.0, -1.0, -1.0])


class ArmIK:
    """Joint positions that put an arm's tool point at a pose, from an arm-only scene."""

    def __init__(self, arm: str, max_iterations: int = 200) -> None:
        scene = build_scene(arm)
        self.arm = scene.arm
        self.model = scene.model
        self.configuration = mink.Configuration(self.model)
        self._qpos_index = np.array([self.model.joint(j).qposadr[0] for j in self.arm.arm_joints])
        orientation_cost = 1.0 if self.arm.full_pose_ik else 0.05
        self._tcp_task = mink.FrameTask(
            self.arm.tcp_site, "site", position_cost=1.0, orientation_cost=orientation_cost, lm_damping=1e-3
        )
        self._posture_task = mink.PostureTask(self.model, cost=1e-3)
        self._limits = [mink.ConfigurationLimit(self.model)]
        self.max_iterations = max_iterations
        home = np.zeros(self.model.nq)
        home[self._qpos_index] = self.arm.home[: len(self.arm.arm_joints)]
        self._posture_task.set_target(home)

    def tool_quat(self, yaw: float) -> np.ndarray:
        """Gripper pointing down, turned by ``yaw`` about world z."""
        return quat_multiply(yaw_quat(yaw), np.asarray(self.arm.tool_down_quat))

    def tool_pose(self, q: np.ndarray) -> tuple[np.ndarray, float]:
        """Forward kinematics: tool-point position and yaw for arm joint positions ``q``."""
        data = self.configuration.data
        data.qpos[self._qpos_index] = q[: len(self._qpos_index)]
        mujoco.mj_kinematics(self.model, data)
        site = self.model.site(self.arm.tcp_site).id
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, data.site_xmat[site])
        down = quat_multiply(quat, _conjugate(np.asarray(self.arm.tool_down_quat)))
        return data.site_xpos[site].copy(), quat_yaw(down)

    def solve(self, pos: np.ndarray, yaw: float, q_init: np.ndarray, tolerance: float = 1e-3) -> tuple[np.ndarray, float]:
        """Arm joint positions reaching (``pos``, down at ``yaw``) starting from ``q_init``;
        also returns the remaining position error in metres."""
        q = np.zeros(self.model.nq)
        q[self._qpos_index] = q_init[: len(self._qpos_index)]
        self.configuration.update(q)
        target = mink.SE3.from_rotation_and_translation(mink.SO3(self.tool_quat(yaw)), np.asarray(pos, float))
        self._tcp_task.set_target(target)
        dt = 0.1
        error = np.inf
        for _ in range(self.max_iterations):
            velocity = mink.solve_ik(
                self.configuration, [self._tcp_task, self._posture_task], dt, "daqp", damping=1e-4, limits=self._limits
            )
            self.configuration.integrate_inplace(velocity, dt)
            task_error = self._tcp_task.compute_error(self.configuration)
            error = float(np.linalg.norm(task_error[:3]))
            if error < tolerance and (not self.arm.full_pose_ik or np.linalg.norm(task_error[3:]) < 1e-2):
                break
        return self.configuration.q[self._qpos_index].copy(), error
