"""Raw observations -> encoder graph inputs, the same code for training and serving.

Images are resized by area averaging (separable weight matrices, numpy only), normalized and put
channel-first; vectors are normalized; text is tokenized. Training decodes dataset frames through
:func:`resize_image` too, so a policy never sees differently resized pixels at run time.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Mapping, Sequence

import numpy as np

from robostack.policies.package import InputSpec, PolicySpec
from robostack.policies.tokenizer import WordTokenizer


class ObservationError(ValueError):
    """An observation that lacks an input the policy needs, or has the wrong shape."""


@lru_cache(maxsize=64)
def _area_weights(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` matrix whose row i averages the input pixels output pixel i covers."""
    scale = n_in / n_out
    weights = np.zeros((n_out, n_in), dtype=np.float64)
    for i in range(n_out):
        lo, hi = i * scale, (i + 1) * scale
        if scale < 1.0:  # upscaling: the input pixel the output centre falls in
            weights[i, min(int((lo + hi) / 2), n_in - 1)] = 1.0
            continue
        for j in range(int(np.floor(lo)), min(int(np.ceil(hi)), n_in)):
            weights[i, j] = max(0.0, min(hi, j + 1) - max(lo, j))
        weights[i] /= weights[i].sum()
    return weights.astype(np.float32)


def resize_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize an ``(H, W, 3)`` uint8 image to ``(height, width, 3)`` by area averaging."""
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ObservationError(f"expected an (H, W, 3) image, got shape {img.shape}")
    if img.shape[:2] == (height, width):
        return np.ascontiguousarray(img, dtype=np.uint8)
    wy = _area_weights(img.shape[0], height)
    wx = _area_weights(img.shape[1], width)
    f = img.astype(np.float32)
    out = np.einsum("ih,hwc->iwc", wy, f)
    out = np.einsum("jw,iwc->ijc", wx, out)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _observed(obs: Mapping[str, np.ndarray], spec: InputSpec) -> np.ndarray:
    if spec.name not in obs:
        raise ObservationError(f"observation has no {spec.name!r} (the policy needs it; observation keys: {sorted(obs)})")
    return np.asarray(obs[spec.name])


def image_input(spec: InputSpec, frames: Sequence[np.ndarray]) -> np.ndarray:
    """``(T, 3, h, w)`` float32 from T raw frames (resized to the declared size)."""
    h, w, _ = spec.shape
    stacked = np.stack([resize_image(f, h, w) for f in frames])
    return spec.normalization.apply(stacked)


def vector_input(spec: InputSpec, values: Sequence[np.ndarray]) -> np.ndarray:
    """``(T, D)`` float32 from T raw vectors."""
    arr = np.stack([np.asarray(v, dtype=np.float64).reshape(-1) for v in values])
    if arr.shape[1] != spec.shape[0]:
        raise ObservationError(f"{spec.name!r}: expected {spec.shape[0]} values, got {arr.shape[1]}")
    if not np.all(np.isfinite(arr)):
        raise ObservationError(f"{spec.name!r}: contains NaN or Inf")
    return spec.normalization.apply(arr)


def text_input(spec: InputSpec, tokenizer: WordTokenizer, text: str) -> np.ndarray:
    """``(L,)`` int64 token ids."""
    return np.asarray(tokenizer.encode(text), dtype=np.int64)


def encoder_feed(spec: PolicySpec, tokenizer: WordTokenizer | None, history: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Encoder inputs (batch of 1) from the last ``observation_horizon`` observations, oldest
    first; text comes from the newest observation."""
    if len(history) != spec.observation_horizon:
        raise ObservationError(f"need {spec.observation_horizon} observations, got {len(history)}")
    feed: dict[str, np.ndarray] = {}
    for inp in spec.inputs:
        if inp.kind == "image":
            frames = [_observed(o, inp) for o in history]
            for f in frames:
                if f.ndim != 3 or f.shape[2] != 3 or f.dtype != np.uint8:
                    raise ObservationError(f"{inp.name!r}: expected an (H, W, 3) uint8 image, got {f.dtype} {f.shape}")
            feed[inp.name] = image_input(inp, frames)[None]
        elif inp.kind == "vector":
            feed[inp.name] = vector_input(inp, [_observed(o, inp) for o in history])[None]
        else:
            assert tokenizer is not None
            text = _observed(history[-1], inp)
            feed[inp.name] = text_input(inp, tokenizer, str(text.item() if text.ndim == 0 else text))[None]
    return feed
