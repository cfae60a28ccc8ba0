"""Noise schedules and sampler updates in numpy: DDIM (deterministic, eta = 0) for denoising
diffusion, Euler integration for flow matching. The serving side owns the sampling loop and calls
the exported step graph once per step; training code takes its schedule constants from here, so
both sides agree to the last bit on the constants.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np


def squaredcos_alphas_cumprod(train_timesteps: int, max_beta: float = 0.999) -> np.ndarray:
    """Cumulative product of ``1 - beta_t`` for the cosine schedule (Nichol & Dhariwal 2021),
    shape ``(train_timesteps,)`` float64."""
    if train_timesteps < 2:
        raise ValueError(f"train_timesteps must be >= 2, got {train_timesteps}")

    def alpha_bar(t: float) -> float:
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    betas = [min(1 - alpha_bar((i + 1) / train_timesteps) / alpha_bar(i / train_timesteps), max_beta) for i in range(train_timesteps)]
    return np.cumprod(1.0 - np.asarray(betas, dtype=np.float64))


def ddim_timesteps(train_timesteps: int, steps: int) -> np.ndarray:
    """The ``steps`` training timesteps DDIM visits, high to low (evenly spaced, ending at 0)."""
    if not 1 <= steps <= train_timesteps:
        raise ValueError(f"DDIM steps must be in [1, {train_timesteps}], got {steps}")
    ratio = train_timesteps // steps
    return (np.arange(steps, dtype=np.int64) * ratio)[::-1].copy()


def ddim_update(
    sample: np.ndarray,
    epsilon: np.ndarray,
    t: int,
    t_prev: int,
    alphas_cumprod: np.ndarray,
    clip_sample: float | None,
) -> np.ndarray:
    """One deterministic DDIM step from timestep ``t`` to ``t_prev`` (``t_prev < 0``: to the clean
    sample), given the predicted noise. The predicted clean sample is clipped to
    ``[-clip_sample, clip_sample]`` when set (actions are normalized to [-1, 1])."""
    a_t = np.float32(alphas_cumprod[t])
    a_prev = np.float32(alphas_cumprod[t_prev]) if t_prev >= 0 else np.float32(1.0)
    x0 = (sample - np.sqrt(np.float32(1.0) - a_t) * epsilon) / np.sqrt(a_t)
    if clip_sample is not None:
        x0 = np.clip(x0, -np.float32(clip_sample), np.float32(clip_sample))
    return (np.sqrt(a_prev) * x0 + np.sqrt(np.float32(1.0) - a_prev) * epsilon).astype(np.float32)


def flow_times(steps: int) -> np.ndarray:
    """Euler integration times ``0, 1/steps, …, (steps-1)/steps`` (noise at 0, data at 1)."""
    if steps < 1:
        raise ValueError(f"flow steps must be >= 1, got {steps}")
    return (np.arange(steps, dtype=np.float64) / steps).astype(np.float32)


def flow_update(sample: np.ndarray, velocity: np.ndarray, dt: float) -> np.ndarray:
    """``x <- x + dt * v``."""
    return (sample + np.float32(dt) * velocity).astype(np.float32)


def run_sampler(
    step: Callable[[dict[str, np.ndarray]], np.ndarray],
    noise: np.ndarray,
    cond: Mapping[str, np.ndarray],
    timesteps: np.ndarray,
    sampler: Any,
    steps: int,
) -> np.ndarray:
    """The sampling loop: from ``noise`` ``(B, H, A)`` through ``timesteps``, calling
    ``step(feed)`` (the exported step graph: ``sample``, ``timestep`` and the conditioning) once
    per step and applying the DDIM or flow-matching update; normalized actions ``(B, H, A)``."""
    x = np.asarray(noise, dtype=np.float32)
    batch = x.shape[0]
    for i, t in enumerate(timesteps):
        pred = step({"sample": x, "timestep": np.full(batch, t, dtype=np.float32), **cond})
        if sampler.type == "ddim":
            assert sampler.alphas_cumprod is not None
            t_prev = int(timesteps[i + 1]) if i + 1 < len(timesteps) else -1
            x = ddim_update(x, pred, int(t), t_prev, sampler.alphas_cumprod, sampler.clip_sample)
        else:
            x = flow_update(x, pred, 1.0 / steps)
    return x
