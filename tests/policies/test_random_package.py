"""``robostack policy random``: a package of an untrained model for serving benchmarks loads,
serves a chunk, says it is untrained and reports the parameter count of what it exported."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="writing a package needs the train extra (torch)")

from robostack.policies.diffusion_model import DP_DIFFUSION, TINY_DIFFUSION, DiffusionPolicyModel  # noqa: E402
from robostack.policies.model_inputs import ModelInputs  # noqa: E402
from robostack.policies.package import load_package  # noqa: E402
from robostack.policies.random_package import camera_names, write_random_package  # noqa: E402

# The command's default interface (the shipped pick_place_diffusion package's, without its instruction).
DEFAULT_INPUTS = ModelInputs(("image/front", "image/wrist"), (48, 64), 8, 8, 1, 16)


def _cli(argv: list[str]) -> int:
    from robostack.policies import cli

    parser = argparse.ArgumentParser(prog="robostack")
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture(scope="module")
def tiny_random(tmp_path_factory) -> tuple[Path, dict]:
    """(package dir, the command's JSON summary) of ``policy random --preset tiny`` with defaults."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("random") / "pkg"
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        assert _cli(["policy", "random", str(out), "--preset", "tiny", "--json"]) == 0
    return out, json.loads(text.getvalue())


def test_policy_random_writes_a_package_the_validating_loader_accepts_and_marks_untrained(tiny_random):
    out, summary = tiny_random
    package = load_package(out)
    spec = package.spec
    assert [i.name for i in spec.inputs] == ["image/front", "image/wrist", "state"]
    assert spec.input("image/front").shape == (48, 64, 3) and spec.input("state").shape == (8,)
    assert (spec.action_horizon, spec.action_dim, spec.observation_horizon, spec.sampler.steps) == (16, 8, 1, 16)
    assert spec.provenance["untrained"] is True
    assert "never use it for control" in spec.provenance["description"]
    assert set(summary["files"]) == {"encoder.onnx", "step.onnx", "policy.json"}
    assert all(size > 0 for size in summary["files"].values())


def test_policy_random_package_serves_a_chunk_of_finite_actions_of_the_declared_shape(tiny_random):
    from robostack.policies.serving_engine import EngineConfig, ServingEngine

    engine = ServingEngine(tiny_random[0], EngineConfig(providers=("cpu",)))
    spec = engine.spec
    rng = np.random.default_rng(0)
    obs = {"image/front": rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), "image/wrist": rng.integers(0, 256, (48, 64, 3), dtype=np.uint8),
           "state": rng.standard_normal(8).astype(np.float32)}
    noise = rng.standard_normal((2, spec.action_horizon, spec.action_dim)).astype(np.float32)
    (result,), timing = engine.sample([engine.feed([obs] * spec.observation_horizon)], [noise])
    assert result.actions.shape == (2, 16, 8)
    assert np.all(np.isfinite(result.actions))
    assert timing.calls == {"encoder": 1, "step": 16}


def test_policy_random_reports_the_parameter_count_of_the_model_it_exported(tiny_random):
    from robostack.policies.package import open_session

    out, summary = tiny_random
    torch.manual_seed(0)  # the command's default seed: the same random weights
    model = DiffusionPolicyModel(DEFAULT_INPUTS, TINY_DIFFUSION).eval()
    assert summary["parameters"] == sum(p.numel() for p in model.parameters())
    assert load_package(out).spec.provenance["parameters"] == summary["parameters"]
    # the exported encoder is this model's (same weights), not merely one of the same size
    example = DEFAULT_INPUTS.example_inputs(batch=1)
    with torch.no_grad():
        expected = model.encode(example)["cond"].numpy()
    (cond,) = open_session(out / "encoder.onnx").run(None, {k: v.numpy() for k, v in example.items()})
    np.testing.assert_allclose(cond, expected, atol=1e-4)


def test_policy_random_refuses_a_non_empty_directory_without_force(tiny_random, capsys):
    out, _ = tiny_random
    before = (out / "policy.json").read_text()
    assert _cli(["policy", "random", str(out), "--preset", "tiny"]) == 2
    assert "--force" in capsys.readouterr().err
    assert (out / "policy.json").read_text() == before


def test_policy_random_takes_the_interface_from_its_options(tmp_path, capsys):
    out = tmp_path / "pkg"
    argv = ["policy", "random", str(out), "--preset", "tiny", "--cameras", "3", "--image-size", "32", "--state-dim", "3",
            "--action-dim", "2", "--horizon", "8", "--obs-horizon", "2", "--steps", "4", "--fused-sampler"]
    assert _cli(argv) == 0
    text = capsys.readouterr().out
    assert "UNTRAINED" in text and "parameters:" in text and "sampler.onnx" in text
    spec = load_package(out).spec
    assert [i.name for i in spec.inputs] == ["image/front", "image/wrist", "image/cam2", "state"]
    assert spec.input("image/cam2").shape == (32, 32, 3) and spec.input("state").shape == (3,)
    assert (spec.action_horizon, spec.action_dim, spec.observation_horizon, spec.sampler.steps) == (8, 2, 2, 4)
    assert set(spec.graphs) == {"encoder", "step", "sampler"}


def test_write_random_package_rejects_more_steps_than_train_timesteps_before_exporting(tmp_path):
    with pytest.raises(ValueError, match="steps must be in 1..100"):
        write_random_package(tmp_path / "pkg", TINY_DIFFUSION, DEFAULT_INPUTS, steps=101)
    assert not (tmp_path / "pkg").exists()


def test_camera_names_start_with_the_shipped_packages_cameras():
    assert camera_names(1) == ("image/front",)
    assert camera_names(4) == ("image/front", "image/wrist", "image/cam2", "image/cam3")


def test_dp_preset_model_has_diffusion_policy_s_size_of_about_250m_parameters():
    # Built on the meta device: the sizes without allocating or initialising 1 GB of weights.
    with torch.device("meta"):
        model = DiffusionPolicyModel(DEFAULT_INPUTS, DP_DIFFUSION)
        unet = sum(p.numel() for p in model.unet.parameters())
        total = sum(p.numel() for p in model.parameters())
    assert total == 267_334_600  # the count the preset's docstring and docs/serving.md state
    assert 230e6 <= total <= 270e6
    assert 245e6 <= unet <= 255e6  # DP's unet_hybrid_image UNet: ≈ 252M
