"""Render many seeded task layouts, each labelled with where its objects are: the views file of
:mod:`robostack.policies.layout_views`, extra localization data for a policy's encoders.

Each view is one seed's layout (objects as :meth:`Task.sample_layout` places them, the
instruction it draws) with the arm put kinematically at a pose drawn from ``arm_states`` (the
joint states of the demos, so the wrist camera sees the table from where the policy will).
Targets per movable object: x, y (scaled to the workspace, about [-1, 1]) and cos 4ψ, sin 4ψ of
its yaw (a cube looks the same every quarter turn); per fixture: x, y.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from robostack.policies.layout_views import LayoutViews
from robostack.sim.arms.base import Workspace
from robostack.sim.tasks.base import Layout, Task


def object_target_names(task: Task) -> tuple[str, ...]:
    names: list[str] = []
    for obj in task.movable_objects:
        names += [f"{obj}.x", f"{obj}.y", f"{obj}.cos4yaw", f"{obj}.sin4yaw"]
    for fixture in task.fixtures:
        names += [f"{fixture}.x", f"{fixture}.y"]
    return tuple(names)


def object_targets(task: Task, layout: Layout, workspace: Workspace) -> np.ndarray:
    """The layout's object poses as the targets named by :func:`object_target_names`."""
    center = np.asarray(workspace.center_xy)
    half = np.asarray(workspace.half_extent_xy)
    values: list[float] = []
    for name in (*task.movable_objects, *task.fixtures):
        pose = layout.poses[name]
        values += list((np.asarray(pose.pos[:2]) - center) / half)
        if name in task.movable_objects:
            values += [float(np.cos(4 * pose.yaw)), float(np.sin(4 * pose.yaw))]
    return np.asarray(values, np.float32)


def render_layout_views(
    task: str,
    seeds: Sequence[int],
    arm_states: np.ndarray,
    cameras: Sequence[str],
    image_size: tuple[int, int],
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> LayoutViews:
    """One view per seed in ``seeds``, the arm at a random row of ``arm_states`` (``(M, D)``
    joint positions, arm joints + gripper), ``cameras`` rendered at ``image_size``."""
    from robostack.sim.env import TwinConfig, TwinEnv

    arm_states = np.asarray(arm_states, np.float64)
    if arm_states.ndim != 2 or len(arm_states) == 0:
        raise ValueError(f"arm_states must be a non-empty (M, D) array, got shape {arm_states.shape}")
    if not seeds:
        raise ValueError("no seeds to render")
    env = TwinEnv(TwinConfig(task=task, obs_cameras=tuple(cameras), image_size=image_size))
    if arm_states.shape[1] != env.arm.action_dim:
        env.close()
        raise ValueError(f"arm_states have {arm_states.shape[1]} joints, the {env.config.arm} arm has {env.arm.action_dim}")
    names = object_target_names(env.task)
    rng = np.random.default_rng(seed)
    images: dict[str, list[np.ndarray]] = {f"image/{c}": [] for c in cameras}
    states, instructions, targets = [], [], []
    try:
        for s in seeds:
            env.reset(int(s))
            env.set_joint_positions(arm_states[rng.integers(len(arm_states))])
            obs = env.observation()
            for key in images:
                images[key].append(obs[key])
            states.append(obs["state"])
            instructions.append(env.instruction)
            targets.append(object_targets(env.task, env.layout, env.arm.workspace))  # type: ignore[arg-type]
            if progress:
                progress(1)
    finally:
        env.close()
    return LayoutViews(
        images={k: np.stack(v) for k, v in images.items()},
        state=np.stack(states).astype(np.float32),
        instructions=np.asarray(instructions),
        targets=np.stack(targets),
        target_names=names,
    )
