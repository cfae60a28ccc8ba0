"""A policy package from an untrained diffusion model with random weights: its graphs have the
size and shape of a real policy, so it serves for latency and throughput benchmarks (``robostack
bench policy`` / ``bench serve``) where no trained model of that size exists. Its actions are
noise: never use one for control. ``policy.json`` says so in ``provenance``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from robostack.policies.diffusion_model import DiffusionConfig, DiffusionPolicyModel
from robostack.policies.export import export_model, git_commit
from robostack.policies.model_inputs import ModelInputs
from robostack.policies.normalization import Normalization
from robostack.policies.package import PolicyPackage

CAMERA_NAMES = ("front", "wrist")
UNTRAINED_NOTE = "untrained: random weights, for serving benchmarks only; its actions are noise, never use it for control"


def camera_names(count: int) -> tuple[str, ...]:
    """``count`` camera inputs: ``image/front``, ``image/wrist`` (the shipped packages' names),
    then ``image/cam2``, ``image/cam3``, ..."""
    names = [*CAMERA_NAMES, *(f"cam{i}" for i in range(len(CAMERA_NAMES), count))]
    return tuple(f"image/{n}" for n in names[:count])


def write_random_package(
    out_dir: str | Path,
    config: DiffusionConfig,
    inputs: ModelInputs,
    *,
    steps: int = 16,
    fused_sampler: bool = False,
    seed: int = 0,
    fps: float = 20.0,
    name: str = "random-diffusion",
) -> PolicyPackage:
    """Export a randomly initialised :class:`DiffusionPolicyModel` (``seed``) to ``out_dir`` with
    ``steps`` DDIM steps and identity state/action normalization; returns the package as the
    validating loader reads it. ``provenance`` carries ``untrained``, the note, the seed, the
    architecture and ``parameters`` (the model's parameter count)."""
    if not 1 <= steps <= config.train_timesteps:  # checked before the export, which takes minutes at DP size
        raise ValueError(f"steps must be in 1..{config.train_timesteps} (the model's train timesteps), got {steps}")
    torch.manual_seed(seed)
    model = DiffusionPolicyModel(inputs, config).eval()
    identity = Normalization("identity", {})  # the weights are random: no data to normalize by
    return export_model(
        model,
        out_dir,
        fps=fps,
        state_normalization=identity,
        action_normalization=identity,
        name=name,
        steps=steps,
        fused_sampler=fused_sampler,
        provenance={
            "untrained": True,
            "description": UNTRAINED_NOTE,
            "generator": "robostack.policies.random_package",
            "seed": seed,
            "parameters": sum(p.numel() for p in model.parameters()),
            "model_config": config.to_dict(),
            "model_inputs": inputs.to_dict(),
            "commit": git_commit(Path(__file__).resolve().parent),
        },
    )
