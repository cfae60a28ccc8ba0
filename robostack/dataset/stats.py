"""Per-feature statistics in the shape LeRobot's ``meta/stats.json`` uses: ``min``, ``max``,
``mean``, ``std``, ``count`` and quantiles ``q01 q10 q50 q90 q99``; vectors per dimension,
images per channel as ``(3, 1, 1)`` scaled to [0, 1]."""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
QUANTILE_KEYS = tuple(f"q{int(round(q * 100)):02d}" for q in QUANTILES)

Stats = dict[str, np.ndarray]


def vector_stats(values: np.ndarray) -> Stats:
    """Stats of ``(N,)`` (scalars; result shape ``(1,)``) or ``(N, D)`` samples (shape ``(D,)``)."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"stats need (N,) or (N, D) samples with N > 0, got shape {np.shape(values)}")
    out: Stats = {
        "min": x.min(axis=0),
        "max": x.max(axis=0),
        "mean": x.mean(axis=0),
        "std": x.std(axis=0),
        "count": np.array([x.shape[0]]),
    }
    qs = np.quantile(x, QUANTILES, axis=0)
    for key, q in zip(QUANTILE_KEYS, qs):
        out[key] = q
    return out


def image_stats(frames: np.ndarray) -> Stats:
    """Per-channel stats of ``(N, H, W, 3)`` uint8 frames, scaled to [0, 1], shaped ``(3, 1, 1)``;
    ``count`` is the number of frames sampled."""
    f = np.asarray(frames)
    if f.ndim != 4 or f.shape[-1] != 3 or f.shape[0] == 0:
        raise ValueError(f"image stats need (N, H, W, 3) frames, got shape {f.shape}")
    per_channel = f.reshape(-1, 3).astype(np.float64) / 255.0
    s = vector_stats(per_channel)
    return {k: (v if k == "count" else v.reshape(3, 1, 1)) for k, v in s.items()} | {"count": np.array([f.shape[0]])}


def aggregate(stats_list: Iterable[Stats]) -> Stats:
    """Combine per-episode stats: exact min/max/mean/std/count; quantiles as the count-weighted
    mean of the episodes' quantiles (an approximation, as in LeRobot)."""
    items = [s for s in stats_list if s]
    if not items:
        raise ValueError("nothing to aggregate")
    counts = np.array([float(s["count"][0]) for s in items])
    w = counts / counts.sum()
    shape = np.shape(items[0]["mean"])
    wb = w.reshape((-1,) + (1,) * len(shape))
    means = np.stack([np.asarray(s["mean"], dtype=np.float64) for s in items])
    mean = (wb * means).sum(axis=0)
    second = (wb * (np.stack([np.asarray(s["std"], dtype=np.float64) for s in items]) ** 2 + means**2)).sum(axis=0)
    out: Stats = {
        "min": np.min(np.stack([s["min"] for s in items]), axis=0),
        "max": np.max(np.stack([s["max"] for s in items]), axis=0),
        "mean": mean,
        "std": np.sqrt(np.maximum(second - mean**2, 0.0)),
        "count": np.array([int(counts.sum())]),
    }
    for key in QUANTILE_KEYS:
        if all(key in s for s in items):
            out[key] = (wb * np.stack([np.asarray(s[key], dtype=np.float64) for s in items])).sum(axis=0)
    return out


def to_json(stats: dict[str, Stats]) -> dict[str, dict[str, Any]]:
    return {feat: {k: np.asarray(v).tolist() for k, v in s.items()} for feat, s in stats.items()}


def from_json(obj: dict[str, dict[str, Any]]) -> dict[str, Stats]:
    return {feat: {k: np.asarray(v) for k, v in s.items()} for feat, s in obj.items()}
