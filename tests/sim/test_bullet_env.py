import mujoco
import numpy as np
import pybullet
import pytest

from robostack.sim.bullet_env import BulletConfig, BulletEnv
from robostack.sim.env import TwinEnv
from robostack.sim.episode import run_episode
from robostack.sim.experts import ScriptedExpert


@pytest.fixture(scope="module")
def bullet():
    env = BulletEnv(BulletConfig(task="pick_place"))
    yield env
    env.close()


def test_both_engines_share_the_panda_kinematics(bullet):
    twin = TwinEnv()
    rng = np.random.default_rng(0)
    hand_link = next(
        j for j in range(pybullet.getNumJoints(bullet.robot, physicsClientId=bullet.client))
        if pybullet.getJointInfo(bullet.robot, j, physicsClientId=bullet.client)[12] == b"panda_hand"
    )
    for _ in range(10):
        q = rng.uniform(twin.model.jnt_range[:7, 0], twin.model.jnt_range[:7, 1])
        twin.data.qpos[:7] = q
        mujoco.mj_kinematics(twin.model, twin.data)
        for index, value in zip(bullet._arm_idx, q):
            pybullet.resetJointState(bullet.robot, index, value, physicsClientId=bullet.client)
        state = pybullet.getLinkState(bullet.robot, hand_link, computeForwardKinematics=True, physicsClientId=bullet.client)
        np.testing.assert_allclose(twin.data.body("panda_hand").xpos, state[4], atol=1e-6)


def test_same_seed_gives_the_same_layout_in_both_engines(bullet):
    twin = TwinEnv()
    twin_obs = twin.reset(17)
    bullet_obs = bullet.reset(17)
    assert str(twin_obs["instruction"]) == str(bullet_obs["instruction"])
    for key in ("priv/cube_red", "priv/cube_blue", "priv/bin"):
        np.testing.assert_allclose(twin_obs[key][:3], bullet_obs[key][:3], atol=1e-6)
    np.testing.assert_allclose(twin_obs["state"], bullet_obs["state"], atol=1e-6)


def test_the_mujoco_expert_also_solves_pick_place_in_pybullet(bullet):
    expert = ScriptedExpert("pick_place")
    results = [run_episode(bullet, expert, seed) for seed in (200, 201, 202)]
    assert all(r.success for r in results), [(r.seed, r.success) for r in results]


def test_pybullet_renders_the_fixed_cameras(bullet):
    bullet.reset(0)
    image = bullet.render("front", 60, 80)
    assert image.shape == (60, 80, 3) and image.std() > 5
    with pytest.raises(ValueError, match="front"):
        bullet.render("wrist")


def test_pybullet_backend_rejects_arms_it_does_not_have():
    with pytest.raises(ValueError, match="so101"):
        BulletConfig(arm="so101")
