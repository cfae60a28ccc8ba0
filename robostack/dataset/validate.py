"""Checking a dataset against the LeRobot v3.0 layout and robostack's own invariants."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from robostack.dataset import metadata
from robostack.dataset.errors import DatasetError
from robostack.dataset.layout import CODEBASE_VERSION, JOURNAL_DIR, STATS_PATH

REQUIRED_COLUMNS = ("timestamp", "frame_index", "episode_index", "index", "task_index")
TIMESTAMP_TOLERANCE_S = 1e-4
TICK_TOLERANCE_NS = 1_000_000


@dataclass
class ValidationReport:
    root: Path
    problems: list[str] = field(default_factory=list)
    episodes_checked: int = 0
    frames_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def _arrow_type_ok(arrow_type, feat: dict[str, Any]) -> bool:
    import pyarrow as pa

    shape = list(feat["shape"])
    dtype = feat["dtype"]
    if shape == [1]:
        return str(arrow_type) == {"float32": "float", "float64": "double"}.get(dtype, dtype)
    if len(shape) == 1:
        inner = arrow_type.value_type if pa.types.is_list(arrow_type) or pa.types.is_fixed_size_list(arrow_type) else None
        size_ok = not pa.types.is_fixed_size_list(arrow_type) or arrow_type.list_size == shape[0]
        return inner is not None and size_ok and str(inner) == {"float32": "float", "float64": "double"}.get(dtype, dtype)
    return True


def validate(root: str | Path, *, decode_videos: bool = False, progress: Callable[[int], None] | None = None) -> ValidationReport:
    """Check everything cheap to check; with ``decode_videos`` also decode every frame."""
    import pyarrow.parquet as pq

    from robostack.dataset.reader import DatasetReader
    from robostack.dataset.video import count_decodable_frames, probe

    root = Path(root)
    report = ValidationReport(root)
    p = report.problems
    try:
        reader = DatasetReader(root)
    except DatasetError as exc:
        p.append(str(exc))
        return report
    info = reader.info
    if info.get("codebase_version") != CODEBASE_VERSION:
        p.append(f"meta/info.json: codebase_version is {info.get('codebase_version')!r}, expected {CODEBASE_VERSION!r}")
    fps = info.get("fps")
    if not isinstance(fps, int) or fps <= 0:
        p.append(f"meta/info.json: fps must be a positive integer, got {fps!r}")
        return report
    feats = info.get("features", {})
    for col in REQUIRED_COLUMNS:
        if col not in feats:
            p.append(f"meta/info.json: feature {col!r} is missing")
    bad_names = [k for k in feats if "/" in k]
    if bad_names:
        p.append(f"meta/info.json: feature names must not contain '/': {bad_names}")
    episodes = reader.episodes
    n = len(episodes)
    total_frames = sum(int(e["length"]) for e in episodes)
    if info.get("total_episodes") != n:
        p.append(f"meta/info.json counts {info.get('total_episodes')} episodes, meta/episodes has {n}")
    if info.get("total_frames") != total_frames:
        p.append(f"meta/info.json counts {info.get('total_frames')} frames, meta/episodes sums to {total_frames}")
    if info.get("total_tasks") != len(reader.tasks):
        p.append(f"meta/info.json counts {info.get('total_tasks')} tasks, meta/tasks.parquet has {len(reader.tasks)}")
    if n and not (root / STATS_PATH).exists():
        p.append("meta/stats.json is missing")
    journals = sorted((root / JOURNAL_DIR).glob("episode-*")) if (root / JOURNAL_DIR).exists() else []
    if journals:
        p.append(f"{len(journals)} unrecovered episode journal(s) in {JOURNAL_DIR}/: run `robostack dataset repair {root}`")

    expected_from = 0
    vector_cols = [k for k, f in feats.items() if f["dtype"] not in ("video", "image") and list(f["shape"]) != [1]]
    for i, ep in enumerate(episodes):
        where = f"episode {i}"
        if ep["episode_index"] != i:
            p.append(f"meta/episodes: expected episode {i}, found {ep['episode_index']}")
            break
        length = int(ep["length"])
        if ep["dataset_from_index"] != expected_from or ep["dataset_to_index"] != expected_from + length:
            p.append(f"{where}: frame range [{ep['dataset_from_index']}, {ep['dataset_to_index']}) should be [{expected_from}, {expected_from + length})")
        for task in ep.get("tasks") or []:
            if task not in reader.tasks:
                p.append(f"{where}: task {task!r} is not in meta/tasks.parquet")
        path = reader.data_path(i)
        try:
            schema = pq.read_schema(path)
            ep_data = reader.load_episode(i)
        except Exception as exc:  # noqa: BLE001 - a broken parquet raises various kinds
            p.append(f"{where}: data file {path.relative_to(root)} unreadable: {exc}")
            expected_from += length
            continue
        for name, feat in feats.items():
            if feat["dtype"] in ("video", "image"):
                continue
            if name not in schema.names:
                p.append(f"{where}: column {name!r} missing from {path.relative_to(root)}")
            elif not _arrow_type_ok(schema.field(name).type, feat):
                p.append(f"{where}: column {name!r} has type {schema.field(name).type}, info.json says {feat['dtype']} {feat['shape']}")
        c = ep_data.columns
        rows = len(c.get("frame_index", []))
        if rows != length:
            p.append(f"{where}: {rows} rows in the data file, metadata says {length}")
        else:
            if not np.array_equal(c["frame_index"], np.arange(length)):
                p.append(f"{where}: frame_index is not 0..{length - 1}")
            if not np.array_equal(c["index"], np.arange(expected_from, expected_from + length)):
                p.append(f"{where}: index is not {expected_from}..{expected_from + length - 1}")
            ts_err = np.abs(c["timestamp"].astype(np.float64) - np.arange(length) / fps)
            if ts_err.size and ts_err.max() > TIMESTAMP_TOLERANCE_S:
                p.append(f"{where}: timestamp deviates from frame_index/fps by up to {ts_err.max():.6f} s")
            if "task_index" in c and ep.get("tasks") and ep["tasks"][0] in reader.tasks:
                if not np.all(c["task_index"] == reader.tasks.index(ep["tasks"][0])):
                    p.append(f"{where}: task_index does not match the episode's task")
            for name in vector_cols:
                if name in c and not np.all(np.isfinite(c[name])):
                    p.append(f"{where}: {name} holds NaN or Inf")
            if "tick_ns" in c and length > 1:
                drift = np.abs(c["tick_ns"] - c["tick_ns"][0] - np.round(np.arange(length) * 1e9 / fps)).max()
                if drift > TICK_TOLERANCE_NS:
                    p.append(f"{where}: tick_ns drifts from the {fps} Hz grid by {drift / 1e6:.3f} ms")
                for name in [k for k in c if k.startswith("stamp_ns.")]:
                    late = c[name] > c["tick_ns"]
                    if late.any():
                        p.append(f"{where}: {name} is after its row's tick in {int(late.sum())} rows (alignment is at-or-before)")
        for key in reader.video_keys:
            vpath = reader.video_path(i, key)
            span = float(ep[f"videos/{key}/to_timestamp"]) - float(ep[f"videos/{key}/from_timestamp"])
            if abs(span - length / fps) > TIMESTAMP_TOLERANCE_S:
                p.append(f"{where}: {key} time range is {span:.4f} s for {length} frames at {fps} fps")
            if not vpath.exists():
                p.append(f"{where}: video {vpath.relative_to(root)} is missing")
                continue
            try:
                frames = count_decodable_frames(vpath) if decode_videos else probe(vpath)["frames"]
            except Exception as exc:  # noqa: BLE001
                p.append(f"{where}: video {vpath.relative_to(root)} unreadable: {exc}")
                continue
            if ep[f"videos/{key}/from_timestamp"] == 0.0 and frames != length:
                p.append(f"{where}: video {key} has {frames} frames, the episode {length}")
        expected_from += length
        report.episodes_checked += 1
        report.frames_checked += length
        if progress:
            progress(1)
    return report
