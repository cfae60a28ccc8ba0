"""Rendered layout views from the real twin: one per seed, labelled with the seed's object poses,
the arm at a pose drawn from the given joint states."""

from __future__ import annotations

import numpy as np
import pytest

from robostack.sim.arms.panda import WORKSPACE as PANDA_WORKSPACE
from robostack.sim.layout_rendering import object_target_names, object_targets, render_layout_views
from robostack.sim.tasks import get_task


def test_views_show_each_seeds_layout_labelled_with_its_object_poses():
    from robostack.sim.env import TwinConfig, TwinEnv

    env = TwinEnv(TwinConfig(task="pick_place"))
    home = env.arm.home_array()
    reached = home + np.r_[0.3, 0.2, 0, 0, 0, 0, 0.5, 0.0]
    arm_states = np.stack([home, reached])
    views = render_layout_views("pick_place", [7, 8, 9], arm_states, ["front", "wrist"], (48, 64), seed=1)
    assert len(views) == 3 and views.images["image/wrist"].shape == (3, 48, 64, 3)
    task = get_task("pick_place")
    assert views.target_names == object_target_names(task, instructed=1)
    for row, seed in enumerate((7, 8, 9)):
        env.reset(seed)
        np.testing.assert_allclose(views.targets[row], object_targets(task, env.layout, env.arm.workspace), atol=1e-6)
        assert views.instructions[row] == env.instruction
        # the arm is where one of the given states puts it (the gripper joint is the last one)
        assert min(np.abs(views.state[row] - s).max() for s in arm_states) < 1e-5
    env.close()
    # layouts differ, so the front camera's pictures do
    front = views.images["image/front"].astype(int)
    assert np.abs(front[0] - front[1]).mean() > 1
    red_x = views.targets[:, views.target_names.index("cube_red.x")]
    assert np.all(np.abs(red_x) <= 1.0) and len(set(red_x.round(4))) == 3


def test_views_label_the_cube_the_instruction_names_by_role():
    home = np.array([[0, -0.3, 0, -2.2, 0, 1.9, 0.785, 0.04]])
    views = render_layout_views("pick_place", list(range(6)), home, ["front"], (24, 32))
    column = {name: views.targets[:, i] for i, name in enumerate(views.target_names)}
    colors = [("red" if "red" in text else "blue") for text in views.instructions]
    assert len(set(colors)) == 2  # both cubes get named over these seeds
    for row, color in enumerate(colors):
        for field in ("x", "y", "cos4yaw", "sin4yaw"):
            assert column[f"instructed0.{field}"][row] == column[f"cube_{color}.{field}"][row]


def test_stack_names_the_top_cube_first_then_the_base():
    task = get_task("stack")
    layout = task.sample_layout(3, PANDA_WORKSPACE)
    top, base = task.instructed_objects(layout)
    assert layout.instruction == f"stack the {top.removeprefix('cube_')} cube on the {base.removeprefix('cube_')} cube"
    assert object_target_names(task, 2)[-8:] == tuple(f"instructed{i}.{f}" for i in (0, 1) for f in ("x", "y", "cos4yaw", "sin4yaw"))


def test_arm_states_of_the_wrong_size_are_refused():
    with pytest.raises(ValueError, match="arm_states have 3 joints"):
        render_layout_views("pick_place", [0], np.zeros((2, 3)), ["front"], (48, 64))
    with pytest.raises(ValueError, match="no seeds"):
        render_layout_views("pick_place", [], np.zeros((2, 8)), ["front"], (48, 64))
