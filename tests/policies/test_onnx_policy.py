"""The in-process ONNX policy: the Policy interface, observation history by stamp, clear errors,
and closed-loop use in the MuJoCo twin through the evaluation runner's loader hook."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="these packages are exported from torch models")

from policy_packages import ACTION_DIM, random_observation, tiny_diffusion_package, tiny_vla_package  # noqa: E402
from robostack.chunks import ActionChunk, Policy  # noqa: E402
from robostack.policies.onnx_policy import OnnxPolicy, policy_from_directory  # noqa: E402
from robostack.policies.preprocessing import ObservationError  # noqa: E402

DT = 50_000_000  # 20 Hz


@pytest.fixture(scope="module")
def diffusion_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("diffusion") / "pkg"
    tiny_diffusion_package(root)
    return root


def test_act_returns_a_chunk_stamped_at_the_observation(diffusion_dir):
    policy = OnnxPolicy(diffusion_dir, seed=0)
    assert isinstance(policy, Policy)
    chunk = policy.act(random_observation(np.random.default_rng(0)), 7 * DT)
    assert isinstance(chunk, ActionChunk)
    assert chunk.actions.shape == (8, ACTION_DIM)
    assert (chunk.start_ns, chunk.obs_stamp_ns, chunk.dt_ns) == (7 * DT, 7 * DT, DT)
    assert np.all(np.isfinite(chunk.actions))


def test_same_seed_same_chunks_and_reset_reseeds(diffusion_dir):
    obs = random_observation(np.random.default_rng(1))
    a = OnnxPolicy(diffusion_dir, seed=3)
    b = OnnxPolicy(diffusion_dir, seed=3)
    first = a.act(obs, 0).actions
    np.testing.assert_array_equal(first, b.act(obs, 0).actions)
    assert np.abs(a.act(obs, DT).actions - first).max() > 0  # fresh noise on the next call
    a.reset(seed=3)
    np.testing.assert_array_equal(a.act(obs, 0).actions, first)


def test_history_takes_the_newest_observation_at_or_before_each_grid_time(diffusion_dir):
    policy = OnnxPolicy(diffusion_dir)
    obs = [{"state": np.full(8, float(i), np.float32)} for i in range(4)]
    policy.observe(obs[0], 0)
    assert [o["state"][0] for o in policy.history()] == [0.0, 0.0]  # one sample: repeated
    policy.observe(obs[1], DT)
    policy.observe(obs[2], 2 * DT - 1_000_000)  # jittered early
    policy.observe(obs[3], 3 * DT)
    assert [o["state"][0] for o in policy.history()] == [2.0, 3.0]
    with pytest.raises(ValueError, match="older than the previous"):
        policy.observe(obs[0], 0)


def test_missing_camera_and_wrong_state_size_are_named(diffusion_dir):
    policy = OnnxPolicy(diffusion_dir)
    obs = random_observation(np.random.default_rng(0))
    with pytest.raises(ObservationError, match=r"observation has no 'image/front'"):
        policy.act({"state": obs["state"]}, 0)
    policy.reset()
    with pytest.raises(ObservationError, match=r"'state': expected 8 values, got 3"):
        policy.act({**obs, "state": np.zeros(3, np.float32)}, 0)
    policy.reset()
    with pytest.raises(ObservationError, match="NaN or Inf"):
        policy.act({**obs, "state": np.full(8, np.nan, np.float32)}, 0)


def test_many_samples_per_observation_for_failure_prediction(diffusion_dir):
    policy = OnnxPolicy(diffusion_dir, seed=0)
    from robostack.policies.preprocessing import encoder_feed

    rng = np.random.default_rng(0)
    feed = encoder_feed(policy.spec, None, [random_observation(rng), random_observation(rng)])
    chunks = policy.sample_actions(feed, num_samples=16)
    assert chunks.shape == (16, 8, ACTION_DIM)
    assert np.std(chunks, axis=0).mean() > 0  # the samples differ
    assert policy.last_embedding is not None and policy.last_embedding.shape == (policy.spec.embedding_dim,)


def test_directory_loader_claims_only_policy_packages(diffusion_dir, tmp_path):
    assert policy_from_directory(tmp_path) is None
    (tmp_path / "policy.json").write_text('{"format": "something-else"}')
    assert policy_from_directory(tmp_path) is None
    assert isinstance(policy_from_directory(diffusion_dir), OnnxPolicy)


@pytest.mark.slow
def test_exported_policy_drives_the_mujoco_twin_through_the_eval_loader(tmp_path):
    policy_loader = pytest.importorskip("robostack.sim.policy_loader")
    from robostack.sim.env import TwinConfig, TwinEnv
    from robostack.sim.episode import run_episode

    tiny_vla_package(tmp_path / "vla")
    policy_loader.register_policy_dir_loader(policy_from_directory)
    context = policy_loader.PolicyContext(task="pick_place", arm="panda", engine="mujoco", control_hz=20.0)
    policy = policy_loader.load_policy(str(tmp_path / "vla"), context)
    assert isinstance(policy, OnnxPolicy)
    env = TwinEnv(TwinConfig(task="pick_place", obs_cameras=("front",), image_size=(48, 64), control_hz=20.0))
    try:
        result = run_episode(env, policy, seed=0)
    finally:
        env.close()
    # an untrained policy does not solve the task, but it runs the whole episode on real frames
    assert result.error is None
    assert result.sim_time_s == pytest.approx(env.time_limit_s, abs=0.1)
    assert result.policy_calls == pytest.approx(15.0 * 20 / 8, abs=2)
