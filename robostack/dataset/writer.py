"""Recording episodes: :class:`DatasetWriter` opens (or creates) a dataset, recovers what an
earlier crash left, and hands out :class:`EpisodeWriter` objects that journal frames durably and
commit the finished episode atomically.

Commit order (each step an atomic file replacement): data parquet, videos, ``tasks.parquet``,
``meta/episodes``, ``stats.json``, ``info.json``; the journal is removed last. A crash between
steps leaves files no metadata refers to plus the journal, and recovery simply commits again,
so metadata never counts an episode whose files are not all there.
"""

from __future__ import annotations

import logging
import queue
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from robostack.dataset import metadata, stats as stats_mod
from robostack.dataset.atomic_files import commit_file, tmp_sibling, write_atomic
from robostack.dataset.errors import DatasetError, DatasetStorageError, storage_error
from robostack.dataset.journal import (
    ROWS_FILE,
    RowJournal,
    Sample,
    read_episode_file,
    read_rows,
    write_episode_file,
)
from robostack.dataset.layout import (
    DatasetSpec,
    chunk_and_file,
    data_file,
    frame_features,
    info_dict,
    journal_dir,
    robostack_meta,
    video_file,
)

log = logging.getLogger("robostack.dataset")

IMAGE_STATS_MAX_SAMPLES = 256
IMAGE_STATS_DOWNSCALE = 8


@dataclass
class CommittedEpisode:
    """What a commit wrote: the episode's index, length and whether it came from a crash."""

    episode_index: int
    length: int
    duration_s: float
    task: str
    recovered: bool = False
    journal_rows: int = 0
    video_frames: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        what = "recovered" if self.recovered else "saved"
        extra = ""
        if self.recovered:
            parts = [f"rows {self.journal_rows}"] + [f"{k} {n}" for k, n in self.video_frames.items()]
            extra = f" (journal held {', '.join(parts)}; kept the {self.length} complete frames)"
        return f"{what} episode {self.episode_index}: {self.length} frames, {self.duration_s:.2f} s, task {self.task!r}{extra}"


class Catalog:
    """The committed episodes and tasks of a dataset, kept in memory while writing."""

    def __init__(self, root: Path, spec: DatasetSpec) -> None:
        self.root = root
        self.spec = spec
        self.episodes: list[dict[str, Any]] = metadata.read_episodes(root) if (root / "meta").exists() else []
        self.tasks: list[str] = metadata.read_tasks(root)
        for i, row in enumerate(self.episodes):
            if row["episode_index"] != i:
                raise DatasetError(f"{root}: episodes metadata is missing episode {i} (found {row['episode_index']})")

    @property
    def total_frames(self) -> int:
        return self.episodes[-1]["dataset_to_index"] if self.episodes else 0

    def write_info(self) -> None:
        metadata.write_info(self.root, info_dict(self.spec, len(self.episodes), self.total_frames, len(self.tasks)))


def _numeric_stats(table) -> dict[str, stats_mod.Stats]:
    import pyarrow as pa

    out = {}
    for name in table.column_names:
        col = table[name].combine_chunks()
        if pa.types.is_fixed_size_list(col.type):
            width = col.type.list_size
            values = np.asarray(col.flatten().to_numpy(zero_copy_only=False)).reshape(-1, width)
        else:
            values = np.asarray(col.to_numpy(zero_copy_only=False))
        out[name] = stats_mod.vector_stats(values.astype(np.float64))
    return out


def _sample_image_stats(path: Path, length: int) -> stats_mod.Stats:
    from robostack.dataset.video import decode_frames

    stride = max(1, length // IMAGE_STATS_MAX_SAMPLES)
    samples = [img[::IMAGE_STATS_DOWNSCALE, ::IMAGE_STATS_DOWNSCALE] for i, img in decode_frames(path, 0, length) if i % stride == 0]
    return stats_mod.image_stats(np.stack(samples))


def commit_journal(
    catalog: Catalog,
    jdir: Path,
    *,
    recovered: bool,
    image_samples: Mapping[str, list[np.ndarray]] | None = None,
    known_video_frames: Mapping[str, int] | None = None,
) -> CommittedEpisode | None:
    """Turn a journal directory into the next committed episode; None if it held no frame."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from robostack.dataset.video import count_decodable_frames, remux

    spec, root = catalog.spec, catalog.root
    info = read_episode_file(jdir) or {}
    task = str(info.get("task", ""))
    table, truncated = read_rows(jdir / ROWS_FILE) if (jdir / ROWS_FILE).exists() else (None, True)
    journal_rows = table.num_rows if table is not None else 0
    frames: dict[str, int] = {}
    for key in spec.video_keys:
        path = jdir / f"{key}.mp4"
        if known_video_frames is not None and key in known_video_frames:
            frames[key] = known_video_frames[key]
        else:
            frames[key] = count_decodable_frames(path, limit=journal_rows) if path.exists() else 0
    length = min([journal_rows, *frames.values()])
    if length == 0:
        shutil.rmtree(jdir, ignore_errors=True)
        return None

    ep = len(catalog.episodes)
    start = catalog.total_frames
    if task not in catalog.tasks:
        catalog.tasks.append(task)
        new_task = True
    else:
        new_task = False
    task_index = catalog.tasks.index(task)
    rows = table.slice(0, length)
    extra = {
        "episode_index": pa.array(np.full(length, ep, dtype=np.int64)),
        "index": pa.array(np.arange(start, start + length, dtype=np.int64)),
        "task_index": pa.array(np.full(length, task_index, dtype=np.int64)),
    }
    columns, names = [], []
    for name, feat in frame_features(spec).items():
        if feat["dtype"] == "video":
            continue
        names.append(name)
        columns.append(extra[name] if name in extra else rows[name])
    final = pa.Table.from_arrays(columns, names=names)

    data_path = data_file(root, ep, spec.chunks_size)
    write_atomic(data_path, lambda tmp: pq.write_table(final, tmp, compression="snappy"))

    ep_stats = _numeric_stats(final)
    chunk, file = chunk_and_file(ep, spec.chunks_size)
    row: dict[str, Any] = {
        "episode_index": ep,
        "tasks": [task],
        "length": length,
        "data/chunk_index": chunk,
        "data/file_index": file,
        "dataset_from_index": start,
        "dataset_to_index": start + length,
    }
    for key in spec.video_keys:
        dst = video_file(root, key, ep, spec.chunks_size)
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = tmp_sibling(dst)
        try:
            written = remux(jdir / f"{key}.mp4", tmp, max_frames=length)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise storage_error(exc, str(dst)) from exc
        if written != length:
            tmp.unlink(missing_ok=True)
            raise DatasetError(f"{jdir}/{key}.mp4: expected {length} frames, remuxed {written}")
        commit_file(tmp, dst)
        samples = (image_samples or {}).get(key)
        ep_stats[key] = stats_mod.image_stats(np.stack(samples)) if samples else _sample_image_stats(dst, length)
        row[f"videos/{key}/chunk_index"] = chunk
        row[f"videos/{key}/file_index"] = file
        row[f"videos/{key}/from_timestamp"] = 0.0
        row[f"videos/{key}/to_timestamp"] = length / spec.fps
    row["meta/episodes/chunk_index"] = 0
    row["meta/episodes/file_index"] = 0
    for key in spec.stream_keys:
        row[f"robostack/dup/{key}"] = int(np.asarray(final[f"dup.{key}"].to_numpy(zero_copy_only=False)).sum())
        row[f"robostack/dropped/{key}"] = int(np.asarray(final[f"dropped.{key}"].to_numpy()).sum())
    row["robostack/recovered"] = recovered
    row["robostack/started_wall_ns"] = int(info.get("started_wall_ns", 0))
    row.update(metadata.stats_columns(ep_stats))

    catalog.episodes.append(row)
    try:
        if new_task:
            metadata.write_tasks(root, catalog.tasks)
        metadata.write_episodes(root, catalog.episodes)
        metadata.write_stats(root, catalog.episodes)
        catalog.write_info()
    except BaseException:
        catalog.episodes.pop()
        if new_task:
            catalog.tasks.pop()
        raise
    shutil.rmtree(jdir, ignore_errors=True)
    return CommittedEpisode(ep, length, length / spec.fps, task, recovered, journal_rows, frames)


class _Encoder(threading.Thread):
    """Encodes one camera's frames off the recording thread; syncs after each fragment."""

    def __init__(self, path: Path, key: str, spec: DatasetSpec, height: int, width: int, max_queue: int) -> None:
        super().__init__(name=f"encode-{key}", daemon=True)
        from robostack.dataset.video import FragmentedVideoWriter

        self.key = key
        self.writer = FragmentedVideoWriter(path, width, height, spec.fps, spec.video)
        self.queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self.error: BaseException | None = None
        self.max_depth = 0
        self.encode_s = 0.0

    def put(self, image: np.ndarray | None) -> None:
        self.max_depth = max(self.max_depth, self.queue.qsize())
        while True:
            if self.error is not None:
                raise self.error
            try:
                self.queue.put(image, timeout=0.1)
                return
            except queue.Full:
                continue

    def run(self) -> None:
        w = self.writer
        try:
            while True:
                image = self.queue.get()
                if image is None:
                    break
                t0 = time.perf_counter()
                w.write(image)
                if w.frames > 1 and (w.frames - 1) % w.gop == 0:
                    w.sync()  # the keyframe just muxed closed a fragment
                self.encode_s += time.perf_counter() - t0
            w.close()
        except BaseException as exc:  # noqa: BLE001 - handed to the recording thread
            self.error = exc
            w.abandon()


class EpisodeWriter:
    """One episode being recorded. :meth:`add_frame` appends a row and its camera images;
    :meth:`save` commits it; :meth:`discard` forgets it."""

    def __init__(self, owner: "DatasetWriter", index: int, task: str) -> None:
        self.owner = owner
        self.spec = owner.spec
        self.index = index
        self.task = task
        self.dir = journal_dir(owner.root, index)
        if self.dir.exists():
            shutil.rmtree(self.dir)
        try:
            self.dir.mkdir(parents=True)
        except OSError as exc:
            raise storage_error(exc, str(self.dir)) from exc
        write_episode_file(self.dir, {"episode_index": index, "task": task, "started_wall_ns": time.time_ns()})
        self.rows = RowJournal(self.dir / ROWS_FILE, self.spec)
        max_queue = max(2, int(owner.encoder_queue_s * self.spec.fps))
        self.encoders: dict[str, _Encoder] = {}
        try:
            for cam in self.spec.cameras:
                enc = _Encoder(self.dir / f"{cam.key}.mp4", cam.key, self.spec, cam.height, cam.width, max_queue)
                self.encoders[cam.key] = enc
                enc.start()
        except BaseException:
            self._abandon()
            raise
        self._samples: dict[str, list[np.ndarray]] = {k: [] for k in self.encoders}
        self._sample_stride = 1
        self._last_flush = time.monotonic()
        self.closed = False

    @property
    def num_frames(self) -> int:
        return self.rows.rows

    @property
    def duration_s(self) -> float:
        return self.rows.rows / self.spec.fps

    def encoder_queue_depth(self) -> dict[str, int]:
        return {k: e.queue.qsize() for k, e in self.encoders.items()}

    def add_frame(
        self,
        tick_ns: int,
        state: np.ndarray,
        action: np.ndarray,
        images: Mapping[str, np.ndarray],
        samples: Mapping[str, Sample],
    ) -> None:
        """Append row :attr:`num_frames`: ``tick_ns`` it stands for, the state and action vectors,
        one ``(H, W, 3)`` uint8 RGB image per camera, and which sample each stream used."""
        if self.closed:
            raise DatasetError(f"episode {self.index} is already closed")
        spec = self.spec
        state = np.asarray(state, dtype=np.float32).reshape(-1)
        action = np.asarray(action, dtype=np.float32).reshape(-1)
        if state.size != len(spec.state_names):
            raise DatasetError(f"state has {state.size} values, the dataset expects {len(spec.state_names)} ({', '.join(spec.state_names)})")
        if action.size != len(spec.action_names):
            raise DatasetError(f"action has {action.size} values, the dataset expects {len(spec.action_names)} ({', '.join(spec.action_names)})")
        for cam in spec.cameras:
            img = images.get(cam.key)
            if img is None:
                raise DatasetError(f"frame has no image for {cam.key}")
            if img.shape != (cam.height, cam.width, 3) or img.dtype != np.uint8:
                raise DatasetError(f"{cam.key}: expected ({cam.height}, {cam.width}, 3) uint8 RGB, got {img.shape} {img.dtype}")
        missing = [k for k in spec.stream_keys if k not in samples]
        if missing:
            raise DatasetError(f"frame has no sample info for {missing}")
        n = self.rows.rows
        self.rows.append(tick_ns, n / spec.fps, state, action, dict(samples))
        for cam in spec.cameras:
            img = images[cam.key]
            self.encoders[cam.key].put(img)
            if n % self._sample_stride == 0:
                self._samples[cam.key].append(np.array(img[::IMAGE_STATS_DOWNSCALE, ::IMAGE_STATS_DOWNSCALE]))
        if any(len(s) > IMAGE_STATS_MAX_SAMPLES for s in self._samples.values()):
            self._samples = {k: s[::2] for k, s in self._samples.items()}
            self._sample_stride *= 2
        now = time.monotonic()
        if now - self._last_flush >= self.owner.flush_interval_s:
            self.rows.flush()
            self._last_flush = now

    def save(self) -> CommittedEpisode | None:
        """Finish encoding and commit the episode (None when it holds no frame)."""
        self.closed = True
        try:
            for enc in self.encoders.values():
                enc.put(None)
            for enc in self.encoders.values():
                enc.join()
                if enc.error is not None:
                    raise enc.error
            self.rows.close()
        except BaseException:
            self._abandon()
            raise
        frames = {k: e.writer.frames for k, e in self.encoders.items()}
        return self.owner._commit(self.dir, recovered=False, image_samples=self._samples, known_video_frames=frames)

    def discard(self) -> None:
        """Drop the episode: nothing of it stays on disk."""
        self.closed = True
        self._abandon()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _abandon(self) -> None:
        for enc in self.encoders.values():
            if enc.is_alive():
                try:
                    while True:
                        enc.queue.get_nowait()
                except queue.Empty:
                    pass
                enc.queue.put(None)
                enc.join(5)
        self.rows.abandon() if hasattr(self, "rows") else None

    def encoder_stats(self) -> dict[str, dict[str, float]]:
        return {
            k: {"queue": e.queue.qsize(), "max_queue": e.max_depth, "encode_ms_per_frame": round(1e3 * e.encode_s / max(1, e.writer.frames), 3)}
            for k, e in self.encoders.items()
        }


class DatasetWriter:
    """Writes episodes into the dataset at ``root`` (created if missing).

    Opening recovers what a crash left (see :mod:`.repair`); :attr:`recovered` lists what came
    back. Raises :class:`DatasetStorageError` at once when ``root`` cannot be written, and
    :class:`DatasetError` when an existing dataset has a different schema than ``spec``.
    """

    def __init__(self, root: str | Path, spec: DatasetSpec, *, flush_interval_s: float = 0.5, encoder_queue_s: float = 2.0) -> None:
        if not 0 < flush_interval_s <= 1.0:
            raise ValueError(f"flush_interval_s must be in (0, 1], got {flush_interval_s}")
        self.root = Path(root)
        self.spec = spec
        self.flush_interval_s = flush_interval_s
        self.encoder_queue_s = encoder_queue_s
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise storage_error(exc, f"dataset directory {self.root}") from exc
        info_path = self.root / "meta" / "info.json"
        if info_path.exists():
            self._check_compatible(metadata.read_info(self.root))
        metadata.write_robostack_meta(self.root, robostack_meta(spec))  # fails early if unwritable
        from robostack.dataset.repair import recover_into

        self.catalog = Catalog(self.root, spec)
        self.repair_notes: list[str] = []
        self.recovered: list[CommittedEpisode] = recover_into(self.catalog, self.repair_notes)
        if not info_path.exists():
            self.catalog.write_info()

    def _check_compatible(self, info: dict[str, Any]) -> None:
        want = frame_features(self.spec)
        have = info.get("features", {})
        problems = []
        if info.get("fps") != self.spec.fps:
            problems.append(f"fps {info.get('fps')} != {self.spec.fps}")
        for name in sorted(set(want) | set(have)):
            if name not in have:
                problems.append(f"missing feature {name!r}")
            elif name not in want:
                problems.append(f"unexpected feature {name!r}")
            elif {k: have[name].get(k) for k in ("dtype", "shape", "names")} != {k: want[name].get(k) for k in ("dtype", "shape", "names")}:
                problems.append(f"feature {name!r}: dataset has {have[name]['dtype']} {have[name]['shape']}, recording needs {want[name]['dtype']} {want[name]['shape']}")
        if problems:
            raise DatasetError(f"{self.root} holds a dataset with a different schema: " + "; ".join(problems))

    @property
    def num_episodes(self) -> int:
        return len(self.catalog.episodes)

    @property
    def total_frames(self) -> int:
        return self.catalog.total_frames

    def begin_episode(self, task: str) -> EpisodeWriter:
        """Start journaling the next episode."""
        return EpisodeWriter(self, self.num_episodes, task)

    def _commit(self, jdir: Path, **kw: Any) -> CommittedEpisode | None:
        return commit_journal(self.catalog, jdir, **kw)


__all__ = ["Catalog", "CommittedEpisode", "DatasetStorageError", "DatasetWriter", "EpisodeWriter", "Sample", "commit_journal"]
