"""Rendered scene views labelled with object poses: extra training images for a policy's encoders.

Expert demos show only as many object layouts as there are demos, and an encoder trained from
scratch on ~200 of them learns to tell those layouts apart instead of locating the objects
(``docs/policies.md``). Views of many more layouts, each labelled with where the objects are,
give the encoders a localization task they can only solve on new layouts by finding the
objects. No actions are involved: the views come from the twin, not from an expert.

A views file is an ``.npz`` with ``image/<cam>`` ``(N, h, w, 3)`` uint8, ``state`` ``(N, D)``
float32 (the arm pose each view was rendered at), ``instruction`` ``(N,)`` str, ``targets``
``(N, K)`` float32 (about [-1, 1]) and ``target_names`` ``(K,)`` str. numpy only.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from robostack.policies.preprocessing import resize_image

IMAGE_PREFIX = "image/"


class LayoutViewsError(ValueError):
    """A views file that cannot be used (missing array, inconsistent sizes, bad values)."""


@dataclass
class LayoutViews:
    images: dict[str, np.ndarray]
    """``image/<cam>`` -> ``(N, h, w, 3)`` uint8."""
    state: np.ndarray
    instructions: np.ndarray
    targets: np.ndarray
    target_names: tuple[str, ...]

    def __post_init__(self) -> None:
        n = len(self.state)
        if self.state.ndim != 2 or n == 0:
            raise LayoutViewsError(f"state must be a non-empty (N, D) array, got shape {self.state.shape}")
        if not self.images:
            raise LayoutViewsError("views need at least one camera")
        for cam, frames in self.images.items():
            if not cam.startswith(IMAGE_PREFIX):
                raise LayoutViewsError(f"camera keys are {IMAGE_PREFIX}<name>, got {cam!r}")
            if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[0] != n or frames.shape[3] != 3:
                raise LayoutViewsError(f"{cam}: expected ({n}, h, w, 3) uint8, got {frames.shape} {frames.dtype}")
        if self.instructions.shape != (n,):
            raise LayoutViewsError(f"instruction: expected {n} strings, got shape {self.instructions.shape}")
        if self.targets.ndim != 2 or self.targets.shape[0] != n or self.targets.shape[1] != len(self.target_names):
            raise LayoutViewsError(f"targets: expected ({n}, {len(self.target_names)}) for {len(self.target_names)} names, got {self.targets.shape}")
        if not np.all(np.isfinite(self.targets)):
            raise LayoutViewsError("targets must be finite")

    def __len__(self) -> int:
        return len(self.state)

    @property
    def cameras(self) -> tuple[str, ...]:
        return tuple(self.images)

    def save(self, path: str | Path) -> Path:
        """Write atomically (a killed writer leaves the previous file or none)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(
            tmp, **self.images, state=self.state, instruction=self.instructions, targets=self.targets,
            target_names=np.asarray(self.target_names),
        )
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | Path, image_size: tuple[int, int] | None = None) -> "LayoutViews":
        """Read a views file; with ``image_size`` every image is area-resized to it (as the
        training data and the serving side resize camera frames)."""
        path = Path(path)
        if not path.is_file():
            raise LayoutViewsError(f"{path}: no views file")
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in ("state", "instruction", "targets", "target_names") if k not in npz.files]
            if missing:
                raise LayoutViewsError(f"{path}: missing {missing} (has {sorted(npz.files)})")
            images = {k: npz[k] for k in npz.files if k.startswith(IMAGE_PREFIX)}
            arrays: Mapping[str, Any] = {k: npz[k] for k in ("state", "instruction", "targets", "target_names")}
        if image_size is not None:
            h, w = image_size
            images = {k: np.stack([resize_image(f, h, w) for f in v]) if v.shape[1:3] != (h, w) else v for k, v in images.items()}
        try:
            return cls(
                images=images,
                state=np.asarray(arrays["state"], np.float32),
                instructions=np.asarray(arrays["instruction"]).astype(str),
                targets=np.asarray(arrays["targets"], np.float32),
                target_names=tuple(str(s) for s in arrays["target_names"]),
            )
        except LayoutViewsError as exc:
            raise LayoutViewsError(f"{path}: {exc}") from None

    def split(self, holdout_fraction: float) -> tuple["LayoutViews", "LayoutViews | None"]:
        """The first views for training, the last ``holdout_fraction`` (at least one, when any)
        held out to measure localization on layouts the encoders never saw."""
        n_out = int(round(len(self) * holdout_fraction)) if holdout_fraction > 0 else 0
        n_out = min(max(n_out, 1 if holdout_fraction > 0 else 0), len(self) - 1)
        if n_out <= 0:
            return self, None
        cut = len(self) - n_out
        return self._rows(slice(0, cut)), self._rows(slice(cut, None))

    def select_targets(self, patterns: tuple[str, ...]) -> "LayoutViews":
        """The views with only the targets whose names match one of ``patterns`` (shell-style,
        e.g. ``*.x``), in the file's order; raises :class:`LayoutViewsError` when a pattern
        matches none."""
        keep = [i for i, name in enumerate(self.target_names) if any(fnmatch.fnmatchcase(name, p) for p in patterns)]
        unmatched = [p for p in patterns if not any(fnmatch.fnmatchcase(name, p) for name in self.target_names)]
        if unmatched:
            raise LayoutViewsError(f"target pattern(s) {unmatched} match none of {list(self.target_names)}")
        return LayoutViews(self.images, self.state, self.instructions, self.targets[:, keep], tuple(self.target_names[i] for i in keep))

    def _rows(self, rows: Any) -> "LayoutViews":
        return LayoutViews(
            {k: v[rows] for k, v in self.images.items()}, self.state[rows], self.instructions[rows], self.targets[rows], self.target_names
        )

    def batch(self, rows: np.ndarray, obs_horizon: int) -> dict[str, Any]:
        """Raw arrays in the training sampler's layout: per camera ``(B, T, h, w, 3)``, ``state
        (B, T, D)`` (a still scene: the one view repeated ``T`` times), ``instruction`` (list of
        str), ``targets (B, K)``."""
        out: dict[str, Any] = {cam: np.repeat(frames[rows][:, None], obs_horizon, axis=1) for cam, frames in self.images.items()}
        out["state"] = np.repeat(self.state[rows][:, None], obs_horizon, axis=1)
        out["instruction"] = [str(s) for s in self.instructions[rows]]
        out["targets"] = self.targets[rows]
        return out


def check_layout_fields(targets: int, condition: bool, condition_cameras: tuple[str, ...], cameras: tuple[str, ...]) -> None:
    """Refuse inconsistent layout fields of a model config (``layout_targets``,
    ``layout_condition``, ``layout_condition_cameras``) for a model with these camera inputs."""
    if targets < 0:
        raise ValueError(f"layout_targets must be >= 0, got {targets}")
    if condition and targets < 1:
        raise ValueError("layout_condition needs layout_targets > 0 (train with layout views)")
    unknown = sorted(set(condition_cameras) - set(cameras))
    if unknown:
        raise ValueError(f"layout_condition_cameras {unknown} are not camera inputs of the model ({list(cameras)})")
    if condition_cameras and not condition:
        raise ValueError("layout_condition_cameras selects the cameras kept beside the poses of layout_condition: set it too")
