"""Environment factory per physics engine (``mujoco`` or ``pybullet``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from robostack.sim.episode import EpisodeEnv

ENGINES = ("mujoco", "pybullet")


def make_env(engine: str, task: str, arm: str = "panda", control_hz: float = 20.0) -> EpisodeEnv:
    """A fresh episode environment for ``task`` on ``engine``."""
    if engine == "mujoco":
        from robostack.sim.env import TwinConfig, TwinEnv

        return TwinEnv(TwinConfig(task=task, arm=arm, control_hz=control_hz))
    if engine == "pybullet":
        from robostack.sim.bullet_env import BulletConfig, BulletEnv

        return BulletEnv(BulletConfig(task=task, arm=arm, control_hz=control_hz))
    raise ValueError(f"unknown engine {engine!r}; choose one of {ENGINES}")
