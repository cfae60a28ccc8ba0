"""PyBullet backend: the same Panda (``pybullet_data``'s ``franka_panda/panda.urdf``, whose
kinematics equal the MuJoCo model's), the same table, objects, seeds, observations and success
checks, for sim-to-sim comparisons of one policy in two physics engines."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pybullet
import pybullet_data

from robostack.chunks import Observation
from robostack.sim.env import JointState
from robostack.sim.scene import CAMERA_FOVY, TABLE_TOP_Z, camera_poses
from robostack.sim.tasks import get_task
from robostack.sim.tasks.base import CUBE_COLORS, Layout, WorldState
from robostack.sim.tasks.pick_place import BIN_FLOOR, BIN_WALL, bin_inner_half, bin_wall_height

SUPPORTED_ARMS = ("panda",)


@dataclass(frozen=True)
class BulletConfig:
    task: str = "pick_place"
    arm: str = "panda"
    timestep: float = 0.002
    control_hz: float = 20.0
    image_size: tuple[int, int] = (224, 224)

    def __post_init__(self) -> None:
        if self.arm not in SUPPORTED_ARMS:
            raise ValueError(f"the PyBullet backend supports arms {SUPPORTED_ARMS}, not {self.arm!r}")
        steps = 1.0 / (self.control_hz * self.timestep)
        if abs(steps - round(steps)) > 1e-6:
            raise ValueError(f"control period 1/{self.control_hz} s must be whole {self.timestep} s physics steps")


def _xyzw(wxyz: np.ndarray) -> list[float]:
    return [float(wxyz[1]), float(wxyz[2]), float(wxyz[3]), float(wxyz[0])]


def _wxyz(xyzw: tuple[float, ...]) -> np.ndarray:
    return np.array([xyzw[3], xyzw[0], xyzw[1], xyzw[2]])


class BulletEnv:
    """A seeded task episode in PyBullet with the :class:`~robostack.sim.env.TwinEnv` interface
    used by the episode runner (reset, observation, set_joint_targets, step_control, ...)."""

    _ARM_JOINTS = tuple(f"panda_joint{i}" for i in range(1, 8))
    _FINGERS = ("panda_finger_joint1", "panda_finger_joint2")
    _EFFORT = (87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0)

    def __init__(self, config: BulletConfig = BulletConfig()) -> None:
        from robostack.sim.arms.panda import HOME
        from robostack.sim.scene import build_scene

        self.config = config
        self.task = get_task(config.task)
        # The MuJoCo arm description carries the shared constants (workspace, limits, home).
        self.arm = build_scene(config.arm).arm
        self.home = np.asarray(HOME, dtype=np.float64)
        self.client = pybullet.connect(pybullet.DIRECT)
        p = self._p
        p(pybullet.setAdditionalSearchPath, pybullet_data.getDataPath())
        p(pybullet.setGravity, 0, 0, -9.81)
        p(pybullet.setTimeStep, config.timestep)
        p(pybullet.setPhysicsEngineParameter, numSolverIterations=80)
        self.robot = p(pybullet.loadURDF, "franka_panda/panda.urdf", [0, 0, 0], [0, 0, 0, 1], useFixedBase=True)
        names = {p(pybullet.getJointInfo, self.robot, j)[1].decode(): j for j in range(p(pybullet.getNumJoints, self.robot))}
        self._arm_idx = [names[n] for n in self._ARM_JOINTS]
        self._finger_idx = [names[n] for n in self._FINGERS]
        self._gripper_links = {names["panda_hand_joint"], *self._finger_idx}
        for link in self._finger_idx:
            p(pybullet.changeDynamics, self.robot, link, lateralFriction=1.5, spinningFriction=0.01)
        self._limits = np.array([p(pybullet.getJointInfo, self.robot, j)[8:10] for j in self._arm_idx + self._finger_idx[:1]])
        table = p(pybullet.createCollisionShape, pybullet.GEOM_BOX, halfExtents=[0.6, 0.75, 0.02])
        table_vis = p(pybullet.createVisualShape, pybullet.GEOM_BOX, halfExtents=[0.6, 0.75, 0.02], rgbaColor=[0.62, 0.5, 0.38, 1])
        self._table = p(pybullet.createMultiBody, 0, table, table_vis, [0.35, 0, TABLE_TOP_Z - 0.02])
        self._bodies: dict[str, int] = {}
        size = self.arm.workspace.cube_size
        for name in self.task.movable_objects:
            color = name.removeprefix("cube_")
            shape = p(pybullet.createCollisionShape, pybullet.GEOM_BOX, halfExtents=[size / 2] * 3)
            visual = p(pybullet.createVisualShape, pybullet.GEOM_BOX, halfExtents=[size / 2] * 3, rgbaColor=CUBE_COLORS[color])
            body = p(pybullet.createMultiBody, 0.05, shape, visual, [0, 0, size / 2])
            p(pybullet.changeDynamics, body, -1, lateralFriction=1.2, spinningFriction=0.005)
            self._bodies[name] = body
        if "bin" in self.task.fixtures:
            self._bodies["bin"] = self._make_bin()
        self.layout: Layout | None = None
        self.steps_per_control = int(round(1.0 / (config.control_hz * config.timestep)))
        self._steps = 0

    def _p(self, fn, *args, **kwargs):  # every call goes to this env's own physics client
        return fn(*args, physicsClientId=self.client, **kwargs)

    def _make_bin(self) -> int:
        ws = self.arm.workspace
        inner, height = bin_inner_half(ws), bin_wall_height(ws)
        parts = [((inner + BIN_WALL, inner + BIN_WALL, BIN_FLOOR / 2), (0, 0, BIN_FLOOR / 2))]
        for sign in (-1, 1):
            parts.append(((BIN_WALL / 2, inner + BIN_WALL, height / 2), (sign * (inner + BIN_WALL / 2), 0, height / 2)))
            parts.append(((inner, BIN_WALL / 2, height / 2), (0, sign * (inner + BIN_WALL / 2), height / 2)))
        halves = [list(h) for h, _ in parts]
        offsets = [list(o) for _, o in parts]
        shape = self._p(pybullet.createCollisionShapeArray, [pybullet.GEOM_BOX] * len(parts), halfExtents=halves, collisionFramePositions=offsets)
        visual = self._p(
            pybullet.createVisualShapeArray,
            [pybullet.GEOM_BOX] * len(parts),
            halfExtents=halves,
            visualFramePositions=offsets,
            rgbaColors=[[0.25, 0.6, 0.3, 1]] * len(parts),
        )
        return self._p(pybullet.createMultiBody, 0, shape, visual, [0, 0, 0])

    # -- episode ---------------------------------------------------------------------------
    def reset(self, seed: int) -> Observation:
        self.layout = self.task.sample_layout(seed, self.arm.workspace)
        self._steps = 0
        for index, q in zip(self._arm_idx, self.home[:7]):
            self._p(pybullet.resetJointState, self.robot, index, q, 0.0)
        for index in self._finger_idx:
            self._p(pybullet.resetJointState, self.robot, index, self.home[7], 0.0)
        for name, pose in self.layout.poses.items():
            body = self._bodies[name]
            self._p(pybullet.resetBasePositionAndOrientation, body, pose.pos, _xyzw(pose.quat()))
            self._p(pybullet.resetBaseVelocity, body, [0, 0, 0], [0, 0, 0])
        self.set_joint_targets(self.home)
        return self.observation()

    @property
    def instruction(self) -> str:
        if self.layout is None:
            raise RuntimeError("call reset(seed) before using the episode")
        return self.layout.instruction

    @property
    def time_limit_s(self) -> float:
        return self.task.time_limit_s

    @property
    def control_dt(self) -> float:
        return 1.0 / self.config.control_hz

    @property
    def time_ns(self) -> int:
        return int(round(self._steps * self.config.timestep * 1e9))

    def set_joint_targets(self, targets: np.ndarray) -> None:
        targets = np.asarray(targets, dtype=np.float64)
        if targets.shape != (8,):
            raise ValueError(f"joint targets must have shape (8,), got {targets.shape}")
        if not np.all(np.isfinite(targets)):
            raise ValueError(f"joint targets must be finite, got {targets}")
        targets = np.clip(targets, self._limits[:, 0], self._limits[:, 1])
        self._p(
            pybullet.setJointMotorControlArray,
            self.robot,
            self._arm_idx,
            pybullet.POSITION_CONTROL,
            targetPositions=targets[:7].tolist(),
            forces=list(self._EFFORT),
            positionGains=[0.3] * 7,
        )
        self._p(
            pybullet.setJointMotorControlArray,
            self.robot,
            self._finger_idx,
            pybullet.POSITION_CONTROL,
            targetPositions=[targets[7]] * 2,
            forces=[40.0, 40.0],
            positionGains=[0.2, 0.2],
        )

    def step(self, n_steps: int = 1) -> None:
        for _ in range(n_steps):
            self._p(pybullet.stepSimulation)
        self._steps += n_steps

    def step_control(self) -> None:
        self.step(self.steps_per_control)

    # -- reading ---------------------------------------------------------------------------
    def joint_state(self) -> JointState:
        states = self._p(pybullet.getJointStates, self.robot, self._arm_idx + self._finger_idx[:1])
        return JointState(
            names=(*self._ARM_JOINTS, "panda_finger_joint1"),
            position=np.array([s[0] for s in states]),
            velocity=np.array([s[1] for s in states]),
            stamp_ns=self.time_ns,
            effort=np.array([s[3] for s in states]),
        )

    def world_state(self) -> WorldState:
        positions, quats = {}, {}
        for name, body in self._bodies.items():
            pos, orn = self._p(pybullet.getBasePositionAndOrientation, body)
            positions[name] = np.array(pos)
            quats[name] = _wxyz(orn)
        touching = set()
        for name, body in self._bodies.items():
            for contact in self._p(pybullet.getContactPoints, self.robot, body):
                if contact[3] in self._gripper_links:
                    touching.add(name)
        return WorldState(positions=positions, quats=quats, touching_gripper=frozenset(touching))

    def is_success(self) -> bool:
        if self.layout is None:
            raise RuntimeError("call reset(seed) before using the episode")
        return self.task.is_success(self.layout, self.world_state(), self.arm.workspace)

    def observation(self) -> Observation:
        state = self.joint_state()
        world = self.world_state()
        obs: dict[str, np.ndarray] = {
            "state": state.position.astype(np.float32),
            "velocity": state.velocity.astype(np.float32),
            "instruction": np.array(self.instruction),
        }
        for name in self._bodies:
            obs[f"priv/{name}"] = np.concatenate([world.positions[name], world.quats[name]])
        return obs

    def render(self, camera: str, height: int | None = None, width: int | None = None) -> np.ndarray:
        """RGB image from one of the fixed scene cameras (TinyRenderer, CPU)."""
        poses = camera_poses(self.arm.workspace)
        if camera not in poses:
            raise ValueError(f"unknown camera {camera!r}; the PyBullet backend renders {sorted(poses)}")
        h, w = height or self.config.image_size[0], width or self.config.image_size[1]
        pos, lookat = poses[camera]
        up = [0, 0, 1] if camera != "top" else [-1, 0, 0]
        view = self._p(pybullet.computeViewMatrix, pos.tolist(), lookat.tolist(), up)
        proj = self._p(pybullet.computeProjectionMatrixFOV, CAMERA_FOVY, w / h, 0.01, 5.0)
        _, _, rgba, _, _ = self._p(pybullet.getCameraImage, w, h, view, proj, renderer=pybullet.ER_TINY_RENDERER)
        return np.asarray(rgba, dtype=np.uint8).reshape(h, w, 4)[:, :, :3].copy()

    def close(self) -> None:
        if self.client >= 0:
            pybullet.disconnect(physicsClientId=self.client)
            self.client = -1
