"""Scripted experts: tool-point waypoints from the task, joint-space IK with ``mink``, smooth
joint trajectories served as action chunks through the :class:`robostack.chunks.Policy` API."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from robostack.chunks import ActionChunk, Observation
from robostack.sim.ik import ArmIK, quat_yaw
from robostack.sim.tasks import get_task
from robostack.sim.tasks.base import Task, Waypoint


@dataclass(frozen=True)
class JointTrajectory:
    """Piecewise minimum-jerk joint trajectory through knots ``(times_s[k], positions[k])``."""

    times_s: np.ndarray
    positions: np.ndarray

    @property
    def duration_s(self) -> float:
        return float(self.times_s[-1])

    def sample(self, t: float) -> np.ndarray:
        if t <= self.times_s[0]:
            return self.positions[0].copy()
        if t >= self.times_s[-1]:
            return self.positions[-1].copy()
        k = int(np.searchsorted(self.times_s, t, side="right")) - 1
        span = self.times_s[k + 1] - self.times_s[k]
        s = (t - self.times_s[k]) / span
        blend = s**3 * (10 - 15 * s + 6 * s * s)
        return self.positions[k] + blend * (self.positions[k + 1] - self.positions[k])


def plan_waypoints(ik: ArmIK, start: np.ndarray, waypoints: list[Waypoint]) -> JointTrajectory:
    """Solve IK for tool-point waypoints (each warm-started from the previous) into a trajectory."""
    arm = ik.arm
    n_arm = len(arm.arm_joints)
    times = [0.0]
    knots = [np.asarray(start, float).copy()]
    q = knots[0][:n_arm]
    for waypoint in waypoints:
        if waypoint.grip not in ("open", "closed"):
            raise ValueError(f"waypoint grip must be 'open' or 'closed', got {waypoint.grip!r}")
        q, _ = ik.solve(np.asarray(waypoint.pos), waypoint.yaw, q)
        grip = arm.gripper_open if waypoint.grip == "open" else arm.gripper_closed
        times.append(times[-1] + waypoint.duration_s)
        knots.append(np.concatenate([q, [grip]]))
    return JointTrajectory(np.asarray(times), np.asarray(knots))


def split_stages(waypoints: list[Waypoint]) -> list[list[Waypoint]]:
    """Cut the waypoint list where carrying starts: each carry stage is planned when reached."""
    stages: list[list[Waypoint]] = [[]]
    for previous, waypoint in zip([None, *waypoints], waypoints):
        if waypoint.holding is not None and (previous is None or previous.holding is None) and stages[-1]:
            stages.append([])
        stages[-1].append(waypoint)
    return stages


def object_poses(obs: Observation) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Positions and yaws of the privileged ``priv/<name>`` entries of an observation."""
    positions, yaws = {}, {}
    for key, value in obs.items():
        if key.startswith("priv/"):
            name = key[len("priv/") :]
            positions[name] = np.asarray(value[:3], float)
            yaws[name] = quat_yaw(np.asarray(value[3:7], float))
    return positions, yaws


def _rot_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


class ScriptedExpert:
    """Privileged expert for a task: reads object poses (``priv/*``) and the instruction, plans
    the approach and grasp, then plans the carry once the object is in the hand, correcting for
    how it actually sits there. Returns chunks of the planned joint trajectory."""

    def __init__(
        self, task: str, arm: str = "panda", control_hz: float = 20.0, horizon: int = 10, max_regrasps: int = 2
    ) -> None:
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        self.task: Task = get_task(task)
        self.ik = ArmIK(arm)
        self.dt_ns = int(round(1e9 / control_hz))
        self.horizon = horizon
        self.max_regrasps = max_regrasps
        self._stages: list[list[Waypoint]] | None = None
        self._trajectory: JointTrajectory | None = None
        self._t0_ns = 0
        self._regrasps = 0

    def reset(self, seed: int | None = None) -> None:
        self._stages = None
        self._trajectory = None
        self._regrasps = 0

    def _holds(self, obs: Observation, stage: list[Waypoint]) -> bool:
        """Whether the object a carry stage needs is actually in the hand (near the tool point
        and off the table)."""
        held = next((w.holding for w in stage if w.holding), None)
        if held is None:
            return True
        positions, _ = object_poses(obs)
        tool_pos, _ = self.ik.tool_pose(np.asarray(obs["state"], float))
        size = self.ik.arm.workspace.cube_size
        return bool(np.linalg.norm(positions[held] - tool_pos) < 1.5 * size and positions[held][2] > size)

    def _plan_task(self, obs: Observation) -> list[list[Waypoint]]:
        positions, yaws = object_poses(obs)
        missing = [name for name in self.task.movable_objects if name not in positions]
        if missing:
            raise ValueError(f"the scripted expert needs privileged poses priv/<name> in the observation; missing {missing}")
        waypoints = self.task.expert_waypoints(str(obs["instruction"]), positions, yaws, self.ik.arm.workspace)
        return split_stages(waypoints)

    def _tool_waypoints(self, obs: Observation, stage: list[Waypoint]) -> list[Waypoint]:
        """Turn object goals (``holding``) into tool goals using the measured grasp offset."""
        if not any(w.holding for w in stage):
            return stage
        positions, yaws = object_poses(obs)
        tool_pos, tool_yaw = self.ik.tool_pose(np.asarray(obs["state"], float))
        converted = []
        for waypoint in stage:
            if waypoint.holding is None:
                converted.append(waypoint)
                continue
            held = waypoint.holding
            offset_in_tool = _rot_z(-tool_yaw) @ (positions[held] - tool_pos)
            # A cube looks the same every quarter turn: use the smallest equivalent rotation.
            yaw_in_tool = (yaws[held] - tool_yaw + np.pi / 4) % (np.pi / 2) - np.pi / 4
            goal_tool_yaw = waypoint.yaw - yaw_in_tool
            goal_tool_pos = np.asarray(waypoint.pos) - _rot_z(goal_tool_yaw) @ offset_in_tool
            converted.append(replace(waypoint, pos=tuple(goal_tool_pos), yaw=float(goal_tool_yaw), holding=None))
        return converted

    def act(self, obs: Observation, stamp_ns: int) -> ActionChunk:
        if self._stages is None:
            self._stages = self._plan_task(obs)
        stage_done = self._trajectory is None or (stamp_ns - self._t0_ns) * 1e-9 >= self._trajectory.duration_s
        if stage_done and self._stages:
            if not self._holds(obs, self._stages[0]) and self._regrasps < self.max_regrasps:
                # The grasp slipped or missed: start over from where the objects are now.
                self._regrasps += 1
                self._stages = self._plan_task(obs)
            stage = self._tool_waypoints(obs, self._stages.pop(0))
            start = np.asarray(obs["state"], float)
            if self._trajectory is not None:
                # Continue from the last commanded targets, not the measured (lagging) joints.
                start = self._trajectory.positions[-1]
            self._trajectory = plan_waypoints(self.ik, start, stage)
            self._t0_ns = stamp_ns
        assert self._trajectory is not None
        times = stamp_ns + np.arange(self.horizon, dtype=np.int64) * self.dt_ns
        actions = np.stack([self._trajectory.sample((t - self._t0_ns) * 1e-9) for t in times])
        return ActionChunk(actions=actions, start_ns=stamp_ns, dt_ns=self.dt_ns, obs_stamp_ns=stamp_ns)
