"""Gymnasium environments over the twin's tasks. Importing this module registers:

- ``robostack/PickPlace-v0`` (task ``pick_place``)
- ``robostack/Stack-v0`` (task ``stack``)

``gymnasium.make("robostack.sim.gym_envs:robostack/PickPlace-v0")`` imports it on demand.
Actions are absolute joint position targets (arm joints + gripper); the reward is sparse
(1 on success, which also terminates the episode); the task's time limit truncates.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from robostack.sim.env import TwinConfig, TwinEnv

ENV_IDS = {"robostack/PickPlace-v0": "pick_place", "robostack/Stack-v0": "stack"}


class TwinGymEnv(gymnasium.Env):
    """A :class:`~robostack.sim.env.TwinEnv` task as a Gymnasium environment."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(
        self,
        task: str = "pick_place",
        arm: str = "panda",
        cameras: tuple[str, ...] = ("front", "wrist"),
        image_size: tuple[int, int] = (96, 96),
        privileged: bool = False,
        render_mode: str | None = None,
        control_hz: float = 20.0,
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.twin = TwinEnv(TwinConfig(task=task, arm=arm, obs_cameras=tuple(cameras), image_size=image_size, control_hz=control_hz))
        self.render_mode = render_mode
        self.privileged = privileged
        self.metadata = {**self.metadata, "render_fps": int(control_hz)}
        ranges = self.twin.model.actuator_ctrlrange[[self.twin.model.actuator(a).id for a in self.twin.arm.actuators]]
        self.action_space = spaces.Box(ranges[:, 0].astype(np.float32), ranges[:, 1].astype(np.float32), dtype=np.float32)
        dim = self.twin.arm.action_dim
        obs_spaces: dict[str, spaces.Space] = {
            "state": spaces.Box(-np.inf, np.inf, (dim,), np.float32),
            "velocity": spaces.Box(-np.inf, np.inf, (dim,), np.float32),
        }
        for camera in cameras:
            obs_spaces[f"image/{camera}"] = spaces.Box(0, 255, (*image_size, 3), np.uint8)
        if privileged:
            for name in (*self.twin.task.movable_objects, *self.twin.task.fixtures):
                obs_spaces[f"priv/{name}"] = spaces.Box(-np.inf, np.inf, (7,), np.float64)
        self.observation_space = spaces.Dict(obs_spaces)

    def _obs(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {key: raw[key] for key in self.observation_space.spaces}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        episode_seed = int(self.np_random.integers(0, 2**31 - 1)) if seed is None else int(seed)
        raw = self.twin.reset(episode_seed)
        return self._obs(raw), {"instruction": self.twin.instruction, "episode_seed": episode_seed}

    def step(self, action: np.ndarray):
        self.twin.set_joint_targets(np.asarray(action, dtype=np.float64))
        self.twin.step_control()
        raw = self.twin.observation()
        success = self.twin.is_success()
        truncated = self.twin.time_ns >= int(self.twin.time_limit_s * 1e9)
        info = {"is_success": success, "instruction": self.twin.instruction}
        return self._obs(raw), float(success), success, truncated and not success, info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        return self.twin.render("front", 240, 320)

    def close(self) -> None:
        self.twin.close()


def register_envs() -> None:
    """Register every id of ``ENV_IDS`` (idempotent)."""
    for env_id, task in ENV_IDS.items():
        if env_id not in gymnasium.registry:
            gymnasium.register(id=env_id, entry_point=f"{__name__}:TwinGymEnv", kwargs={"task": task})


register_envs()
