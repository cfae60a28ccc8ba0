"""Recovering what a crash, SIGKILL or power cut left in a dataset directory.

- a journal of an episode that was never committed becomes the next episode, cut to the frames
  that are complete in every stream (rows flushed and video fragments closed: at most the last
  ~0.5 s is gone);
- a journal of an episode that *was* committed (the crash hit while it was being removed) is
  deleted;
- temporary files of an interrupted atomic write, and data/video files no metadata refers to,
  are deleted;
- ``meta/info.json`` totals are rewritten from ``meta/episodes`` when they disagree.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from robostack.dataset import metadata
from robostack.dataset.errors import DatasetError
from robostack.dataset.journal import read_episode_file
from robostack.dataset.layout import JOURNAL_DIR, ROBOSTACK_META_PATH, DatasetSpec
from robostack.dataset.writer import Catalog, CommittedEpisode, commit_journal


@dataclass
class RepairReport:
    """What :func:`repair` found and did."""

    root: Path
    recovered: list[CommittedEpisode] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.recovered or self.notes)

    def lines(self) -> list[str]:
        out = [e.describe() for e in self.recovered] + self.notes
        return out or [f"{self.root}: nothing to repair"]


def _chunk_file_of(path: Path) -> tuple[int, int] | None:
    """``(chunk, file)`` of a ``chunk-CCC/file-FFF.ext`` path."""
    try:
        chunk = int(path.parent.name.split("-")[1])
        file = int(path.stem.split("-")[1])
    except (IndexError, ValueError):
        return None
    return chunk, file


def recover_into(catalog: Catalog, notes: list[str]) -> list[CommittedEpisode]:
    """Bring the dataset of ``catalog`` to a consistent state; return the recovered episodes."""
    root, spec = catalog.root, catalog.spec
    for tmp in list(root.rglob(".*.tmp-*")):
        if JOURNAL_DIR in tmp.parts:
            continue
        tmp.unlink(missing_ok=True)
        notes.append(f"removed unfinished temporary file {tmp.relative_to(root)}")

    recovered: list[CommittedEpisode] = []
    jroot = root / JOURNAL_DIR
    journals = sorted(p for p in jroot.glob("episode-*") if p.is_dir()) if jroot.exists() else []
    for jdir in journals:
        info = read_episode_file(jdir)
        index = info.get("episode_index") if info else None
        if index is not None and index < len(catalog.episodes):
            shutil.rmtree(jdir, ignore_errors=True)
            notes.append(f"removed the journal of episode {index}, which was already committed")
            continue
        committed = commit_journal(catalog, jdir, recovered=True)
        if committed is None:
            notes.append(f"journal {jdir.name} held no complete frame: removed")
        else:
            recovered.append(committed)

    n = len(catalog.episodes)
    committed_files = {(r["data/chunk_index"], r["data/file_index"]) for r in catalog.episodes}
    committed_videos = {
        (key, r[f"videos/{key}/chunk_index"], r[f"videos/{key}/file_index"]) for r in catalog.episodes for key in spec.video_keys
    }
    for path in sorted((root / "data").glob("*/*.parquet")):
        if _chunk_file_of(path) not in committed_files:
            path.unlink()
            notes.append(f"removed {path.relative_to(root)}: no committed episode refers to it")
    for key in spec.video_keys:
        for path in sorted((root / "videos" / key).glob("*/*.mp4")):
            if (key, *(_chunk_file_of(path) or ())) not in committed_videos:
                path.unlink()
                notes.append(f"removed {path.relative_to(root)}: no committed episode refers to it")

    info_path = root / "meta" / "info.json"
    if info_path.exists():
        info = metadata.read_info(root)
        if (info.get("total_episodes"), info.get("total_frames"), info.get("total_tasks")) != (n, catalog.total_frames, len(catalog.tasks)):
            notes.append(
                f"meta/info.json counted {info.get('total_episodes')} episodes / {info.get('total_frames')} frames; "
                f"rewrote it to {n} / {catalog.total_frames} from meta/episodes"
            )
            catalog.write_info()
    return recovered


def load_spec(root: Path) -> DatasetSpec:
    """The recording spec saved in ``meta/robostack.json``."""
    meta = metadata.read_json(Path(root), ROBOSTACK_META_PATH)
    try:
        return DatasetSpec.from_json(meta["spec"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"{root}/{ROBOSTACK_META_PATH}: bad recording spec: {exc}") from exc


def repair(root: str | Path) -> RepairReport:
    """Recover a dataset directory in place and say what was done."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such dataset directory")
    spec = load_spec(root)
    catalog = Catalog(root, spec)
    report = RepairReport(root)
    report.recovered = recover_into(catalog, report.notes)
    if not (root / "meta" / "info.json").exists():
        catalog.write_info()
        report.notes.append("meta/info.json was missing: rewrote it")
    return report
