"""Training samples from a LeRobot v3 dataset, held in memory (numpy, no torch).

Each episode's camera frames are decoded once and resized to the model's image size with the
serving code's :func:`~robostack.policies.preprocessing.resize_image`. A sample at frame ``t`` is
the observations at ``t-T+1 … t`` (clamped to the episode start) and the actions at
``t … t+H-1`` (the last action repeated past the episode end), matching how the deployed policy
stamps a chunk: its first action is meant for the newest observation's time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from robostack.policies.normalization import Normalization, min_max_from_data
from robostack.policies.preprocessing import resize_image

IMAGE_PREFIX = "observation.images."
STATE_KEY = "observation.state"
ACTION_KEY = "action"


class TrainingDataError(ValueError):
    """A dataset that cannot be trained on (missing columns, unknown camera, no episodes)."""


def camera_input_name(video_key: str) -> str:
    """``observation.images.front`` -> ``image/front`` (the observation key the twin and the
    drivers use)."""
    return "image/" + video_key[len(IMAGE_PREFIX):]


@dataclass
class EpisodeArrays:
    index: int
    task: str
    state: np.ndarray
    action: np.ndarray
    images: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def length(self) -> int:
        return int(self.state.shape[0])


@dataclass
class TrainingData:
    root: Path
    fps: float
    episodes: list[EpisodeArrays]
    cameras: tuple[str, ...]
    state_names: tuple[str, ...]
    action_names: tuple[str, ...]
    stats: dict[str, Any]
    source_image_shapes: dict[str, list[int]] = field(default_factory=dict)
    """Recorded ``[height, width, 3]`` per camera input, before resizing."""

    @property
    def tasks(self) -> list[str]:
        return sorted({e.task for e in self.episodes})

    def normalization(self, key: str) -> Normalization:
        """``min_max`` from the dataset's ``meta/stats.json`` when it has the feature, else from
        the loaded frames."""
        s = self.stats.get(key)
        if s and "min" in s and "max" in s:
            return Normalization("min_max", {"min": np.asarray(s["min"], np.float64).ravel(), "max": np.asarray(s["max"], np.float64).ravel()})
        column = "state" if key == STATE_KEY else "action"
        return min_max_from_data(np.concatenate([getattr(e, column) for e in self.episodes]))

    def describe(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "episodes": len(self.episodes),
            "frames": int(sum(e.length for e in self.episodes)),
            "fps": self.fps,
            "cameras": list(self.cameras),
            "source_image_shapes": self.source_image_shapes,
            "tasks": self.tasks,
        }


def load_training_data(
    root: str | Path,
    image_size: tuple[int, int],
    cameras: Sequence[str] | None = None,
    max_episodes: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> TrainingData:
    """Load every episode (or the first ``max_episodes``) of the dataset at ``root``.
    ``cameras`` are camera names (``front``) or video keys; default: all cameras."""
    from robostack.dataset.reader import DatasetReader

    reader = DatasetReader(root)
    features = reader.features
    for key in (STATE_KEY, ACTION_KEY):
        if key not in features:
            raise TrainingDataError(f"{root}: the dataset has no {key!r} feature (features: {sorted(features)})")
    available = reader.video_keys
    if cameras is None:
        keys = list(available)
    else:
        keys = []
        for cam in cameras:
            key = cam if cam.startswith(IMAGE_PREFIX) else IMAGE_PREFIX + cam
            if key not in available:
                raise TrainingDataError(f"{root}: no camera {cam!r}; the dataset has {[k[len(IMAGE_PREFIX):] for k in available]}")
            keys.append(key)
    n = reader.num_episodes if max_episodes is None else min(max_episodes, reader.num_episodes)
    if n == 0:
        raise TrainingDataError(f"{root}: the dataset has no episodes")
    h, w = image_size
    episodes = []
    for i in range(n):
        ep = reader.load_episode(i)
        state = np.asarray(ep.columns[STATE_KEY], dtype=np.float32)
        action = np.asarray(ep.columns[ACTION_KEY], dtype=np.float32)
        images = {}
        for key in keys:
            frames = np.empty((ep.length, h, w, 3), dtype=np.uint8)
            count = 0
            for j, rgb in reader.frames(i, key):
                frames[j] = resize_image(rgb, h, w)
                count += 1
            if count != ep.length:
                raise TrainingDataError(f"{root}: episode {i} camera {key!r} decoded {count} frames, the episode has {ep.length}")
            images[camera_input_name(key)] = frames
        episodes.append(EpisodeArrays(i, ep.task, state, action, images))
        if progress:
            progress(1)
    stats_path = Path(root) / "meta" / "stats.json"
    stats = json.loads(stats_path.read_text()) if stats_path.is_file() else {}
    return TrainingData(
        root=Path(root),
        fps=float(reader.fps),
        episodes=episodes,
        cameras=tuple(camera_input_name(k) for k in keys),
        state_names=tuple(features[STATE_KEY].get("names") or ()),
        action_names=tuple(features[ACTION_KEY].get("names") or ()),
        stats=stats,
        source_image_shapes={camera_input_name(k): list(features[k]["shape"]) for k in keys},
    )


def next_keyframe_actions(action: np.ndarray, gripper_dim: int, threshold: float) -> np.ndarray:
    """Per frame ``t`` of one episode's ``(T, A)`` actions: the action at the next gripper event,
    the first frame ``k >= t`` whose gripper command (``action[:, gripper_dim]``) is on the other
    side of ``threshold`` than at ``k - 1``; after the last event, the episode's final action.
    For a pick-and-place demo that is the grasp pose until the grasp, then the release pose:
    a target that says where the arm is headed, readable only by locating the object."""
    action = np.asarray(action)
    if action.ndim != 2 or action.shape[0] == 0:
        raise TrainingDataError(f"actions must be a non-empty (T, A) array, got shape {action.shape}")
    if not -action.shape[1] <= gripper_dim < action.shape[1]:
        raise TrainingDataError(f"gripper dimension {gripper_dim} is outside the action's {action.shape[1]} dimensions")
    closed = action[:, gripper_dim] > threshold
    events = np.flatnonzero(closed[1:] != closed[:-1]) + 1
    # For each frame, the index of the first event at or after it (the last frame past the final one).
    nxt = np.searchsorted(events, np.arange(len(action)), side="left")
    keyframe = np.append(events, len(action) - 1)[nxt]
    return action[keyframe]


class WindowSampler:
    """Samples of (observation window, action chunk) from a list of episodes; with
    ``keyframe_gripper`` (``(gripper_dim, threshold)``) also each sample's next-keyframe action
    (:func:`next_keyframe_actions`, at the newest observation)."""

    def __init__(
        self,
        episodes: Sequence[EpisodeArrays],
        obs_horizon: int,
        action_horizon: int,
        keyframe_gripper: tuple[int, float] | None = None,
    ) -> None:
        if not episodes:
            raise TrainingDataError("no episodes to sample from")
        self.episodes = list(episodes)
        self.obs_horizon = obs_horizon
        self.action_horizon = action_horizon
        self.index = np.array([(e, t) for e, ep in enumerate(self.episodes) for t in range(ep.length)], dtype=np.int64)
        self.keyframes = None if keyframe_gripper is None else [next_keyframe_actions(ep.action, *keyframe_gripper) for ep in self.episodes]

    def __len__(self) -> int:
        return len(self.index)

    def batch(self, rows: np.ndarray) -> dict[str, Any]:
        """Raw arrays for the samples ``rows`` (indices into :attr:`index`): per camera
        ``(B, T, h, w, 3)`` uint8, ``state (B, T, D)``, ``action (B, H, A)``, ``instruction``
        (list of str), and with keyframes ``keyframe (B, A)``."""
        out: dict[str, list[Any]] = {"state": [], "action": [], "instruction": []}
        if self.keyframes is not None:
            out["keyframe"] = []
        cams = list(self.episodes[0].images)
        for cam in cams:
            out[cam] = []
        for e, t in self.index[rows]:
            ep = self.episodes[e]
            obs_idx = np.clip(np.arange(t - self.obs_horizon + 1, t + 1), 0, ep.length - 1)
            act_idx = np.clip(np.arange(t, t + self.action_horizon), 0, ep.length - 1)
            for cam in cams:
                out[cam].append(ep.images[cam][obs_idx])
            out["state"].append(ep.state[obs_idx])
            out["action"].append(ep.action[act_idx])
            out["instruction"].append(ep.task)
            if self.keyframes is not None:
                out["keyframe"].append(self.keyframes[e][t])
        return {k: (v if k == "instruction" else np.stack(v)) for k, v in out.items()}


def split_episodes(episodes: Sequence[EpisodeArrays], val_fraction: float, seed: int) -> tuple[list[EpisodeArrays], list[EpisodeArrays]]:
    """Whole episodes held out for validation (none when there is a single episode)."""
    n = len(episodes)
    n_val = int(round(n * val_fraction)) if n > 1 else 0
    if val_fraction > 0 and n > 1:
        n_val = max(1, min(n_val, n - 1))
    order = np.random.default_rng(seed).permutation(n)
    val = set(order[:n_val].tolist())
    return [e for i, e in enumerate(episodes) if i not in val], [e for i, e in enumerate(episodes) if i in val]
