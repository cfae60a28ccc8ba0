"""Expert demos recorded in the MuJoCo twin -> robostack train -> robostack export -> the
exported package loaded by the evaluation runner's loader and run closed-loop in the twin."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

pytest.importorskip("torch", reason="training needs the train extra (torch)")
pytest.importorskip("mujoco")

from robostack.policies.pretrained.make_pick_place import record_expert_demos  # noqa: E402


def _cli(argv: list[str]) -> int:
    from robostack.policies import cli

    parser = argparse.ArgumentParser(prog="robostack")
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["diffusion", "vla"])
def test_policy_trained_on_twin_demos_runs_an_episode_through_the_eval_loader(tmp_path, kind):
    from robostack.policies.onnx_policy import OnnxPolicy, policy_from_directory
    from robostack.sim import policy_loader
    from robostack.sim.env import TwinConfig, TwinEnv
    from robostack.sim.episode import run_episode

    recorded = record_expert_demos(tmp_path / "demos", 3, cameras=("front",), image_size=(48, 64))
    assert recorded.frames > 100 and recorded.seeds == [0, 1, 2]
    run, pkg = tmp_path / "run", tmp_path / "pkg"
    assert _cli(["train", "--dataset", str(tmp_path / "demos"), "--policy", kind, "--out", str(run), "--steps", "3",
                 "--batch-size", "8", "--image-size", "32", "--model-size", "tiny", "--no-progress"]) == 0
    assert _cli(["export", str(run), "--out", str(pkg)]) == 0

    policy_loader.register_policy_dir_loader(policy_from_directory)
    context = policy_loader.PolicyContext(task="pick_place", arm="panda", engine="mujoco", control_hz=20.0)
    policy = policy_loader.load_policy(str(pkg), context)
    assert isinstance(policy, OnnxPolicy)
    assert policy.spec.action_horizon == 16 and policy.spec.action_dim == 8
    assert policy.spec.provenance["dataset"]["episodes"] == 3
    assert policy.camera_requests() == {"front": (48, 64)}  # as recorded, not the 32x32 model size
    env = TwinEnv(TwinConfig(task="pick_place", obs_cameras=("front",), image_size=(48, 64), control_hz=20.0))
    try:
        result = run_episode(env, policy, seed=100)
    finally:
        env.close()
    assert result.error is None and result.policy_calls >= 10
    # the commands stayed in the range the demonstrations covered (normalization inverted right)
    state = np.asarray(env.joint_state().position)
    lo = np.asarray(policy.spec.action_normalization.params["min"])
    hi = np.asarray(policy.spec.action_normalization.params["max"])
    span = hi - lo
    assert np.all(state[:7] > lo[:7] - span[:7] - 0.2) and np.all(state[:7] < hi[:7] + span[:7] + 0.2)


@pytest.mark.slow
def test_noisy_demos_label_the_clean_expert_targets_while_the_arm_runs_off_them(tmp_path):
    from robostack.dataset.reader import DatasetReader
    from robostack.sim.demo_noise import ExecutionNoise

    clean = record_expert_demos(tmp_path / "clean", 1, cameras=("front",), image_size=(24, 32))
    noisy = record_expert_demos(tmp_path / "noisy", 1, cameras=("front",), image_size=(24, 32), noise=ExecutionNoise(std_rad=0.04))
    assert clean.seeds == noisy.seeds == [0]
    a = DatasetReader(tmp_path / "clean").load_episode(0).columns
    b = DatasetReader(tmp_path / "noisy").load_episode(0).columns
    approach = 30  # 1.5 s: the first stage is planned from the reset pose alone, noise or not
    assert np.allclose(a["action"][:approach], b["action"][:approach], atol=1e-6)
    # the arm tracks its targets closely without noise and visibly off them with it
    def gap(c):
        return np.abs(c["observation.state"][1:approach, :7] - c["action"][: approach - 1, :7]).mean()

    clean_gap, noisy_gap = gap(a), gap(b)
    assert noisy_gap > 2 * clean_gap


@pytest.mark.slow
def test_recipe_renders_layout_views_once_with_arm_poses_from_its_demos(tmp_path):
    from robostack.dataset.reader import DatasetReader
    from robostack.policies.layout_views import LayoutViews
    from robostack.policies.pretrained.make_pick_place import (
        CAMERAS,
        RECORD_SIZE,
        RecipeConfig,
        ensure_layout_views,
    )

    config = RecipeConfig(out=tmp_path, package_dir=tmp_path / "pkg", demos=2, layout_views=4, demo_noise_rad=0.0)
    record_expert_demos(config.dataset_dir, 2)
    path = ensure_layout_views(config)
    assert path == tmp_path / "layout_views_4.npz"
    views = LayoutViews.load(path)
    assert len(views) == 4 and views.cameras == tuple(f"image/{c}" for c in CAMERAS)
    assert views.images["image/front"].shape[1:3] == RECORD_SIZE
    reader = DatasetReader(config.dataset_dir)
    demo_states = np.concatenate([np.asarray(reader.load_episode(i).columns["observation.state"]) for i in range(2)])
    for state in views.state:  # every view's arm pose is one the demos passed through
        assert np.abs(demo_states - state).max(axis=1).min() < 1e-4
    mtime = path.stat().st_mtime_ns
    assert ensure_layout_views(config) == path and path.stat().st_mtime_ns == mtime  # not rendered again
    vla = RecipeConfig(out=tmp_path, package_dir=tmp_path / "v", policy="vla", layout_views=4, layout_condition=True,
                       layout_condition_cameras=("wrist",))
    assert vla.model_overrides["layout_condition_cameras"] == ["image/wrist"]
    with pytest.raises(ValueError, match="layout_condition needs layout_views"):
        RecipeConfig(out=tmp_path, package_dir=tmp_path / "v", layout_condition=True)
    assert RecipeConfig(out=tmp_path, package_dir=tmp_path / "v", layout_views=4, layout_condition=True).model_overrides["layout_condition"]
    kept = RecipeConfig(out=tmp_path, package_dir=tmp_path / "v", layout_views=4, layout_condition=True, layout_condition_cameras=("wrist",))
    assert kept.model_overrides["layout_condition_cameras"] == ["image/wrist"]
    with pytest.raises(ValueError, match=r"layout_condition_cameras \['side'\] are not cameras"):
        RecipeConfig(out=tmp_path, package_dir=tmp_path / "v", layout_views=4, layout_condition=True, layout_condition_cameras=("side",))
    with pytest.raises(ValueError, match="set it too"):
        RecipeConfig(out=tmp_path, package_dir=tmp_path / "v", layout_views=4, layout_condition_cameras=("wrist",))
    # the views label the named cube by role, which the shipped policy's condition selects
    assert views.target_names[-4:] == ("instructed0.x", "instructed0.y", "instructed0.cos4yaw", "instructed0.sin4yaw")
