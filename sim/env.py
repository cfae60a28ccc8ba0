"""The MuJoCo twin environment: a task scene stepped in lockstep, with joint targets in and joint
state, camera images and task status out. Sim arm/camera nodes and the evaluation runner call it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import mujoco
import numpy as np

from robostack.chunks import Observation
from robostack.sim.arms.base import ArmInfo
from robostack.sim.rendering import CameraRenderer
from robostack.sim.scene import build_scene
from robostack.sim.tasks import get_task
from robostack.sim.tasks.base import Layout, WorldState


@dataclass(frozen=True)
class TwinConfig:
    """What scene to build and how to step and observe it."""

    task: str = "pick_place"
    arm: str = "panda"
    timestep: float = 0.002
    control_hz: float = 20.0
    obs_cameras: tuple[str, ...] = ()
    """Cameras rendered into every observation (``"wrist"`` is the hand camera)."""
    image_size: tuple[int, int] = (224, 224)
    """(height, width) of observation images."""

    def __post_init__(self) -> None:
        if self.control_hz <= 0:
            raise ValueError(f"control_hz must be > 0, got {self.control_hz}")
        steps = 1.0 / (self.control_hz * self.timestep)
        if abs(steps - round(steps)) > 1e-6:
            raise ValueError(
                f"control period 1/{self.control_hz} s must be a whole number of {self.timestep} s physics steps"
            )


@dataclass(frozen=True)
class JointState:
    """Arm joint state at sim time ``stamp_ns`` (arm joints then the gripper joint)."""

    names: tuple[str, ...]
    position: np.ndarray
    velocity: np.ndarray
    stamp_ns: int
    effort: np.ndarray = field(default_factory=lambda: np.zeros(0))


class TwinEnv:
    """A seeded task episode in MuJoCo. Deterministic: the same seed and the same targets give
    the same trajectory. Sim time only advances in :meth:`step` / :meth:`advance`."""

    def __init__(self, config: TwinConfig = TwinConfig()) -> None:
        self.config = config
        self.task = get_task(config.task)
        scene = build_scene(config.arm, self.task, config.timestep)
        self.model: mujoco.MjModel = scene.model
        self.data = mujoco.MjData(self.model)
        self.arm: ArmInfo = scene.arm
        self.layout: Layout | None = None
        self._joint_qpos = np.array(
            [self.model.joint(j).qposadr[0] for j in (*self.arm.arm_joints, self.arm.gripper_joint)]
        )
        self._joint_dof = np.array(
            [self.model.joint(j).dofadr[0] for j in (*self.arm.arm_joints, self.arm.gripper_joint)]
        )
        self._actuator_ids = np.array([self.model.actuator(a).id for a in self.arm.actuators])
        self._ctrl_range = self.model.actuator_ctrlrange[self._actuator_ids]
        self._body_ids = {
            name: self.model.body(name).id for name in (*self.task.movable_objects, *self.task.fixtures)
        }
        self._gripper_body_ids = {self.model.body(b).id for b in self.arm.gripper_bodies}
        self._renderer: CameraRenderer | None = None
        self.steps_per_control = int(round(1.0 / (config.control_hz * config.timestep)))

    # -- episode ---------------------------------------------------------------------------
    def reset(self, seed: int) -> Observation:
        """Start the episode for ``seed``: arm at home, objects where the seed puts them."""
        self.layout = self.task.sample_layout(seed, self.arm.workspace)
        mujoco.mj_resetData(self.model, self.data)
        home = self.arm.home_array()
        self.data.qpos[self._joint_qpos] = home
        self._sync_coupled_joints()
        self.data.ctrl[self._actuator_ids] = home
        for name, pose in self.layout.poses.items():
            body = self.model.body(name)
            if self.model.body_mocapid[body.id] >= 0:
                mocap = self.model.body_mocapid[body.id]
                self.data.mocap_pos[mocap] = pose.pos
                self.data.mocap_quat[mocap] = pose.quat()
            else:
                joint = self.model.joint(f"{name}_free")
                adr = joint.qposadr[0]
                self.data.qpos[adr : adr + 3] = pose.pos
                self.data.qpos[adr + 3 : adr + 7] = pose.quat()
        mujoco.mj_forward(self.model, self.data)
        return self.observation()

    def _sync_coupled_joints(self) -> None:
        # Mimic joints (the Panda's second finger) follow their equality constraint from the start.
        for eq in range(self.model.neq):
            if self.model.eq_type[eq] == mujoco.mjtEq.mjEQ_JOINT:
                a = self.model.jnt_qposadr[self.model.eq_obj1id[eq]]
                b = self.model.jnt_qposadr[self.model.eq_obj2id[eq]]
                self.data.qpos[a] = self.data.qpos[b]

    @property
    def instruction(self) -> str:
        return self._require_layout().instruction

    @property
    def time_limit_s(self) -> float:
        return self.task.time_limit_s

    @property
    def control_dt(self) -> float:
        return 1.0 / self.config.control_hz

    @property
    def time_ns(self) -> int:
        """Sim time since reset, in integer nanoseconds (the stamp clock in lockstep mode)."""
        return int(round(self.data.time * 1e9))

    # -- actuation and stepping ------------------------------------------------------------
    def set_joint_targets(self, targets: np.ndarray) -> None:
        """Absolute joint position targets (arm joints + gripper), clipped to the joint limits."""
        targets = np.asarray(targets, dtype=np.float64)
        if targets.shape != (self.arm.action_dim,):
            raise ValueError(f"joint targets must have shape ({self.arm.action_dim},), got {targets.shape}")
        if not np.all(np.isfinite(targets)):
            raise ValueError(f"joint targets must be finite, got {targets}")
        self.data.ctrl[self._actuator_ids] = np.clip(targets, self._ctrl_range[:, 0], self._ctrl_range[:, 1])

    def set_joint_positions(self, positions: np.ndarray) -> None:
        """Put the arm (joints + gripper) at ``positions`` kinematically, without physics: for
        rendering a pose, not for running an episode (no time passes, the targets are unchanged)."""
        positions = np.asarray(positions, dtype=np.float64)
        if positions.shape != (len(self._joint_qpos),):
            raise ValueError(f"joint positions must have shape ({len(self._joint_qpos)},), got {positions.shape}")
        if not np.all(np.isfinite(positions)):
            raise ValueError(f"joint positions must be finite, got {positions}")
        self.data.qpos[self._joint_qpos] = positions
        self._sync_coupled_joints()
        mujoco.mj_forward(self.model, self.data)

    def step(self, n_steps: int = 1) -> None:
        """Advance physics by ``n_steps`` timesteps."""
        if n_steps < 0:
            raise ValueError(f"n_steps must be >= 0, got {n_steps}")
        if n_steps:
            mujoco.mj_step(self.model, self.data, nstep=n_steps)

    def advance(self, duration_s: float) -> None:
        """Advance physics by ``duration_s`` (rounded to whole timesteps)."""
        self.step(int(round(duration_s / self.model.opt.timestep)))

    def step_control(self) -> None:
        """Advance one control period (``1/control_hz``)."""
        self.step(self.steps_per_control)

    # -- reading ---------------------------------------------------------------------------
    def joint_state(self) -> JointState:
        return JointState(
            names=(*self.arm.arm_joints, self.arm.gripper_joint),
            position=self.data.qpos[self._joint_qpos].copy(),
            velocity=self.data.qvel[self._joint_dof].copy(),
            stamp_ns=self.time_ns,
            effort=self.data.actuator_force[self._actuator_ids].copy(),
        )

    def world_state(self) -> WorldState:
        positions = {name: self.data.xpos[i].copy() for name, i in self._body_ids.items()}
        quats = {name: self.data.xquat[i].copy() for name, i in self._body_ids.items()}
        return WorldState(positions=positions, quats=quats, touching_gripper=self._touching_gripper())

    def _touching_gripper(self) -> frozenset[str]:
        touching = set()
        names = {i: name for name, i in self._body_ids.items()}
        for contact in self.data.contact[: self.data.ncon]:
            b1 = self.model.geom_bodyid[contact.geom1]
            b2 = self.model.geom_bodyid[contact.geom2]
            if b1 in self._gripper_body_ids and b2 in names:
                touching.add(names[b2])
            elif b2 in self._gripper_body_ids and b1 in names:
                touching.add(names[b1])
        return frozenset(touching)

    def is_success(self) -> bool:
        return self.task.is_success(self._require_layout(), self.world_state(), self.arm.workspace)

    def render(self, camera: str | mujoco.MjvCamera, height: int | None = None, width: int | None = None) -> np.ndarray:
        """RGB image from a named camera (``front``, ``top``, ``side``, ``wrist``) or a free camera."""
        if self._renderer is None:
            self._renderer = CameraRenderer(self.model)
        h, w = self.config.image_size
        return self._renderer.render(self.data, camera, height or h, width or w)

    def observation(self) -> Observation:
        """``state`` (joint positions, float32), ``velocity``, ``image/<camera>`` for the configured
        cameras, ``instruction`` (0-d str array) and privileged ``priv/<object>`` poses
        (x, y, z, qw, qx, qy, qz) that only scripted experts should read."""
        state = self.joint_state()
        obs: dict[str, np.ndarray] = {
            "state": state.position.astype(np.float32),
            "velocity": state.velocity.astype(np.float32),
            "instruction": np.array(self.instruction),
        }
        for camera in self.config.obs_cameras:
            obs[f"image/{camera}"] = self.render(camera)
        for name, body in self._body_ids.items():
            obs[f"priv/{name}"] = np.concatenate([self.data.xpos[body], self.data.xquat[body]])
        return obs

    def _require_layout(self) -> Layout:
        if self.layout is None:
            raise RuntimeError("call reset(seed) before using the episode")
        return self.layout

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
