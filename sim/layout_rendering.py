"""Render many seeded task layouts, each labelled with where its objects are: the views file of
:mod:`robostack.policies.layout_views`, extra localization data for a policy's encoders.

Each view is one seed's layout (objects as :meth:`Task.sample_layout` places them, the
instruction it draws) with the arm put kinematically at a pose drawn from ``arm_states`` (the
joint states of the demos, so the wrist camera sees the table from where the policy will).
Targets per movable object: x, y (scaled to the workspace, about [-1, 1]) and cos 4ψ, sin 4ψ of
its yaw (a cube looks the same every quarter turn); per fixture: x, y. Then the same four for
each object the instruction names, by role (``instructed0.*``: the object to move first), so a
policy can be conditioned on *the named cube's* pose without having to pick it out of all the
cubes' by the instruction itself.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from robostack.policies.layout_views import LayoutViews
from robostack.sim.arms.base import Workspace
from robostack.sim.tasks.base import Layout, Task


POSE_FIELDS = ("x", "y", "cos4yaw", "sin4yaw")
"""A movable object's targets; a fixture has only x, y."""


def object_target_names(task: Task, instructed: int = 0) -> tuple[str, ...]:
    """Target names of ``task``'s layouts, with ``instructed`` objects named by role
    (``instructed<i>.*``) after the objects named by scene name."""
    names: list[str] = []
    for obj in task.movable_objects:
        names += [f"{obj}.{f}" for f in POSE_FIELDS]
    for fixture in task.fixtures:
        names += [f"{fixture}.x", f"{fixture}.y"]
    for i in range(instructed):
        names += [f"instructed{i}.{f}" for f in POSE_FIELDS]
    return tuple(names)


def object_targets(task: Task, layout: Layout, workspace: Workspace) -> np.ndarray:
    """The layout's object poses as the targets named by :func:`object_target_names` (with
    ``instructed = len(task.instructed_objects(layout))``)."""
    center = np.asarray(workspace.center_xy)
    half = np.asarray(workspace.half_extent_xy)
    values: list[float] = []
    for name in (*task.movable_objects, *task.fixtures, *task.instructed_objects(layout)):
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
        # Every layout of a task names as many objects: the target vector has one size.
        names = object_target_names(env.task, len(env.task.instructed_objects(env.layout)))  # type: ignore[arg-type]
    finally:
        env.close()
    return LayoutViews(
        images={k: np.stack(v) for k, v in images.items()},
        state=np.stack(states).astype(np.float32),
        instructions=np.asarray(instructions),
        targets=np.stack(targets),
        target_names=names,
    )
