"""Reading a dataset back: metadata, an episode's frame rows, its decoded camera frames."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from robostack.dataset import metadata
from robostack.dataset.errors import DatasetError
from robostack.dataset.layout import DATA_PATH, VIDEO_PATH


@dataclass
class Episode:
    """One episode's frame rows as numpy columns (vectors as ``(N, D)``) and its metadata row."""

    index: int
    columns: dict[str, np.ndarray]
    meta: dict[str, Any]

    @property
    def length(self) -> int:
        return int(self.meta["length"])

    @property
    def task(self) -> str:
        return self.meta["tasks"][0] if self.meta.get("tasks") else ""


class DatasetReader:
    """Read access to a dataset directory in the LeRobot v3.0 layout."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: no such dataset directory")
        self.info = metadata.read_info(self.root)
        self.episodes = metadata.read_episodes(self.root)
        self.tasks = metadata.read_tasks(self.root)

    @property
    def fps(self) -> int:
        return int(self.info["fps"])

    @property
    def features(self) -> dict[str, dict[str, Any]]:
        return self.info["features"]

    @property
    def video_keys(self) -> list[str]:
        return [k for k, f in self.features.items() if f["dtype"] == "video"]

    @property
    def num_episodes(self) -> int:
        return len(self.episodes)

    def _meta(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self.episodes):
            raise DatasetError(f"{self.root}: no episode {index} (the dataset has {len(self.episodes)})")
        return self.episodes[index]

    def data_path(self, index: int) -> Path:
        m = self._meta(index)
        template = self.info.get("data_path", DATA_PATH)
        return self.root / template.format(chunk_index=m["data/chunk_index"], file_index=m["data/file_index"])

    def video_path(self, index: int, video_key: str) -> Path:
        m = self._meta(index)
        if video_key not in self.video_keys:
            raise DatasetError(f"no video {video_key!r}; the dataset has {self.video_keys}")
        template = self.info.get("video_path") or VIDEO_PATH
        return self.root / template.format(
            video_key=video_key, chunk_index=m[f"videos/{video_key}/chunk_index"], file_index=m[f"videos/{video_key}/file_index"]
        )

    def load_episode(self, index: int) -> Episode:
        """The frame rows of episode ``index`` (from the rows of its data file that belong to it)."""
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        m = self._meta(index)
        table = pq.read_table(self.data_path(index))
        table = table.filter(pc.equal(table["episode_index"], index))
        cols: dict[str, np.ndarray] = {}
        for name in table.column_names:
            col = table[name].combine_chunks()
            if str(col.type).startswith("fixed_size_list"):
                cols[name] = col.flatten().to_numpy(zero_copy_only=False).reshape(len(col), col.type.list_size)
            else:
                cols[name] = col.to_numpy(zero_copy_only=False)
        order = np.argsort(cols["frame_index"], kind="stable")
        cols = {k: v[order] for k, v in cols.items()}
        return Episode(index, cols, m)

    def frames(self, index: int, video_key: str, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Decoded ``(frame_index, rgb)`` of one camera of episode ``index``."""
        from robostack.dataset.video import decode_frames

        m = self._meta(index)
        offset = int(round(float(m[f"videos/{video_key}/from_timestamp"]) * self.fps))
        stop = m["length"] if stop is None else min(stop, m["length"])
        for i, img in decode_frames(self.video_path(index, video_key), offset + start, offset + stop):
            yield i - offset, img

    def summary(self) -> dict[str, Any]:
        lengths = [int(e["length"]) for e in self.episodes]
        recovered = [e["episode_index"] for e in self.episodes if e.get("robostack/recovered")]
        return {
            "root": str(self.root),
            "codebase_version": self.info.get("codebase_version"),
            "robot_type": self.info.get("robot_type"),
            "fps": self.fps,
            "episodes": len(self.episodes),
            "frames": int(sum(lengths)),
            "duration_s": round(sum(lengths) / self.fps, 3),
            "episode_length_s": {
                "min": round(min(lengths) / self.fps, 3) if lengths else None,
                "max": round(max(lengths) / self.fps, 3) if lengths else None,
            },
            "tasks": self.tasks,
            "cameras": {k: self.features[k]["shape"] for k in self.video_keys},
            "state": self.features.get("observation.state", {}).get("names"),
            "action": self.features.get("action", {}).get("names"),
            "recovered_episodes": recovered,
            "duplicated_frames": {k[len("robostack/dup/"):]: int(sum(e.get(k) or 0 for e in self.episodes)) for k in (self.episodes[0] if self.episodes else {}) if k.startswith("robostack/dup/")},
            "dropped_samples": {k[len("robostack/dropped/"):]: int(sum(e.get(k) or 0 for e in self.episodes)) for k in (self.episodes[0] if self.episodes else {}) if k.startswith("robostack/dropped/")},
        }
