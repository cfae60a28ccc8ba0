import numpy as np
import pytest

from robostack.chunks import ActionChunk, Policy
from robostack.sim.env import TwinConfig, TwinEnv
from robostack.sim.episode import action_at, run_episode
from robostack.sim.experts import ScriptedExpert, split_stages
from robostack.sim.tasks.base import Waypoint


@pytest.mark.parametrize("task", ["pick_place", "stack"])
def test_expert_solves_a_handful_of_seeds(task):
    env = TwinEnv(TwinConfig(task=task))
    expert = ScriptedExpert(task)
    results = [run_episode(env, expert, seed) for seed in range(100, 104)]
    assert all(r.success for r in results), [(r.seed, r.success) for r in results]
    assert all(r.sim_time_s < env.time_limit_s for r in results)


def test_expert_moves_the_cube_the_instruction_names():
    env = TwinEnv(TwinConfig(task="pick_place"))
    expert = ScriptedExpert("pick_place")
    result = run_episode(env, expert, 11)
    assert result.success
    target = env.layout.params["target"]
    other = "blue" if target == "red" else "red"
    start = env.task.sample_layout(11, env.arm.workspace)
    moved = env.world_state().positions
    assert np.linalg.norm(moved[f"cube_{target}"][:2] - start.poses[f"cube_{target}"].pos[:2]) > 0.05
    assert np.linalg.norm(moved[f"cube_{other}"][:2] - start.poses[f"cube_{other}"].pos[:2]) < 0.01


def test_expert_is_a_policy_returning_timestamped_chunks():
    env = TwinEnv()
    expert = ScriptedExpert("pick_place", horizon=8)
    assert isinstance(expert, Policy)
    obs = env.reset(0)
    expert.reset(0)
    chunk = expert.act(obs, env.time_ns)
    assert chunk.actions.shape == (8, env.arm.action_dim)
    assert chunk.start_ns == env.time_ns and chunk.dt_ns == 50_000_000
    np.testing.assert_allclose(chunk.actions[0], obs["state"], atol=1e-5)


class _HoldStill:
    def reset(self, seed=None) -> None:
        pass

    def act(self, obs, stamp_ns):
        return ActionChunk(np.tile(obs["state"].astype(np.float64), (5, 1)), stamp_ns, 50_000_000, stamp_ns)


def test_a_policy_that_does_nothing_fails_at_the_time_limit():
    env = TwinEnv(TwinConfig(task="stack"))
    result = run_episode(env, _HoldStill(), 0)
    assert not result.success
    assert result.sim_time_s == pytest.approx(env.time_limit_s, abs=env.control_dt)


def test_chunk_actions_are_held_between_and_clamped_outside_the_chunk():
    chunk = ActionChunk(np.arange(6, dtype=float).reshape(3, 2), start_ns=100, dt_ns=10, obs_stamp_ns=100)
    np.testing.assert_array_equal(action_at(chunk, 50), [0, 1])
    np.testing.assert_array_equal(action_at(chunk, 115), [2, 3])
    np.testing.assert_array_equal(action_at(chunk, 999), [4, 5])


def test_waypoints_split_where_carrying_starts():
    free = Waypoint((0, 0, 0), 0.0, "open", 1.0)
    held = Waypoint((0, 0, 0), 0.0, "closed", 1.0, holding="cube_red")
    stages = split_stages([free, free, held, held, free])
    assert [len(s) for s in stages] == [2, 3]


@pytest.mark.parametrize("task", ["pick_place", "stack"])
def test_expert_drives_the_five_joint_so101_too(task):
    env = TwinEnv(TwinConfig(task=task, arm="so101"))
    expert = ScriptedExpert(task, arm="so101")
    assert run_episode(env, expert, 1).success


def test_expert_without_privileged_poses_says_what_is_missing():
    expert = ScriptedExpert("stack")
    obs = {"state": np.zeros(8, np.float32), "instruction": np.array("stack the red cube on the blue cube")}
    with pytest.raises(ValueError, match="priv/"):
        expert.act(obs, 0)
