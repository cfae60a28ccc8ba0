"""Training on a real (tiny) dataset written with DatasetWriter: losses, validation, checkpoints,
exact resume, export of the run, and the train/export/policy inspect commands."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training needs the train extra (torch)")

from policy_datasets import INSTRUCTIONS, write_tiny_dataset  # noqa: E402
from robostack.policies.run_store import RunError, RunInfo, load_checkpoint, read_metrics  # noqa: E402
from robostack.policies.training import TrainConfig, train  # noqa: E402
from robostack.policies.training_data import WindowSampler, load_training_data  # noqa: E402


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data") / "tiny"
    write_tiny_dataset(root, [20, 24, 18, 22])
    return root


def _config(dataset: Path, out: Path, policy: str = "diffusion", steps: int = 6) -> TrainConfig:
    return TrainConfig(
        dataset=str(dataset), out=str(out), policy=policy, steps=steps, batch_size=8, image_size=(32, 32),
        action_horizon=8, model_size="tiny", val_every=3, checkpoint_every=3, log_every=1, warmup_steps=2,
        val_fraction=0.25, progress=False, threads=1,
    )


def test_training_data_decodes_resizes_and_windows_episodes(dataset):
    data = load_training_data(dataset, (32, 32))
    assert data.cameras == ("image/front",)
    assert [e.length for e in data.episodes] == [20, 24, 18, 22]
    assert data.episodes[0].images["image/front"].shape == (20, 32, 32, 3)
    assert data.tasks == sorted(INSTRUCTIONS)
    # red square in even episodes, blue in odd ones survives decoding and resizing
    red = data.episodes[0].images["image/front"][0].reshape(-1, 3).max(axis=0)
    blue = data.episodes[1].images["image/front"][0].reshape(-1, 3).max(axis=0)
    assert red[0] > 150 > red[2] and blue[2] > 150 > blue[0]
    sampler = WindowSampler(data.episodes, obs_horizon=2, action_horizon=8)
    batch = sampler.batch(np.array([0, 19]))  # first and last frame of episode 0
    assert batch["image/front"].shape == (2, 2, 32, 32, 3)
    np.testing.assert_array_equal(batch["state"][0, 0], batch["state"][0, 1])  # clamped at the start
    np.testing.assert_array_equal(batch["action"][0], data.episodes[0].action[:8])
    np.testing.assert_array_equal(batch["action"][1], np.repeat(data.episodes[0].action[19:20], 8, axis=0))  # padded at the end
    norm = data.normalization("observation.state")
    assert norm.kind == "min_max"
    np.testing.assert_allclose(norm.params["max"][0], max(0.1 * (n - 1) for n in (20, 24, 18, 22)), rtol=1e-5)


def test_train_writes_metrics_checkpoint_and_loss_plot(dataset, tmp_path):
    result = train(_config(dataset, tmp_path / "run"))
    assert result.step == 6
    metrics = read_metrics(tmp_path / "run")
    assert [m["step"] for m in metrics if "loss" in m] == [1, 2, 3, 4, 5, 6]
    assert [m["step"] for m in metrics if "val_loss" in m] == [3, 6]
    assert all(np.isfinite(m.get("loss", m.get("val_loss"))) for m in metrics)
    assert (tmp_path / "run" / "loss.png").stat().st_size > 1000
    info = RunInfo.load(tmp_path / "run")
    assert info.kind == "diffusion" and info.inputs.obs_horizon == 2 and info.fps == 20
    assert info.dataset["episodes"] == 4
    ckpt = load_checkpoint(tmp_path / "run")
    assert ckpt["step"] == 6 and set(ckpt) >= {"model", "ema", "optimizer", "schedule"}


def test_resumed_training_ends_with_the_same_weights_as_an_uninterrupted_run(dataset, tmp_path):
    train(_config(dataset, tmp_path / "straight", steps=6))
    train(_config(dataset, tmp_path / "split", steps=6), stop_at=4)  # checkpoints at 3 and 4
    train(_config(dataset, tmp_path / "split", steps=6), resume=True)
    a = load_checkpoint(tmp_path / "straight")
    b = load_checkpoint(tmp_path / "split")
    assert b["step"] == 6
    for key in ("model", "ema"):
        for name, tensor in a[key].items():
            torch.testing.assert_close(b[key][name], tensor, rtol=0, atol=1e-6, msg=f"{key}.{name} differs after resume")
    assert [m["step"] for m in read_metrics(tmp_path / "split") if "loss" in m] == [1, 2, 3, 4, 5, 6]


def test_resuming_a_run_already_at_its_end_returns_its_result_without_reading_the_dataset(dataset, tmp_path):
    first = train(_config(dataset, tmp_path / "run", steps=6), stop_at=4)
    gone = tmp_path / "no-such-dataset"  # loading it would raise: the result must come from the run
    again = train(_config(gone, tmp_path / "run", steps=6), resume=True, stop_at=4)
    assert again.step == first.step == 4
    assert again.train_loss == pytest.approx(first.train_loss)
    assert again.val_loss == pytest.approx(first.val_loss)
    assert again.train_time_s == pytest.approx(first.train_time_s, rel=1e-6)
    with pytest.raises(RunError, match="trains a 'diffusion' policy, not 'vla'"):
        train(_config(gone, tmp_path / "run", policy="vla", steps=6), resume=True, stop_at=4)
    with pytest.raises(ValueError, match="no such dataset directory"):  # two steps left: now it needs the dataset
        train(_config(gone, tmp_path / "run", steps=6), resume=True)


def test_existing_run_is_not_overwritten_and_resume_needs_a_checkpoint(dataset, tmp_path):
    train(_config(dataset, tmp_path / "run", steps=3))
    with pytest.raises(RunError, match="already holds a run; pass --resume"):
        train(_config(dataset, tmp_path / "run", steps=3))
    with pytest.raises(RunError, match="nothing to resume"):
        train(_config(dataset, tmp_path / "fresh", steps=3), resume=True)


def test_trained_vla_run_exports_a_package_with_its_tokenizer_and_provenance(dataset, tmp_path):
    from robostack.policies.export import export_run
    from robostack.policies.onnx_policy import OnnxPolicy

    train(_config(dataset, tmp_path / "run", policy="vla", steps=4))
    package = export_run(tmp_path / "run", tmp_path / "pkg")
    assert package.tokenizer is not None and "red" in package.tokenizer.vocab and "blue" in package.tokenizer.vocab
    assert package.spec.provenance["metrics"]["steps"] == 4
    assert package.spec.provenance["dataset"]["episodes"] == 4
    assert package.spec.provenance["weights"] == "ema"
    assert package.spec.action_names == ("j0", "j1", "j2", "gripper")
    policy = OnnxPolicy(package, seed=0)
    chunk = policy.act({"image/front": np.zeros((48, 64, 3), np.uint8), "state": np.zeros(4, np.float32), "instruction": np.array(INSTRUCTIONS[1])}, 0)
    assert chunk.actions.shape == (8, 4)


def _cli(argv: list[str]) -> int:
    from robostack.policies import cli

    parser = argparse.ArgumentParser(prog="robostack")
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.mark.slow
def test_train_export_inspect_commands_end_to_end(dataset, tmp_path, capsys):
    run, pkg = tmp_path / "run", tmp_path / "pkg"
    common = ["train", "--dataset", str(dataset), "--out", str(run), "--model-size", "tiny", "--image-size", "32",
              "--action-horizon", "8", "--batch-size", "8", "--val-every", "2", "--checkpoint-every", "2", "--no-progress", "--json"]
    assert _cli([*common, "--steps", "2"]) == 0
    assert json.loads(capsys.readouterr().out)["step"] == 2
    assert _cli([*common, "--steps", "4"]) == 2  # refuses to overwrite
    assert "pass --resume" in capsys.readouterr().err
    assert _cli([*common, "--steps", "4", "--resume"]) == 0
    assert json.loads(capsys.readouterr().out)["step"] == 4
    assert _cli(["export", str(run), "--out", str(pkg), "--steps", "4"]) == 0
    assert "exported diffusion policy" in capsys.readouterr().out
    assert _cli(["policy", "inspect", str(pkg)]) == 0
    text = capsys.readouterr().out
    assert "valid" in text and "ddim, 4 steps (trained with 100)" in text and "image/front" in text
    assert _cli(["policy", "inspect", str(pkg), "--json"]) == 0
    desc = json.loads(capsys.readouterr().out)
    assert desc["graphs"]["step"]["inputs"]["sample"]["shape"] == ["batch", 8, 4]
    (pkg / "step.onnx").unlink()
    assert _cli(["policy", "inspect", str(pkg)]) == 1
    assert "missing graph file 'step.onnx'" in capsys.readouterr().err


def test_train_command_reports_an_unknown_camera(dataset, tmp_path, capsys):
    code = _cli(["train", "--dataset", str(dataset), "--out", str(tmp_path / "r"), "--cameras", "wrist", "--no-progress"])
    assert code == 2
    assert "no camera 'wrist'; the dataset has ['front']" in capsys.readouterr().err


def test_train_command_refuses_layout_options_without_layout_views(dataset, tmp_path, capsys):
    code = _cli(["train", "--dataset", str(dataset), "--out", str(tmp_path / "r"), "--layout-condition", "--no-progress"])
    assert code == 2
    assert "--layout-condition needs --layout-views" in capsys.readouterr().err
    code = _cli(["train", "--dataset", str(dataset), "--out", str(tmp_path / "r"), "--layout-targets", "*.x", "--no-progress"])
    assert code == 2
    assert "layout_target_names selects targets of layout_views" in capsys.readouterr().err
    code = _cli(["train", "--dataset", str(dataset), "--out", str(tmp_path / "r"), "--layout-views", "v.npz",
                 "--layout-condition-cameras", "front", "--no-progress"])
    assert code == 2
    assert "--layout-condition-cameras needs --layout-condition" in capsys.readouterr().err


def test_train_command_keeps_the_named_cameras_beside_the_located_poses(dataset, tmp_path, capsys):
    from test_layout_views import make_views

    from robostack.policies.export import export_run

    make_views(n=20).save(tmp_path / "views.npz")
    code = _cli(["train", "--dataset", str(dataset), "--out", str(tmp_path / "run"), "--model-size", "tiny", "--image-size", "32",
                 "--action-horizon", "8", "--batch-size", "8", "--steps", "2", "--val-every", "2", "--no-progress",
                 "--layout-views", str(tmp_path / "views.npz"), "--layout-condition", "--layout-condition-cameras", "front"])
    assert code == 0, capsys.readouterr().err
    model_config = RunInfo.load(tmp_path / "run").model_config
    assert model_config["layout_condition_cameras"] == ["image/front"]
    spec = export_run(tmp_path / "run", tmp_path / "pkg").spec
    # per frame: the 3 predicted pose values, the front camera's features and the 4-d state
    assert spec.embedding_dim == spec.observation_horizon * (3 + model_config["image_feature_dim"] + 4)


@pytest.mark.slow
def test_vla_training_fits_a_small_dataset_and_the_exported_policy_reproduces_its_actions(tmp_path):
    """Learning for real: after a short run the exported package's chunks are far closer to the
    demonstrated actions than the dataset's mean action is."""
    from robostack.policies.export import export_run
    from robostack.policies.onnx_policy import OnnxPolicy
    from robostack.policies.preprocessing import encoder_feed

    write_tiny_dataset(tmp_path / "data", [30, 30])
    config = TrainConfig(dataset=str(tmp_path / "data"), out=str(tmp_path / "run"), policy="vla", steps=300, batch_size=32,
                         image_size=(32, 32), action_horizon=8, model_size="tiny", val_fraction=0, warmup_steps=20, lr=3e-3,
                         ema_decay=0.9, log_every=50, checkpoint_every=300, progress=False, seed=0)
    train(config)
    package = export_run(tmp_path / "run", tmp_path / "pkg")
    data = load_training_data(tmp_path / "data", (32, 32))
    sampler = WindowSampler(data.episodes, 1, 8)
    mean_action = np.concatenate([e.action for e in data.episodes]).mean(axis=0)
    policy = OnnxPolicy(package, seed=0)
    errors, baseline = [], []
    for row in range(0, len(sampler), 3):
        b = sampler.batch(np.array([row]))
        obs = {"image/front": b["image/front"][0, 0], "state": b["state"][0, 0], "instruction": np.array(b["instruction"][0])}
        chunk = policy.sample_actions(encoder_feed(package.spec, package.tokenizer, [obs]), 1)[0]
        errors.append(np.abs(chunk - b["action"][0]).mean())
        baseline.append(np.abs(mean_action - b["action"][0]).mean())
    assert np.mean(errors) < 0.5 * np.mean(baseline), (np.mean(errors), np.mean(baseline))


def test_next_keyframe_actions_point_at_the_grasp_pose_then_the_release_pose():
    from robostack.policies.training_data import next_keyframe_actions

    # joint 0 ramps; gripper (dim 1) open 0.04 until frame 3, closed 0 until frame 7, open after
    gripper = [0.04, 0.04, 0.04, 0.0, 0.0, 0.0, 0.0, 0.04, 0.04, 0.04]
    actions = np.stack([np.arange(10, dtype=np.float32), np.asarray(gripper, np.float32)], axis=1)
    keyframes = next_keyframe_actions(actions, gripper_dim=-1, threshold=0.02)
    np.testing.assert_array_equal(keyframes[:, 0], [3, 3, 3, 3, 7, 7, 7, 7, 9, 9])  # grasp, release, end
    np.testing.assert_array_equal(next_keyframe_actions(actions[:3], 1, 0.02)[:, 0], [2, 2, 2])  # no event: the end
    with pytest.raises(ValueError, match="gripper dimension 2"):
        next_keyframe_actions(actions, gripper_dim=2, threshold=0.02)


def _keyframe_config(dataset: Path, out: Path, gripper_dim: int = 3) -> TrainConfig:
    # replace() runs TrainConfig's checks on the overrides, as the CLI and the recipe do
    return dataclasses.replace(_config(dataset, out), model_overrides={"keyframe_weight": 1.0, "keyframe_gripper_dim": gripper_dim})


def test_keyframe_loss_trains_with_the_policy_logs_its_validation_error_and_stays_out_of_the_export(dataset, tmp_path):
    from robostack.policies.export import export_run
    from robostack.policies.package import load_package

    train(_keyframe_config(dataset, tmp_path / "run"))
    vals = [m for m in read_metrics(tmp_path / "run") if "val_loss" in m]
    assert [m["step"] for m in vals] == [3, 6]
    assert all(np.isfinite(m["val_keyframe_mse"]) and m["val_keyframe_mse"] > 0 for m in vals)
    assert any(k.startswith("keyframe_head.") for k in load_checkpoint(tmp_path / "run")["ema"])
    export_run(tmp_path / "run", tmp_path / "pkg")
    package = load_package(tmp_path / "pkg")
    assert package.spec.action_dim == 4


def test_keyframe_threshold_is_the_middle_of_the_gripper_range_and_a_constant_dimension_is_refused():
    from types import SimpleNamespace

    from robostack.policies.training import keyframe_gripper

    info = SimpleNamespace(model_config={"keyframe_weight": 1.0, "keyframe_gripper_dim": -1})
    actions = np.array([[0.5, 0.0], [0.5, 0.04], [0.5, 0.01]], np.float32)
    data = SimpleNamespace(episodes=[SimpleNamespace(action=actions)])
    assert keyframe_gripper(info, data) == (-1, pytest.approx(0.02))
    info.model_config["keyframe_gripper_dim"] = 0
    with pytest.raises(RunError, match="dimension 0 never changes"):
        keyframe_gripper(info, data)
    assert keyframe_gripper(SimpleNamespace(model_config={}), data) is None


def test_layout_views_train_a_layout_head_with_a_held_out_error_and_stay_out_of_the_export(dataset, tmp_path):
    from test_layout_views import make_views

    from robostack.policies.export import export_run
    from robostack.policies.package import load_package

    make_views(n=20).save(tmp_path / "views.npz")
    config = dataclasses.replace(_config(dataset, tmp_path / "run"), layout_views=str(tmp_path / "views.npz"))
    train(config)
    vals = [m for m in read_metrics(tmp_path / "run") if "val_loss" in m]
    assert all(np.isfinite(m["val_layout_mse"]) and m["val_layout_mse"] > 0 for m in vals)
    assert RunInfo.load(tmp_path / "run").model_config["layout_targets"] == 3
    assert any(k.startswith("layout_head.") for k in load_checkpoint(tmp_path / "run")["ema"])
    export_run(tmp_path / "run", tmp_path / "pkg")
    assert load_package(tmp_path / "pkg").spec.action_dim == 4


def test_a_layout_conditioned_policy_trains_and_exports_with_object_poses_as_its_condition(dataset, tmp_path):
    from test_layout_views import make_views

    from robostack.policies.export import export_run
    from robostack.policies.package import load_package

    make_views(n=20).save(tmp_path / "views.npz")
    config = dataclasses.replace(
        _config(dataset, tmp_path / "run"), layout_views=str(tmp_path / "views.npz"), model_overrides={"layout_condition": True}
    )
    train(config)
    assert RunInfo.load(tmp_path / "run").model_config["layout_condition"] is True
    spec = export_run(tmp_path / "run", tmp_path / "pkg").spec
    # the condition is, per observation frame, the 3 predicted pose values and the 4-d state
    assert spec.embedding_dim == spec.observation_horizon * (3 + 4)
    assert load_package(tmp_path / "pkg").spec.embedding_dim == spec.embedding_dim
    with pytest.raises(ValueError, match="layout_condition .* give layout_views"):
        dataclasses.replace(_config(dataset, tmp_path / "r2"), model_overrides={"layout_condition": True})


def test_layout_target_names_train_only_the_selected_targets(dataset, tmp_path):
    from test_layout_views import make_views

    make_views(n=20).save(tmp_path / "views.npz")
    config = dataclasses.replace(
        _config(dataset, tmp_path / "run"), layout_views=str(tmp_path / "views.npz"), layout_target_names=("*.x",),
        model_overrides={"layout_condition": True},
    )
    train(config)
    assert RunInfo.load(tmp_path / "run").model_config["layout_targets"] == 2  # cube.x and bin.x of 3
    with pytest.raises(RunError, match="match none"):
        train(dataclasses.replace(config, out=str(tmp_path / "r2"), layout_target_names=("*.z",)))
    with pytest.raises(ValueError, match="layout_target_names selects targets of layout_views"):
        dataclasses.replace(_config(dataset, tmp_path / "r3"), layout_target_names=("*.x",))


def test_layout_views_without_the_policy_cameras_are_refused(dataset, tmp_path):
    from test_layout_views import make_views

    make_views(camera="image/wrist").save(tmp_path / "views.npz")
    config = dataclasses.replace(_config(dataset, tmp_path / "run"), layout_views=str(tmp_path / "views.npz"))
    with pytest.raises(RunError, match=r"the views have no \['image/front'\]"):
        train(config)


def test_a_layout_conditioned_vla_trains_on_views_and_exports_its_localizer(dataset, tmp_path):
    from test_layout_views import make_views

    from robostack.policies.export import export_run
    from robostack.policies.package import load_package

    make_views(n=20).save(tmp_path / "views.npz")
    config = dataclasses.replace(
        _config(dataset, tmp_path / "run", policy="vla"), layout_views=str(tmp_path / "views.npz"),
        model_overrides={"layout_condition": True},
    )
    train(config)
    assert RunInfo.load(tmp_path / "run").model_config["layout_targets"] == 3
    vals = [m for m in read_metrics(tmp_path / "run") if "val_loss" in m]
    assert vals and all(np.isfinite(m["val_layout_mse"]) and m["val_layout_mse"] > 0 for m in vals)
    ema = load_checkpoint(tmp_path / "run")["ema"]
    assert any(k.startswith("localizer.") for k in ema) and any(k.startswith("layout_head.") for k in ema)
    export_run(tmp_path / "run", tmp_path / "pkg")
    package = load_package(tmp_path / "pkg")
    # the exported context: the pose token, the state token and the words (no camera patches kept)
    import onnxruntime as ort

    session = ort.InferenceSession(str(package.root / "encoder.onnx"), providers=["CPUExecutionProvider"])
    context = next(o for o in session.get_outputs() if o.name == "context")
    assert context.shape[1:] == [1 + 1 + package.tokenizer.max_length, 32]
