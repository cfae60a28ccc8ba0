"""Small real datasets (DatasetWriter, real H.264 video) for the policy tests.

Episodes move a coloured square across the front camera while the state ramps; the action is the
state one step ahead, so there is something learnable and the frames differ per episode.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from robostack.dataset import CameraSpec, DatasetSpec, VideoEncoderConfig
from robostack.dataset.journal import Sample

PERIOD_NS = 50_000_000
INSTRUCTIONS = ("put the red cube in the bin", "put the blue cube in the bin")


def tiny_spec(fps: int = 20) -> DatasetSpec:
    return DatasetSpec(
        fps=fps,
        cameras=(CameraSpec("front", 48, 64),),
        state_names=("j0", "j1", "j2", "gripper"),
        action_names=("j0", "j1", "j2", "gripper"),
        video=VideoEncoderConfig(codec="libx264"),
    )


def frame(k: int, episode: int, height: int = 48, width: int = 64) -> np.ndarray:
    img = np.full((height, width, 3), 40, np.uint8)
    x = (4 * k + 7 * episode) % (width - 8)
    colour = (220, 30, 30) if episode % 2 == 0 else (30, 30, 220)
    img[10:18, x : x + 8] = colour
    return img


def write_tiny_dataset(root: Path, lengths: list[int]) -> DatasetSpec:
    """One episode per entry of ``lengths``; even episodes 'red', odd ones 'blue'."""
    from robostack.dataset.writer import DatasetWriter

    spec = tiny_spec()
    writer = DatasetWriter(root, spec)
    for e, n in enumerate(lengths):
        ep = writer.begin_episode(INSTRUCTIONS[e % 2])
        for k in range(n):
            state = np.array([0.1 * k, -0.05 * k + e, np.sin(0.3 * k), 0.02 * (k % 5)], np.float32)
            action = state + np.array([0.1, -0.05, 0.1, 0.0], np.float32)
            samples = {key: Sample(stamp_ns=1_000_000_000 + k * PERIOD_NS - 1_000_000, seq=k) for key in spec.stream_keys}
            ep.add_frame(1_000_000_000 + k * PERIOD_NS, state, action, {"observation.images.front": frame(k, e)}, samples)
        ep.save()
    return spec
