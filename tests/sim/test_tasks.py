import mujoco
import numpy as np
import pytest

from robostack.sim.env import TwinConfig, TwinEnv
from robostack.sim.tasks import get_task, task_names
from robostack.sim.tasks.base import named_color


def test_builtin_tasks_are_registered():
    assert {"pick_place", "stack"} <= set(task_names())


def test_unknown_task_error_lists_known_tasks():
    with pytest.raises(ValueError, match="pick_place"):
        get_task("pour")


@pytest.mark.parametrize("task", ["pick_place", "stack"])
def test_layout_is_a_pure_function_of_the_seed(task):
    env = TwinEnv(TwinConfig(task=task))
    workspace = env.arm.workspace
    a = env.task.sample_layout(7, workspace)
    b = env.task.sample_layout(7, workspace)
    c = env.task.sample_layout(8, workspace)
    assert a == b
    assert a.poses != c.poses


@pytest.mark.parametrize("task", ["pick_place", "stack"])
def test_layouts_keep_cubes_in_the_workspace_and_apart(task):
    env = TwinEnv(TwinConfig(task=task))
    ws = env.arm.workspace
    colors = set()
    for seed in range(50):
        layout = env.task.sample_layout(seed, ws)
        red = np.array(layout.poses["cube_red"].pos)
        blue = np.array(layout.poses["cube_blue"].pos)
        for pos in (red, blue):
            assert np.all(np.abs(pos[:2] - ws.center_xy) <= np.array(ws.half_extent_xy) + 1e-9)
        assert np.linalg.norm(red[:2] - blue[:2]) >= 2 * ws.cube_size
        colors.add(named_color(layout.instruction))
    assert colors == {"red", "blue"}


def _teleport(env: TwinEnv, body: str, pos) -> None:
    adr = env.model.joint(f"{body}_free").qposadr[0]
    env.data.qpos[adr : adr + 3] = pos
    env.data.qpos[adr + 3 : adr + 7] = [1, 0, 0, 0]
    env.data.qvel[:] = 0
    mujoco.mj_forward(env.model, env.data)


def _bin_seed(env: TwinEnv, target: str) -> int:
    return next(s for s in range(100) if env.task.sample_layout(s, env.arm.workspace).params["target"] == target)


def test_pick_place_succeeds_only_with_the_named_cube_in_the_bin():
    env = TwinEnv(TwinConfig(task="pick_place"))
    seed = _bin_seed(env, "red")
    env.reset(seed)
    assert not env.is_success()
    bin_pos = env.world_state().positions["bin"]
    _teleport(env, "cube_blue", bin_pos + [0, 0, 0.04])
    env.advance(0.5)
    assert not env.is_success(), "the wrong cube in the bin is not a success"
    env.reset(seed)
    _teleport(env, "cube_red", bin_pos + [0, 0, 0.04])
    env.advance(0.5)
    assert env.is_success()


def test_stack_succeeds_only_with_the_named_cube_on_top():
    env = TwinEnv(TwinConfig(task="stack"))
    env.reset(3)
    top, base = env.layout.params["top"], env.layout.params["base"]
    assert not env.is_success()
    size = env.arm.workspace.cube_size
    base_pos = env.world_state().positions[f"cube_{base}"]
    _teleport(env, f"cube_{top}", base_pos + [0, 0, size + 0.002])
    env.advance(0.5)
    assert env.is_success()
    env.reset(3)
    top_pos = env.world_state().positions[f"cube_{top}"]
    _teleport(env, f"cube_{base}", top_pos + [0, 0, size + 0.002])
    env.advance(0.5)
    assert not env.is_success(), "the base cube stacked on the named cube is the wrong way round"


def test_instruction_without_a_colour_is_rejected():
    with pytest.raises(ValueError, match="colour"):
        named_color("put the cube in the bin")


def test_a_new_task_class_plugs_into_the_registry_and_the_env():
    from robostack.sim.tasks import register_task
    from robostack.sim.tasks.base import CUBE_COLORS, Layout, ObjectPose, Task, add_cube

    @register_task
    class LiftProbe(Task):
        name = "lift_probe_for_tests"
        time_limit_s = 2.0
        movable_objects = ("cube_red",)

        def build(self, spec, arm):
            add_cube(spec, "cube_red", arm.workspace.cube_size, CUBE_COLORS["red"], mass=0.05)

        def sample_layout(self, seed, workspace):
            pos = (*workspace.center_xy, workspace.cube_size / 2)
            return Layout(seed, {"cube_red": ObjectPose(pos, 0.0)}, "lift the red cube")

        def is_success(self, layout, state, workspace):
            return bool(state.positions["cube_red"][2] > 0.1)

        def expert_waypoints(self, instruction, positions, yaws, workspace):
            return []

    env = TwinEnv(TwinConfig(task="lift_probe_for_tests"))
    env.reset(0)
    env.advance(0.2)
    assert env.instruction == "lift the red cube"
    assert not env.is_success()
    assert env.world_state().positions["cube_red"][2] == pytest.approx(env.arm.workspace.cube_size / 2, abs=1e-3)
