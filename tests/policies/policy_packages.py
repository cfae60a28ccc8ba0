"""Tiny randomly initialised policies exported to real packages, for tests that run in seconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from policy_datasets import INSTRUCTIONS

STATE_DIM = 8  # the twin's Panda: 7 arm joints + gripper
ACTION_DIM = 8


def normalizations(seed: int = 0):
    from robostack.policies.normalization import min_max_from_data

    rng = np.random.default_rng(seed)
    state = min_max_from_data(rng.uniform(-2.0, 2.0, (64, STATE_DIM)))
    action = min_max_from_data(rng.uniform(-1.0, 1.5, (64, ACTION_DIM)))
    return state, action


def tiny_diffusion_package(out: Path, seed: int = 0, image_size=(32, 32), horizon: int = 8, config=None):
    """(torch model, loaded package) of a random tiny diffusion policy with one camera
    (``config``: a :class:`DiffusionConfig`, default the tiny one)."""
    import torch

    from robostack.policies.diffusion_model import TINY_DIFFUSION, DiffusionPolicyModel
    from robostack.policies.export import export_model
    from robostack.policies.model_inputs import ModelInputs

    torch.manual_seed(seed)
    inputs = ModelInputs(("image/front",), image_size, STATE_DIM, ACTION_DIM, 2, horizon)
    model = DiffusionPolicyModel(inputs, config or TINY_DIFFUSION).eval()
    state, action = normalizations(seed)
    package = export_model(model, out, fps=20, state_normalization=state, action_normalization=action, name="tiny-diffusion")
    return model, package


def fit_failure_on_twin_observations(package, seeds: tuple[int, ...], image_size=(32, 32)):
    """Fit a tiny RND + ACE failure block into ``package`` (a one-camera package) from the
    policy's embeddings and 4 sampled chunks of each seed's first twin observation; returns the
    reloaded package."""
    from robostack.policies.failure.fit import fit_package
    from robostack.policies.failure.rnd_training import RndConfig
    from robostack.policies.onnx_policy import OnnxPolicy
    from robostack.policies.preprocessing import encoder_feed
    from robostack.sim.env import TwinConfig, TwinEnv

    policy, env = OnnxPolicy(package), TwinEnv(TwinConfig(obs_cameras=("front",), image_size=image_size))
    embeddings, actions = [], []
    try:
        for seed in seeds:
            policy.reset(seed)
            policy.observe(env.reset(seed), 0)
            chunks = policy.sample_actions(encoder_feed(policy.spec, policy.package.tokenizer, policy.history()), 4)
            embeddings.append(policy.last_embedding)
            actions.append(chunks.reshape(-1, chunks.shape[-1]))
    finally:
        env.close()
    fitted, _ = fit_package(package, np.stack(embeddings), np.concatenate(actions), [{"kind": "rollouts", "seeds": [seeds[0], seeds[-1]]}],
                            RndConfig(target_hidden=(16,), predictor_hidden=(16,), out_dim=8, steps=10, batch_size=len(seeds)))
    return fitted


def tiny_streaming_package(out: Path, seed: int = 0, chunks: int = 4, steps: int = 8, horizon: int = 8):
    """(torch model, loaded package) of a random tiny streaming-diffusion (SDP) policy: ``chunks``
    chunks of the ``horizon``, ``steps`` DDIM steps (``steps / chunks`` per call)."""
    from dataclasses import replace

    from robostack.policies.diffusion_model import TINY_DIFFUSION

    config = replace(TINY_DIFFUSION, streaming=True, stream_chunks=chunks, inference_steps=steps)
    return tiny_diffusion_package(out, seed, horizon=horizon, config=config)


def tiny_vla_package(out: Path, seed: int = 0, image_size=(32, 32), horizon: int = 8, config=None):
    """(torch model, loaded package) of a random tiny VLA-style policy with one camera
    (``config``: a ``VlaConfig``, default ``TINY_VLA``)."""
    import torch

    from robostack.policies.export import export_model
    from robostack.policies.model_inputs import ModelInputs
    from robostack.policies.tokenizer import WordTokenizer
    from robostack.policies.vla_model import TINY_VLA, VlaPolicyModel

    torch.manual_seed(seed)
    tokenizer = WordTokenizer.build(INSTRUCTIONS, max_length=8)
    inputs = ModelInputs(("image/front",), image_size, STATE_DIM, ACTION_DIM, 1, horizon, tokenizer.size, tokenizer.max_length)
    model = VlaPolicyModel(inputs, config or TINY_VLA).eval()
    state, action = normalizations(seed)
    package = export_model(model, out, fps=20, state_normalization=state, action_normalization=action, tokenizer=tokenizer, name="tiny-vla")
    return model, package


def random_observation(rng: np.random.Generator, height: int = 48, width: int = 64, instruction: str = INSTRUCTIONS[0]) -> dict:
    return {
        "image/front": rng.integers(0, 256, (height, width, 3), dtype=np.uint8),
        "state": rng.uniform(-2.0, 2.0, STATE_DIM).astype(np.float32),
        "instruction": np.array(instruction),
    }
