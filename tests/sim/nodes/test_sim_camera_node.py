"""Sim cameras as node processes: frames are renders of the world they were sent, with its stamp."""

import time

import mujoco
import numpy as np
import pytest

from robostack.sim.env import TwinConfig, TwinEnv
from robostack.sim.nodes.world import apply_world, task_bodies, world_from_message, world_message_parts
from robostack.sim.rendering import CameraRenderer
from node_harness import NodeProcess, make_publisher, short_dir

pytestmark = pytest.mark.slow
CAMERA = "robostack.sim.nodes.camera:SimCameraNode"


@pytest.fixture(scope="module")
def env():
    env = TwinEnv(TwinConfig(task="stack", arm="panda"))
    env.reset(seed=1)
    yield env
    env.close()


def worlds(env, n, period_ns=10_000_000, stamp0=0):
    """``n`` world messages of a moving arm, ``period_ns`` apart."""
    out = []
    home = env.arm.home_array()
    for k in range(n):
        env.set_joint_targets(home + 0.3 * np.sin(0.1 * k))
        env.step(5)
        mujoco.mj_forward(env.model, env.data)
        arrays, meta = world_message_parts(env.model, env.data, arm="panda", task="stack",
                                           objects=task_bodies(env.model, env.task), episode=0, seed=1,
                                           phase="running", instruction=env.instruction)
        out.append((stamp0 + k * period_ns, arrays, meta))
    return out


def expected_image(env, arrays, meta, camera, h, w):
    data = mujoco.MjData(env.model)
    apply_world(env.model, data, world_from_message(arrays, meta))
    renderer = CameraRenderer(env.model)
    try:
        return renderer.render(data, camera, h, w)
    finally:
        renderer.close()


def run_camera(params, feed, *, world_mode, pace_s):
    run_dir = short_dir()
    pub, ep, topic = make_publisher(run_dir, "world")
    node = NodeProcess("cam", CAMERA, params, run_dir, inputs={"world": (ep, topic, world_mode)}, outputs={"frames": 1})
    frames = node.subscribe("frames")
    try:
        assert pub.wait_for_subscribers(1, 20.0), node.log
        time.sleep(0.5)  # let the node finish its setup before the first world
        for stamp, arrays, meta in feed:
            pub.publish(arrays, stamp_ns=stamp, meta=meta)
            time.sleep(pace_s)
        got = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            msg = frames.receive(timeout_ms=300)
            if msg is None and got:
                break
            if msg is not None:
                got.append(msg)
    finally:
        rc = node.stop()
        frames.close()
        pub.close()
    assert rc == 0, node.log
    return got


def test_lockstep_camera_renders_on_the_fps_grid_of_sim_time(env):
    feed = worlds(env, 30)
    got = run_camera({"camera": "front", "width": 160, "height": 120, "fps": 30, "mode": "lockstep"}, feed,
                     world_mode="queue", pace_s=0.0)
    stamps = [m.stamp_ns // 1_000_000 for m in got]
    assert stamps == [0, 40, 70, 100, 140, 170, 200, 240, 270]  # first world at or after each 1/30 s
    assert [m.meta["index"] for m in got] == list(range(len(got)))
    by_stamp = {s: (a, m) for s, a, m in feed}
    for msg in got[:3]:
        image = msg["image"]
        assert image.shape == (120, 160, 3) and image.dtype == np.uint8
        assert msg.meta["camera"] == "cam" and msg.meta["flags"] == []
        np.testing.assert_array_equal(image, expected_image(env, *by_stamp[msg.stamp_ns], "front", 120, 160))


def test_realtime_camera_samples_the_newest_world_at_its_fps(env):
    now = time.monotonic_ns()
    feed = worlds(env, 100, stamp0=now)
    got = run_camera({"camera": "wrist", "width": 128, "height": 96, "fps": 20}, feed, world_mode="latest",
                     pace_s=0.01)
    assert 10 <= len(got) <= 26, len(got)  # ~1 s of worlds at 20 fps
    by_stamp = {s: (a, m) for s, a, m in feed}
    assert all(m.stamp_ns in by_stamp for m in got)  # stamped with the world's capture stamp
    last = got[len(got) // 2]
    np.testing.assert_array_equal(last["image"], expected_image(env, *by_stamp[last.stamp_ns], "wrist", 96, 128))
