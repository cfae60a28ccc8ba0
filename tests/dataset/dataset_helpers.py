"""Building small real datasets for the dataset tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from robostack.dataset import CameraSpec, DatasetSpec
from robostack.dataset.journal import Sample
from robostack.drivers.cameras.pattern import render_test_pattern

PERIOD_NS = 33_333_333


def small_spec(fps: int = 30, codec: str = "libx264") -> DatasetSpec:
    from robostack.dataset import VideoEncoderConfig

    return DatasetSpec(
        fps=fps,
        cameras=(CameraSpec("front", 96, 128), CameraSpec("wrist", 64, 96)),
        state_names=tuple(f"j{i}" for i in range(7)),
        action_names=tuple(f"j{i}" for i in range(7)),
        video=VideoEncoderConfig(codec=codec),
    )


def add_frames(episode, spec: DatasetSpec, n: int, start: int = 0) -> None:
    """Rows whose images show their own number and whose state equals it."""
    for k in range(start, start + n):
        images = {c.key: render_test_pattern(c.width, c.height, k) for c in spec.cameras}
        samples = {key: Sample(stamp_ns=1_000_000_000 + k * PERIOD_NS - 5_000_000, seq=k) for key in spec.stream_keys}
        episode.add_frame(1_000_000_000 + k * PERIOD_NS, np.full(7, k, np.float32), np.full(7, -k, np.float32), images, samples)


def write_dataset(root: Path, episodes: list[int], task: str = "pick the cube") -> DatasetSpec:
    from robostack.dataset.writer import DatasetWriter

    spec = small_spec()
    writer = DatasetWriter(root, spec)
    for n in episodes:
        ep = writer.begin_episode(task)
        add_frames(ep, spec, n)
        ep.save()
    return spec
