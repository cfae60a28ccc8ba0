"""Normalization of policy inputs and outputs, as declared in ``policy.json``.

Pure numpy, so a serving box without torch applies exactly what training applied. Kinds:

- ``min_max``: ``x -> 2 (x - min) / (max - min) - 1`` per dimension (to [-1, 1]); dimensions whose
  range is below ``eps`` are only centred (scale 1), so a constant joint does not blow up.
- ``mean_std``: ``x -> (x - mean) / std``.
- ``image``: ``uint8 (..., H, W, 3) -> float32 (..., 3, H, W)`` as ``(x * scale - mean) / std`` per
  channel (channel-first, the layout the encoder graphs take).
- ``identity``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Mapping

import numpy as np

MIN_RANGE = 1e-4
KINDS = ("min_max", "mean_std", "image", "identity")


class NormalizationError(ValueError):
    """A normalization spec that cannot be applied (unknown kind, wrong sizes)."""


@dataclass(frozen=True)
class Normalization:
    """One declared normalization (see module docstring)."""

    kind: str
    params: Mapping[str, np.ndarray]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None, where: str = "normalization") -> "Normalization":
        if d is None:
            return cls("identity", {})
        if not isinstance(d, Mapping):
            raise NormalizationError(f"{where}: expected an object, got {type(d).__name__}")
        kind = d.get("type")
        if kind not in KINDS:
            raise NormalizationError(f"{where}.type: unknown normalization {kind!r}; use one of {list(KINDS)}")
        required = {"min_max": ("min", "max"), "mean_std": ("mean", "std"), "image": ("scale", "mean", "std"), "identity": ()}[kind]
        allowed = {"type", *required}
        unknown = sorted(set(d) - allowed)
        if unknown:
            raise NormalizationError(f"{where}: unknown field(s) {unknown} for type {kind!r} (allowed: {sorted(allowed)})")
        params: dict[str, np.ndarray] = {}
        for key in required:
            if key not in d:
                raise NormalizationError(f"{where}: type {kind!r} needs field {key!r}")
            value = np.asarray(d[key], dtype=np.float64)
            if not np.all(np.isfinite(value)):
                raise NormalizationError(f"{where}.{key}: values must be finite")
            params[key] = value
        if kind == "mean_std" and np.any(params["std"] <= 0):
            raise NormalizationError(f"{where}.std: every std must be > 0")
        if kind == "image":
            for key in ("mean", "std"):
                if params[key].shape != (3,):
                    raise NormalizationError(f"{where}.{key}: image normalization needs 3 per-channel values, got shape {params[key].shape}")
            if np.any(params["std"] <= 0):
                raise NormalizationError(f"{where}.std: every std must be > 0")
        if kind == "min_max" and params["min"].shape != params["max"].shape:
            raise NormalizationError(f"{where}: min and max differ in shape ({params['min'].shape} vs {params['max'].shape})")
        return cls(kind, params)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.kind}
        for key, value in self.params.items():
            d[key] = float(value) if value.ndim == 0 else [float(v) for v in value.ravel()]
        return d

    def size(self) -> int | None:
        """Per-dimension length of the parameters (None when they broadcast to anything)."""
        if self.kind in ("min_max", "mean_std"):
            first = next(iter(self.params.values()))
            return None if first.ndim == 0 else int(first.shape[-1])
        return None

    def _min_max(self) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.params["min"], self.params["max"]
        span = hi - lo
        centre = (hi + lo) / 2.0
        half = np.where(span < MIN_RANGE, 1.0, span / 2.0)
        return centre, half

    @cached_property
    def _image_affine(self) -> tuple[np.ndarray, np.ndarray]:
        """``image`` kind: per-channel ``gain, offset`` (float32, shaped ``(3, 1, 1)``)."""
        std = self.params["std"].astype(np.float32)
        gain = np.float32(self.params["scale"]) / std
        offset = -self.params["mean"].astype(np.float32) / std
        return gain[:, None, None], offset[:, None, None]

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Raw -> normalized (float32)."""
        if self.kind == "identity":
            return np.asarray(x, dtype=np.float32)
        if self.kind == "image":
            img = np.asarray(x)
            if img.shape[-1] != 3:
                raise NormalizationError(f"image normalization expects (..., H, W, 3), got shape {img.shape}")
            # One channels-first float32 copy, scaled in place: (x·scale − mean)/std = x·gain + offset
            # per channel. This runs for every camera of every request on the server.
            gain, offset = self._image_affine
            out = np.ascontiguousarray(np.moveaxis(img, -1, -3), dtype=np.float32)
            out *= gain
            out += offset
            return out
        x = np.asarray(x, dtype=np.float64)
        if self.kind == "min_max":
            centre, half = self._min_max()
            return ((x - centre) / half).astype(np.float32)
        return ((x - self.params["mean"]) / self.params["std"]).astype(np.float32)

    def invert(self, y: np.ndarray) -> np.ndarray:
        """Normalized -> raw (float64); only for vector kinds."""
        y = np.asarray(y, dtype=np.float64)
        if self.kind == "identity":
            return y
        if self.kind == "min_max":
            centre, half = self._min_max()
            return y * half + centre
        if self.kind == "mean_std":
            return y * self.params["std"] + self.params["mean"]
        raise NormalizationError("image normalization cannot be inverted")


def min_max_from_data(values: np.ndarray) -> Normalization:
    """``min_max`` over the rows of ``(N, D)`` samples."""
    v = np.asarray(values, dtype=np.float64)
    return Normalization("min_max", {"min": v.min(axis=0), "max": v.max(axis=0)})


def default_image_normalization() -> Normalization:
    """Pixels to [-1, 1]."""
    return Normalization("image", {"scale": np.asarray(1.0 / 255.0), "mean": np.full(3, 0.5), "std": np.full(3, 0.5)})
