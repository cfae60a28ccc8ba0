"""Environment factory per physics engine (``mujoco`` or ``pybullet``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from robostack.sim.episode import EpisodeEnv

ENGINES = ("mujoco", "pybullet")


def make_env(
    engine: str,
    task: str,
    arm: str = "panda",
    control_hz: float = 20.0,
    cameras: dict[str, tuple[int, int]] | None = None,
) -> EpisodeEnv:
    """A fresh episode environment for ``task`` on ``engine``; ``cameras`` (``{name: (h, w)}``,
    e.g. what an image policy asks for) are rendered into every observation."""
    size = _common_size(cameras) if cameras else (224, 224)
    if engine == "mujoco":
        from robostack.sim.env import TwinConfig, TwinEnv

        return TwinEnv(TwinConfig(task=task, arm=arm, control_hz=control_hz,
                                  obs_cameras=tuple(cameras or ()), image_size=size))
    if engine == "pybullet":
        from robostack.sim.bullet_env import BulletConfig, BulletEnv

        return BulletEnv(BulletConfig(task=task, arm=arm, control_hz=control_hz, image_size=size))
    raise ValueError(f"unknown engine {engine!r}; choose one of {ENGINES}")


def _common_size(cameras: dict[str, tuple[int, int]]) -> tuple[int, int]:
    sizes = {tuple(int(v) for v in hw) for hw in cameras.values()}
    if len(sizes) != 1:
        raise ValueError(f"cameras must share one image size here, got {sorted(sizes)}")
    return sizes.pop()  # type: ignore[return-value]
