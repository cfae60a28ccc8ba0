"""The on-disk layout of a dataset (LeRobot dataset format v3.0) and its feature schema.

Files, relative to the dataset root::

    meta/info.json                                 schema, fps, totals, path templates
    meta/stats.json                                per-feature statistics over all episodes
    meta/tasks.parquet                             task instruction -> task_index
    meta/episodes/chunk-000/file-000.parquet       one row per episode: length, tasks, file
                                                   indices, frame ranges, video time ranges, stats
    meta/robostack.json                            what robostack adds: streams, alignment, encoder
    data/chunk-{c:03d}/file-{f:03d}.parquet        frame rows
    videos/{video_key}/chunk-{c:03d}/file-{f:03d}.mp4
    .journal/episode-{i:06d}/                      the episode being recorded (not part of v3)

robostack writes one data file and one video file per episode (``file_index`` = episode index
within its chunk of ``chunks_size`` files): v3 allows several episodes per file, but a file that is
never appended to again is what lets a crash never touch earlier episodes.

Frame columns beside LeRobot's (``index``, ``episode_index``, ``frame_index``, ``timestamp``,
``task_index``, ``observation.state``, ``action``): ``tick_ns`` (the ``CLOCK_MONOTONIC`` instant
the row stands for) and per stream ``S`` (``observation.images.<cam>``, ``observation.state``,
``action``): ``stamp_ns.S`` (capture stamp of the sample used), ``seq.S`` (its publisher
sequence number), ``dup.S`` (the sample is the one of the previous row: nothing newer had
arrived) and ``dropped.S`` (samples lost upstream or skipped since the previous row).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CODEBASE_VERSION = "v3.0"
DEFAULT_CHUNK_SIZE = 1000
DEFAULT_DATA_FILE_SIZE_IN_MB = 100
DEFAULT_VIDEO_FILE_SIZE_IN_MB = 500

INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
ROBOSTACK_META_PATH = "meta/robostack.json"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
JOURNAL_DIR = ".journal"

STATE_KEY = "observation.state"
ACTION_KEY = "action"
IMAGE_PREFIX = "observation.images."
ALIGNMENT = "latest-at-or-before-tick"

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-]*$")


@dataclass(frozen=True)
class VideoEncoderConfig:
    """How camera streams are encoded. ``keyframe_interval_s`` bounds what a crash can lose of
    a video (a fragment is written at each keyframe). ``libx264`` ``ultrafast`` with
    ``zerolatency`` keeps up with two 640×480@30 cameras on one core; ``mpeg4`` is the fallback
    where x264 is missing."""

    codec: str = "libx264"
    preset: str = "ultrafast"
    crf: int = 23
    qscale: int = 5  # mpeg4 only
    pix_fmt: str = "yuv420p"
    keyframe_interval_s: float = 0.5
    threads: int = 1

    def __post_init__(self) -> None:
        if self.codec not in ("libx264", "mpeg4"):
            raise ValueError(f"video codec must be 'libx264' or 'mpeg4', got {self.codec!r}")
        if not 0 < self.keyframe_interval_s <= 1.0:
            raise ValueError(f"keyframe_interval_s must be in (0, 1], got {self.keyframe_interval_s}")
        if not 0 <= self.crf <= 51:
            raise ValueError(f"crf must be in [0, 51], got {self.crf}")
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0, got {self.threads}")


@dataclass(frozen=True)
class CameraSpec:
    """One camera stream: ``name`` becomes the video key ``observation.images.<name>``."""

    name: str
    height: int
    width: int

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise ValueError(f"camera name {self.name!r}: use letters, digits, '_' and '-'")
        if self.height <= 0 or self.width <= 0 or self.height % 2 or self.width % 2:
            raise ValueError(f"camera {self.name!r}: height and width must be even and > 0, got {self.height}x{self.width}")

    @property
    def key(self) -> str:
        return IMAGE_PREFIX + self.name


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset holds: its rate, cameras and the names of the state and action dims."""

    fps: int
    cameras: tuple[CameraSpec, ...]
    state_names: tuple[str, ...]
    action_names: tuple[str, ...]
    robot_type: str | None = None
    video: VideoEncoderConfig = field(default_factory=VideoEncoderConfig)
    chunks_size: int = DEFAULT_CHUNK_SIZE

    def __post_init__(self) -> None:
        if not isinstance(self.fps, int) or isinstance(self.fps, bool) or self.fps <= 0:
            raise ValueError(f"fps must be a positive integer (LeRobot stores it as int), got {self.fps!r}")
        object.__setattr__(self, "cameras", tuple(self.cameras))
        object.__setattr__(self, "state_names", tuple(self.state_names))
        object.__setattr__(self, "action_names", tuple(self.action_names))
        names = [c.name for c in self.cameras]
        if len(set(names)) != len(names):
            raise ValueError(f"camera names must be unique, got {names}")
        if not self.state_names or not self.action_names:
            raise ValueError("state_names and action_names must each name at least one dimension")
        if self.chunks_size <= 0:
            raise ValueError(f"chunks_size must be > 0, got {self.chunks_size}")

    @property
    def video_keys(self) -> list[str]:
        return [c.key for c in self.cameras]

    @property
    def stream_keys(self) -> list[str]:
        """Every aligned stream, in column order."""
        return [*self.video_keys, STATE_KEY, ACTION_KEY]

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["cameras"] = [asdict(c) for c in self.cameras]
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "DatasetSpec":
        return cls(
            fps=d["fps"],
            cameras=tuple(CameraSpec(**c) for c in d["cameras"]),
            state_names=tuple(d["state_names"]),
            action_names=tuple(d["action_names"]),
            robot_type=d.get("robot_type"),
            video=VideoEncoderConfig(**d.get("video", {})),
            chunks_size=d.get("chunks_size", DEFAULT_CHUNK_SIZE),
        )


def chunk_and_file(episode_index: int, chunks_size: int) -> tuple[int, int]:
    """Chunk and file index of an episode's own data and video files."""
    return divmod(episode_index, chunks_size)


def data_file(root: Path, episode_index: int, chunks_size: int) -> Path:
    c, f = chunk_and_file(episode_index, chunks_size)
    return root / DATA_PATH.format(chunk_index=c, file_index=f)


def video_file(root: Path, video_key: str, episode_index: int, chunks_size: int) -> Path:
    c, f = chunk_and_file(episode_index, chunks_size)
    return root / VIDEO_PATH.format(video_key=video_key, chunk_index=c, file_index=f)


def journal_dir(root: Path, episode_index: int) -> Path:
    return root / JOURNAL_DIR / f"episode-{episode_index:06d}"


def stamp_columns(stream_key: str) -> dict[str, str]:
    """Extra per-stream columns and their dtype."""
    return {
        f"stamp_ns.{stream_key}": "int64",
        f"seq.{stream_key}": "int64",
        f"dup.{stream_key}": "bool",
        f"dropped.{stream_key}": "int32",
    }


def frame_features(spec: DatasetSpec) -> dict[str, dict[str, Any]]:
    """``features`` of ``meta/info.json``: every parquet column and every video."""
    feats: dict[str, dict[str, Any]] = {}
    for cam in spec.cameras:
        feats[cam.key] = {
            "dtype": "video",
            "shape": [cam.height, cam.width, 3],
            "names": ["height", "width", "channels"],
            "info": {
                "video.height": cam.height,
                "video.width": cam.width,
                "video.codec": "h264" if spec.video.codec == "libx264" else spec.video.codec,
                "video.pix_fmt": spec.video.pix_fmt,
                "video.is_depth_map": False,
                "video.fps": spec.fps,
                "video.channels": 3,
                "has_audio": False,
            },
        }
    feats[STATE_KEY] = {"dtype": "float32", "shape": [len(spec.state_names)], "names": list(spec.state_names)}
    feats[ACTION_KEY] = {"dtype": "float32", "shape": [len(spec.action_names)], "names": list(spec.action_names)}
    for name, dtype in (
        ("timestamp", "float32"),
        ("frame_index", "int64"),
        ("episode_index", "int64"),
        ("index", "int64"),
        ("task_index", "int64"),
        ("tick_ns", "int64"),
    ):
        feats[name] = {"dtype": dtype, "shape": [1], "names": None}
    for key in spec.stream_keys:
        for col, dtype in stamp_columns(key).items():
            feats[col] = {"dtype": dtype, "shape": [1], "names": None}
    return feats


def info_dict(spec: DatasetSpec, total_episodes: int, total_frames: int, total_tasks: int) -> dict[str, Any]:
    """The content of ``meta/info.json``."""
    return {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": spec.robot_type,
        "total_episodes": total_episodes,
        "total_frames": total_frames,
        "total_tasks": total_tasks,
        "chunks_size": spec.chunks_size,
        "data_files_size_in_mb": DEFAULT_DATA_FILE_SIZE_IN_MB,
        "video_files_size_in_mb": DEFAULT_VIDEO_FILE_SIZE_IN_MB,
        "fps": spec.fps,
        "splits": {"train": f"0:{total_episodes}"} if total_episodes else {},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if spec.cameras else None,
        "features": frame_features(spec),
    }


def robostack_meta(spec: DatasetSpec) -> dict[str, Any]:
    """The content of ``meta/robostack.json``: what LeRobot's schema has no place for."""
    return {
        "format": "robostack-recording/1",
        "spec": spec.to_json(),
        "alignment": {
            "policy": ALIGNMENT,
            "doc": "row k stands for tick_ns = t0 + k/fps; each stream contributes its newest sample "
            "with capture stamp <= tick_ns",
        },
        "streams": spec.stream_keys,
        "stamp_columns": {
            "stamp_ns.S": "CLOCK_MONOTONIC capture stamp of the sample of stream S used in this row",
            "seq.S": "publisher sequence number of that sample",
            "dup.S": "true when no newer sample had arrived: the previous row's sample is repeated",
            "dropped.S": "samples of S lost upstream or skipped since the previous row",
        },
    }
