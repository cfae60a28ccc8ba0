import gymnasium
import numpy as np
from gymnasium.utils.env_checker import check_env

import robostack.sim.gym_envs  # noqa: F401  (registers the ids)


def test_registered_envs_pass_the_gymnasium_checker():
    for env_id in ("robostack/PickPlace-v0", "robostack/Stack-v0"):
        env = gymnasium.make(env_id, image_size=(48, 48))
        check_env(env.unwrapped, skip_render_check=True)
        env.close()


def test_module_prefixed_id_imports_and_registers_on_demand():
    env = gymnasium.make("robostack.sim.gym_envs:robostack/Stack-v0", cameras=())
    obs, info = env.reset(seed=3)
    assert set(obs) == {"state", "velocity"}
    assert "stack the" in info["instruction"]


def test_same_seed_gives_the_same_episode():
    env = gymnasium.make("robostack/PickPlace-v0", cameras=())
    a, _ = env.reset(seed=5)
    action = env.action_space.sample()
    a2 = env.step(action)[0]
    b, _ = env.reset(seed=5)
    b2 = env.step(action)[0]
    np.testing.assert_array_equal(a["state"], b["state"])
    np.testing.assert_array_equal(a2["state"], b2["state"])


def test_expert_actions_earn_the_sparse_reward_and_terminate():
    from robostack.sim.experts import ScriptedExpert
    from robostack.sim.episode import action_at

    env = gymnasium.make("robostack/PickPlace-v0", cameras=(), privileged=True)
    obs, info = env.reset(seed=2)
    expert = ScriptedExpert("pick_place")
    expert.reset(2)
    twin = env.unwrapped.twin
    total, terminated, truncated = 0.0, False, False
    chunk = None
    while not (terminated or truncated):
        if chunk is None or twin.time_ns > chunk.end_ns:
            chunk = expert.act({**obs, "instruction": np.array(info["instruction"])}, twin.time_ns)
        obs, reward, terminated, truncated, _ = env.step(action_at(chunk, twin.time_ns).astype(np.float32))
        total += reward
    assert terminated and total == 1.0
