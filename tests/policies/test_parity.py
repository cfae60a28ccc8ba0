"""Exported ONNX graphs + the numpy sampling loop reproduce torch's full sampled chunks."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="parity needs the train extra (torch)")

from policy_packages import random_observation, tiny_diffusion_package, tiny_vla_package  # noqa: E402
from robostack.policies.onnx_policy import OnnxPolicy  # noqa: E402
from robostack.policies.preprocessing import encoder_feed  # noqa: E402

TOLERANCE = 1e-4


def _max_chunk_difference(model, package, seed: int, samples: int, steps: int | None = None) -> float:
    rng = np.random.default_rng(seed)
    policy = OnnxPolicy(package, steps=steps)
    history = [random_observation(rng) for _ in range(package.spec.observation_horizon)]
    feed = encoder_feed(package.spec, package.tokenizer, history)
    noise = rng.standard_normal((samples, package.spec.action_horizon, package.spec.action_dim)).astype(np.float32)
    onnx_chunks = policy.sample_actions(feed, samples, noise)
    torch_normalized = model.sample({k: torch.from_numpy(v) for k, v in feed.items()}, torch.from_numpy(noise), steps).numpy()
    torch_chunks = package.spec.action_normalization.invert(torch_normalized)
    assert onnx_chunks.shape == (samples, package.spec.action_horizon, package.spec.action_dim)
    return float(np.abs(onnx_chunks - torch_chunks).max())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_diffusion_chunks_from_onnxruntime_match_torch_ddim_within_tolerance(tmp_path, seed):
    model, package = tiny_diffusion_package(tmp_path / "pkg", seed=seed)
    assert package.spec.sampler.type == "ddim"
    assert _max_chunk_difference(model, package, seed, samples=4) <= TOLERANCE


def test_diffusion_parity_holds_for_a_different_step_count(tmp_path):
    model, package = tiny_diffusion_package(tmp_path / "pkg", seed=3)
    assert _max_chunk_difference(model, package, 3, samples=2, steps=4) <= TOLERANCE


@pytest.mark.parametrize("seed", [0, 1])
def test_vla_flow_chunks_from_onnxruntime_match_torch_euler_within_tolerance(tmp_path, seed):
    model, package = tiny_vla_package(tmp_path / "pkg", seed=seed)
    assert package.spec.sampler.type == "flow_euler"
    assert package.spec.sampler.steps == 10
    assert _max_chunk_difference(model, package, seed, samples=4) <= TOLERANCE


def test_different_noise_gives_different_chunks_so_parity_is_not_trivial(tmp_path):
    _, package = tiny_diffusion_package(tmp_path / "pkg", seed=0)
    policy = OnnxPolicy(package)
    rng = np.random.default_rng(0)
    feed = encoder_feed(package.spec, None, [random_observation(rng) for _ in range(2)])
    a = policy.sample_actions(feed, 1, rng.standard_normal((1, 8, 8)).astype(np.float32))
    b = policy.sample_actions(feed, 1, rng.standard_normal((1, 8, 8)).astype(np.float32))
    assert np.abs(a - b).max() > 1e-2


def test_vla_instruction_changes_the_chunk(tmp_path):
    _, package = tiny_vla_package(tmp_path / "pkg", seed=0)
    policy = OnnxPolicy(package)
    rng = np.random.default_rng(0)
    obs = random_observation(rng)
    noise = rng.standard_normal((1, 8, 8)).astype(np.float32)
    red = policy.sample_actions(encoder_feed(package.spec, package.tokenizer, [obs]), 1, noise)
    blue_obs = {**obs, "instruction": np.array("put the blue cube in the bin")}
    blue = policy.sample_actions(encoder_feed(package.spec, package.tokenizer, [blue_obs]), 1, noise)
    assert np.abs(red - blue).max() > 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["diffusion", "vla"])
def test_fused_sampler_graph_matches_the_numpy_loop(tmp_path, kind):
    from policy_packages import normalizations
    from robostack.policies.export import export_model

    make = tiny_diffusion_package if kind == "diffusion" else tiny_vla_package
    model, package = make(tmp_path / "plain", seed=4)
    state, action = normalizations(4)
    fused_pkg = export_model(model, tmp_path / "fused", fps=20, state_normalization=state, action_normalization=action,
                             tokenizer=package.tokenizer, steps=6, fused_sampler=True)
    assert "sampler" in fused_pkg.spec.graphs
    rng = np.random.default_rng(4)
    feed = encoder_feed(fused_pkg.spec, fused_pkg.tokenizer, [random_observation(rng) for _ in range(fused_pkg.spec.observation_horizon)])
    noise = rng.standard_normal((3, 8, 8)).astype(np.float32)
    looped = OnnxPolicy(fused_pkg).sample_actions(feed, 3, noise)
    fused = OnnxPolicy(fused_pkg, fused=True).sample_actions(feed, 3, noise)
    assert np.abs(looped - fused).max() <= TOLERANCE
    with pytest.raises(ValueError, match="cannot run 4"):
        OnnxPolicy(fused_pkg, fused=True, steps=4)


@pytest.mark.slow
def test_the_serving_engine_samples_a_batch_through_the_fused_graph_like_the_step_loop(tmp_path):
    from policy_packages import normalizations
    from robostack.policies.export import export_model
    from robostack.policies.package import PolicyPackageError
    from robostack.policies.serving_engine import EngineConfig, ServingEngine

    model, package = tiny_diffusion_package(tmp_path / "plain", seed=5)
    state, action = normalizations(5)
    fused_pkg = export_model(model, tmp_path / "fused", fps=20, state_normalization=state, action_normalization=action,
                             tokenizer=package.tokenizer, steps=6, fused_sampler=True)
    looped, fused = ServingEngine(fused_pkg), ServingEngine(fused_pkg, EngineConfig(fused=True))
    assert fused.describe()["fused"] and not looped.describe()["fused"]
    rng = np.random.default_rng(5)
    T = fused_pkg.spec.observation_horizon
    feeds = [encoder_feed(fused_pkg.spec, fused_pkg.tokenizer, [random_observation(rng) for _ in range(T)]) for _ in range(2)]
    noises = [rng.standard_normal((n, 8, 8)).astype(np.float32) for n in (1, 3)]
    want, _ = looped.sample(feeds, noises)
    got, timing = fused.sample(feeds, noises)
    # One call for the whole batch and no step calls; the encoder runs only for the declared embedding.
    assert fused_pkg.spec.embedding_output is not None and timing.calls == {"encoder": 1, "sampler": 1}
    for w, g in zip(want, got):
        assert g.actions.shape == w.actions.shape and np.abs(g.actions - w.actions).max() <= TOLERANCE
        np.testing.assert_array_equal(g.embedding, w.embedding)
    # A frozen prefix needs the step loop: that request is sampled there, with the same result.
    prefix = [None, want[1].actions[0, :2].astype(np.float32)]
    want, _ = looped.sample(feeds, noises, prefix)
    got, timing = fused.sample(feeds, noises, prefix)
    assert "sampler" not in timing.calls and np.abs(got[1].actions - want[1].actions).max() <= TOLERANCE
    with pytest.raises(PolicyPackageError, match="has no 'sampler' graph"):
        ServingEngine(package, EngineConfig(fused=True))
    with pytest.raises(PolicyPackageError, match="cannot serve 4 steps"):
        ServingEngine(fused_pkg, EngineConfig(fused=True, steps=4))
