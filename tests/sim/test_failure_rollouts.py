"""The twin's forward kinematics for ACE's end-effector projection."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mujoco")

from robostack.policies.failure.ace import ActionProjection, fit_fk_projection  # noqa: E402
from robostack.sim.env import TwinConfig, TwinEnv  # noqa: E402
from robostack.sim.failure_rollouts import TwinForwardKinematics  # noqa: E402


def test_forward_kinematics_gives_the_twin_arms_tool_point_for_joint_targets():
    env = TwinEnv(TwinConfig(task="pick_place"))
    fk = TwinForwardKinematics("panda")
    try:
        env.reset(0)
        home = env.arm.home_array()
        bent = home.copy()
        bent[1] += 0.4
        bent[3] -= 0.3
        points = fk(np.stack([home, bent]))
        site = env.model.site(env.arm.tcp_site).id
        np.testing.assert_allclose(points[0], env.data.site_xpos[site], atol=1e-9)
        assert np.linalg.norm(points[1] - points[0]) > 0.05  # bending the shoulder moves the tool
    finally:
        env.close()


def test_end_effector_ace_bins_tool_points_on_a_grid_of_their_fit_range():
    fk = TwinForwardKinematics("panda")
    rng = np.random.default_rng(0)
    home = np.asarray(fk.arm.home, np.float64)
    fit_actions = home + rng.normal(0, 0.2, (200, home.size))
    spec = fit_fk_projection(fit_actions, fk)
    assert spec.projection == "fk" and spec.mean is None and np.all(spec.ranges > 0.05)
    projection = ActionProjection(spec, fk=fk)
    same = np.tile(home, (16, 4, 1))
    assert projection.entropy(same) == 0.0
    spread = home + rng.normal(0, 0.3, (16, 4, home.size))
    assert projection.entropy(spread) > 2.0


@pytest.mark.slow
def test_monitored_rollouts_in_worker_processes_give_the_traces_of_one_process(tmp_path):
    pytest.importorskip("torch", reason="the tiny package is exported from torch")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "policies"))
    from policy_packages import fit_failure_on_twin_observations, tiny_diffusion_package

    from robostack.sim.failure_rollouts import RolloutConfig, monitored_rollouts

    # untrained: it fails pick_place, which is all the traces need
    _, package = tiny_diffusion_package(tmp_path / "pkg", image_size=(32, 32), horizon=8)
    fit_failure_on_twin_observations(package, (900, 901))
    config = RolloutConfig(str(tmp_path / "pkg"), "pick_place", num_samples=4, execute_steps=8, threads=1)
    seeds = [7, 3]
    one = list(monitored_rollouts(config, seeds))
    two = list(monitored_rollouts(config, seeds, workers=2))
    assert [t.seed for _, t in two] == seeds  # in the order asked, whichever worker ran them
    for (r1, t1), (r2, t2) in zip(one, two):
        assert (r2.success, r2.policy_calls, t2.steps, t2.success) == (r1.success, r1.policy_calls, t1.steps, t1.success)
        for score in ("rnd", "ace", "stac"):
            np.testing.assert_allclose(t2.array(score), t1.array(score), rtol=1e-6, atol=1e-9, err_msg=score)
    with pytest.raises(ValueError, match="workers must be >= 1"):
        list(monitored_rollouts(config, seeds, workers=0))
