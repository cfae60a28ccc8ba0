"""The world topic: a copy of the scene rebuilt from a world message renders the same image."""

import mujoco
import numpy as np
import pytest

from robostack.params import ParamError, build_params
from robostack.sim.env import TwinConfig, TwinEnv
from robostack.sim.nodes.arm import SimArmParams
from robostack.sim.nodes.camera import SimCameraParams
from robostack.sim.nodes.world import apply_world, task_bodies, world_from_message, world_message_parts
from robostack.sim.rendering import CameraRenderer
from robostack.sim.scene import build_scene
from robostack.sim.tasks import get_task


@pytest.fixture(scope="module")
def moved_env():
    env = TwinEnv(TwinConfig(task="pick_place", arm="panda"))
    env.reset(seed=5)
    targets = env.arm.home_array() + np.array([0.3, 0.2, -0.2, 0.3, 0.1, -0.2, 0.4, -0.02])
    env.set_joint_targets(targets)
    env.advance(0.5)
    # After mj_step, body poses lag qpos by one step; the copy is set from qpos, so compare with
    # poses recomputed from qpos as well.
    mujoco.mj_forward(env.model, env.data)
    yield env
    env.close()


def parts(env, **kw):
    return world_message_parts(env.model, env.data, arm="panda", task="pick_place",
                               objects=task_bodies(env.model, env.task), episode=3, seed=5, phase="running",
                               instruction=env.instruction, **kw)


def test_a_scene_copy_set_from_the_world_message_renders_the_same_pixels(moved_env):
    arrays, meta = parts(moved_env)
    world = world_from_message(arrays, meta, stamp_ns=123)
    scene = build_scene(world.arm, get_task(world.task))
    data = mujoco.MjData(scene.model)
    apply_world(scene.model, data, world)
    copy_renderer = CameraRenderer(scene.model)
    try:
        for camera in ("front", "wrist"):
            expected = moved_env.render(camera, 120, 160)
            got = copy_renderer.render(data, camera, 120, 160)
            assert np.array_equal(got, expected), camera
    finally:
        copy_renderer.close()
    assert world.stamp_ns == 123 and world.sim_time_ns == moved_env.time_ns


def test_world_carries_object_poses_as_the_expert_observation_has_them(moved_env):
    world = world_from_message(*parts(moved_env, ack=17))
    obs = moved_env.observation()
    priv = world.priv_observation()
    assert sorted(priv) == sorted(k for k in obs if k.startswith("priv/"))
    for key, pose in priv.items():
        np.testing.assert_allclose(pose, obs[key])
    assert (world.episode, world.seed, world.phase, world.ack) == (3, 5, "running", 17)


def test_malformed_world_messages_are_refused_with_what_is_wrong(moved_env):
    arrays, meta = parts(moved_env)
    with pytest.raises(ValueError, match="'qpos'"):
        world_from_message({k: v for k, v in arrays.items() if k != "qpos"}, meta)
    with pytest.raises(ValueError, match="lacks \\['episode'\\]"):
        world_from_message(arrays, {k: v for k, v in meta.items() if k != "episode"})
    with pytest.raises(ValueError, match="object_poses"):
        world_from_message({**arrays, "object_poses": np.zeros((1, 7))}, meta)


def test_a_world_from_another_scene_is_refused(moved_env):
    world = world_from_message(*parts(moved_env))
    other = build_scene("panda", get_task("stack"))
    with pytest.raises(ValueError, match="this scene has nq="):
        apply_world(other.model, mujoco.MjData(other.model), world)


def test_node_params_are_checked_before_anything_starts():
    with pytest.raises(ParamError, match="unknown task 'pickplace'"):
        build_params(SimArmParams, {"task": "pickplace"})
    with pytest.raises(ParamError, match="unknown arm 'ur5'"):
        build_params(SimArmParams, {"arm": "ur5"})
    with pytest.raises(ParamError, match="whole number of 0.002 s physics steps"):
        build_params(SimArmParams, {"rate_hz": 30})
    with pytest.raises(ParamError, match="'mode'"):
        build_params(SimArmParams, {"mode": "fast"})
    with pytest.raises(ParamError, match="width"):
        build_params(SimCameraParams, {"width": 5000})
