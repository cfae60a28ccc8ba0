import numpy as np
import pytest

from robostack.sim.env import TwinConfig, TwinEnv
from robostack.sim.realtime import RealTimeStepper


def _rollout(env: TwinEnv, seed: int) -> np.ndarray:
    env.reset(seed)
    target = env.arm.home_array() + np.array([0.3, 0.2, 0, 0.2, 0, 0, 0, -0.02])
    trace = []
    for _ in range(20):
        env.set_joint_targets(target)
        env.step_control()
        trace.append(env.data.qpos.copy())
    return np.array(trace)


def test_lockstep_rollouts_are_deterministic():
    env = TwinEnv()
    np.testing.assert_array_equal(_rollout(env, 4), _rollout(env, 4))


def test_joint_targets_are_tracked_and_state_is_stamped_with_sim_time():
    env = TwinEnv()
    env.reset(0)
    target = env.arm.home_array() + np.array([0.2, 0.1, 0, 0.1, 0, 0, 0, 0])
    env.set_joint_targets(target)
    env.advance(1.0)
    state = env.joint_state()
    assert state.stamp_ns == 1_000_000_000
    np.testing.assert_allclose(state.position[:7], target[:7], atol=0.01)
    assert state.names[0] == "panda_joint1" and len(state.velocity) == 8


def test_bad_joint_targets_are_rejected_with_a_reason():
    env = TwinEnv()
    env.reset(0)
    with pytest.raises(ValueError, match="shape"):
        env.set_joint_targets(np.zeros(7))
    with pytest.raises(ValueError, match="finite"):
        env.set_joint_targets(np.full(8, np.nan))


def test_targets_beyond_the_limits_are_clipped():
    env = TwinEnv()
    env.reset(0)
    env.set_joint_targets(np.full(8, 10.0))
    ctrl = env.data.ctrl[: env.arm.action_dim]
    np.testing.assert_allclose(ctrl, env.model.actuator_ctrlrange[:8, 1])


def test_observation_has_state_images_instruction_and_object_poses():
    env = TwinEnv(TwinConfig(obs_cameras=("front", "wrist"), image_size=(96, 128)))
    obs = env.reset(2)
    assert obs["state"].shape == (8,) and obs["state"].dtype == np.float32
    for camera in ("front", "wrist"):
        image = obs[f"image/{camera}"]
        assert image.shape == (96, 128, 3) and image.dtype == np.uint8
        assert image.std() > 5, "a rendered view is not a blank frame"
    assert "cube" in str(obs["instruction"])
    assert obs["priv/cube_red"].shape == (7,)


def test_wrist_camera_view_changes_when_the_arm_moves():
    env = TwinEnv()
    env.reset(0)
    before = env.render("wrist", 64, 64).astype(int)
    env.set_joint_targets(env.arm.home_array() + np.array([0.6, 0, 0, 0, 0, 0, 0, 0]))
    env.advance(1.0)
    after = env.render("wrist", 64, 64).astype(int)
    assert np.abs(before - after).mean() > 3


def test_unknown_camera_names_the_cameras_available():
    env = TwinEnv()
    env.reset(0)
    with pytest.raises(ValueError, match="wrist"):
        env.render("ceiling")


def test_control_period_must_be_whole_physics_steps():
    with pytest.raises(ValueError, match="whole number"):
        TwinConfig(control_hz=30.0, timestep=0.002)


class _ManualClock:
    def __init__(self) -> None:
        self.now = 5_000_000_000

    def __call__(self) -> int:
        return self.now


def test_realtime_stepper_keeps_sim_time_with_the_clock():
    env = TwinEnv()
    env.reset(0)
    clock = _ManualClock()
    stepper = RealTimeStepper(env, env.model.opt.timestep, clock_ns=clock)
    stepper.start()
    clock.now += 50_000_000
    assert stepper.sync() == 25
    assert env.time_ns == 50_000_000
    clock.now += 1_000_000
    assert stepper.sync() == 0, "less than a timestep of wall time takes no step"


def test_realtime_stepper_drops_time_it_cannot_catch_up():
    env = TwinEnv()
    env.reset(0)
    clock = _ManualClock()
    stepper = RealTimeStepper(env, env.model.opt.timestep, clock_ns=clock, max_catchup_s=0.1)
    stepper.start()
    clock.now += 2_000_000_000
    stepper.sync()
    assert env.time_ns == 100_000_000
    assert stepper.stats.dropped_s == pytest.approx(1.9)


def test_set_joint_positions_poses_the_arm_without_time_passing_and_names_a_bad_vector():
    from robostack.sim.env import TwinConfig, TwinEnv

    env = TwinEnv(TwinConfig(task="pick_place"))
    env.reset(3)
    pose = env.arm.home_array() + 0.2
    env.set_joint_positions(pose)
    np.testing.assert_allclose(env.joint_state().position, pose)
    assert env.time_ns == 0
    with pytest.raises(ValueError, match=r"shape \(8,\)"):
        env.set_joint_positions(np.zeros(3))
    with pytest.raises(ValueError, match="finite"):
        env.set_joint_positions(np.full(8, np.nan))
    env.close()
