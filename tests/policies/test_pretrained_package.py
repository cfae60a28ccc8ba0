"""The policy packages committed under ``policies/pretrained`` (diffusion and VLA-style) load,
validate and act on real twin observations (their success rates are the evaluation's job,
recorded in each provenance by the script that made it)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("mujoco")

from robostack.policies.pretrained import PICK_PLACE_DIFFUSION, PICK_PLACE_VLA  # noqa: E402

PACKAGE_LIMIT_BYTES = 8 * 1024 * 1024
PACKAGES = pytest.mark.parametrize("root, kind", [(PICK_PLACE_DIFFUSION, "diffusion"), (PICK_PLACE_VLA, "vla")], ids=["diffusion", "vla"])


@PACKAGES
def test_committed_package_validates_and_declares_the_twin_observation_keys(root, kind):
    from robostack.policies.package import load_package

    package = load_package(root)
    spec = package.spec
    assert spec.policy_type == kind
    assert {i.name for i in spec.inputs} == {"image/front", "image/wrist", "state", "instruction"}
    assert (spec.action_dim, spec.action_horizon, spec.observation_horizon) == (8, 16, 1)
    assert package.tokenizer is not None and package.tokenizer.encode("put the red cube in the bin") != package.tokenizer.encode(
        "put the blue cube in the bin"
    )
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert size <= PACKAGE_LIMIT_BYTES


@PACKAGES
def test_committed_package_provenance_records_held_out_evaluation_and_training(root, kind):
    from robostack.policies.package import load_package

    provenance = load_package(root).spec.provenance
    evaluation = provenance["evaluation"]
    assert evaluation["episodes"] == 100 and evaluation["seeds"][0] == 10000
    low, high = evaluation["wilson95"]
    assert low <= evaluation["success_rate"] <= high
    assert evaluation["successes"] == round(evaluation["success_rate"] * evaluation["episodes"])
    recipe = provenance["recipe"]
    assert recipe["policy"] == kind
    # evaluation seeds are disjoint from the demonstration seeds, and every dropped seed among them
    first, last = recipe["demo_seeds"]
    assert last < evaluation["seeds"][0]
    assert last - first + 1 - len(recipe["dropped_demo_seeds"]) == recipe["demos"]
    assert provenance["dataset"]["episodes"] == recipe["demos"] <= 200
    assert recipe["train_time_s"] > 0 and recipe["steps"] == provenance["metrics"]["steps"]


@PACKAGES
def test_committed_package_acts_on_real_twin_observations_at_episode_start(root, kind):
    from robostack.policies.onnx_policy import OnnxPolicy
    from robostack.sim.engines import make_env
    from robostack.sim.episode import action_at

    policy = OnnxPolicy(root, seed=0)
    env = make_env("mujoco", "pick_place", cameras=policy.camera_requests(), control_hz=policy.spec.fps)
    lo = np.asarray(policy.spec.action_normalization.params["min"])
    hi = np.asarray(policy.spec.action_normalization.params["max"])
    try:
        obs = env.reset(10000)
        policy.reset(10000)
        for _ in range(3):
            stamp = env.time_ns
            chunk = policy.act(obs, stamp)
            assert chunk.actions.shape == (16, 8) and chunk.start_ns == stamp
            assert np.all(np.isfinite(chunk.actions))
            # actions stay in (a margin around) the range the demonstrations covered
            margin = 0.1 * (hi - lo) + 1e-3
            assert np.all(chunk.actions >= lo - margin) and np.all(chunk.actions <= hi + margin)
            assert policy.last_timing_ms["total"] > 0 and policy.last_timing_ms["encoder"] > 0
            assert policy.last_embedding is not None and np.all(np.isfinite(policy.last_embedding))
            for _ in range(4):
                env.set_joint_targets(action_at(chunk, env.time_ns))
                env.step_control()
                obs = env.observation()
                policy.observe(obs, env.time_ns)
    finally:
        env.close()


@PACKAGES
def test_committed_package_reads_the_instruction(root, kind):
    from robostack.policies.onnx_policy import OnnxPolicy
    from robostack.policies.preprocessing import encoder_feed
    from robostack.sim.engines import make_env

    policy = OnnxPolicy(root)
    env = make_env("mujoco", "pick_place", cameras=policy.camera_requests(), control_hz=policy.spec.fps)
    try:
        obs = env.reset(10001)
    finally:
        env.close()
    noise = np.random.default_rng(0).standard_normal((1, 16, 8)).astype(np.float32)
    chunks = []
    for color in ("red", "blue"):
        named = {**obs, "instruction": np.array(f"put the {color} cube in the bin")}
        chunks.append(policy.sample_actions(encoder_feed(policy.spec, policy.package.tokenizer, [named] * policy.spec.observation_horizon), 1, noise))
    assert np.abs(chunks[0] - chunks[1]).max() > 1e-3


def test_the_diffusion_package_ships_a_failure_calibration_apart_from_its_demos_and_evaluation():
    from robostack.policies.failure.config import METHODS, method_thresholds, read_block
    from robostack.policies.failure.monitor import FailureMonitor
    from robostack.policies.package import load_package

    package = load_package(PICK_PLACE_DIFFUSION)
    block = read_block(package.spec)
    assert block is not None and block.calibration is not None and (package.root / "failure_rnd.onnx").is_file()
    cal = block.calibration
    # B = 8 keeps the demo real time on a CPU; 39+ successes carry rnd_or_stac's δ/2 thresholds
    assert (cal.num_samples, cal.delta, cal.task) == (8, 0.05, "pick_place") and cal.successes >= 39
    assert all(method_thresholds(m, cal.thresholds) is not None for m in METHODS)
    provenance = package.spec.provenance
    demos, held_out = provenance["recipe"]["demo_seeds"], provenance["evaluation"]["seeds"]
    for first, last in (demos, held_out):
        assert cal.seeds[1] < first or last < cal.seeds[0]
    assert [s["kind"] for s in block.fit["sources"]] == ["dataset"]  # RND saw demonstrations only, no rollouts
    for method in ("fiper", "rnd_or_stac"):
        assert FailureMonitor.from_package(package, alarm_method=method).window == cal.window
