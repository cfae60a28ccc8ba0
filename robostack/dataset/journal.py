"""The journal of the episode being recorded: what a crash leaves behind, and how it is read back.

``.journal/episode-NNNNNN/`` holds

- ``episode.json``: episode index, task, start time (written atomically when the episode starts);
- ``rows.arrows``: an Arrow IPC stream of frame rows, one record batch per flush (≤0.5 s), each
  fsynced; a stream cut anywhere reads back up to its last complete batch;
- ``<video_key>.mp4``: fragmented MP4 per camera (see :mod:`.video`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robostack.dataset.errors import storage_error
from robostack.dataset.layout import ACTION_KEY, STATE_KEY, DatasetSpec, stamp_columns

ROWS_FILE = "rows.arrows"
EPISODE_FILE = "episode.json"


def _pa():
    import pyarrow as pa

    return pa


def journal_schema(spec: DatasetSpec):
    """Arrow schema of the journal rows (the per-episode part of a frame row)."""
    pa = _pa()
    fields = [
        pa.field("frame_index", pa.int64()),
        pa.field("timestamp", pa.float32()),
        pa.field("tick_ns", pa.int64()),
        pa.field(STATE_KEY, pa.list_(pa.float32(), len(spec.state_names))),
        pa.field(ACTION_KEY, pa.list_(pa.float32(), len(spec.action_names))),
    ]
    types = {"int64": pa.int64(), "int32": pa.int32(), "bool": pa.bool_()}
    for key in spec.stream_keys:
        for col, dtype in stamp_columns(key).items():
            fields.append(pa.field(col, types[dtype]))
    return pa.schema(fields)


@dataclass
class Sample:
    """Which sample of a stream a row uses (see the stamp columns in :mod:`.layout`)."""

    stamp_ns: int
    seq: int
    dup: bool = False
    dropped: int = 0


class RowJournal:
    """Appends frame rows to ``rows.arrows``; :meth:`flush` writes and fsyncs a record batch."""

    def __init__(self, path: Path, spec: DatasetSpec) -> None:
        pa = _pa()
        self.path = path
        self.spec = spec
        self.schema = journal_schema(spec)
        self._pending: dict[str, list] = {name: [] for name in self.schema.names}
        self.rows = 0
        self.flushed_rows = 0
        try:
            self._file = open(path, "wb")
            self._sink = pa.PythonFile(self._file, mode="w")
            self._writer = pa.ipc.new_stream(self._sink, self.schema)
        except OSError as exc:
            raise storage_error(exc, str(path)) from exc

    def append(self, tick_ns: int, timestamp: float, state: np.ndarray, action: np.ndarray, samples: dict[str, Sample]) -> None:
        p = self._pending
        p["frame_index"].append(self.rows)
        p["timestamp"].append(timestamp)
        p["tick_ns"].append(tick_ns)
        p[STATE_KEY].append(state)
        p[ACTION_KEY].append(action)
        for key in self.spec.stream_keys:
            s = samples[key]
            p[f"stamp_ns.{key}"].append(s.stamp_ns)
            p[f"seq.{key}"].append(s.seq)
            p[f"dup.{key}"].append(s.dup)
            p[f"dropped.{key}"].append(s.dropped)
        self.rows += 1

    def flush(self) -> None:
        pa = _pa()
        n = self.rows - self.flushed_rows
        if n == 0:
            return
        arrays = []
        for field in self.schema:
            values = self._pending[field.name]
            if pa.types.is_fixed_size_list(field.type):
                flat = np.asarray(values, dtype=np.float32).reshape(-1)
                arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), field.type.list_size))
            else:
                arrays.append(pa.array(values, field.type))
        batch = pa.RecordBatch.from_arrays(arrays, schema=self.schema)
        try:
            self._writer.write_batch(batch)
            self._sink.flush()
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:
            raise storage_error(exc, str(self.path)) from exc
        for values in self._pending.values():
            values.clear()
        self.flushed_rows = self.rows

    def close(self) -> None:
        try:
            self.flush()
            self._writer.close()
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:
            raise storage_error(exc, str(self.path)) from exc
        finally:
            self._file.close()

    def abandon(self) -> None:
        try:
            self._file.close()
        except OSError:
            pass


def read_rows(path: Path):
    """Every complete record batch of a (possibly truncated) journal, as one Arrow table, and
    whether the stream was cut short."""
    pa = _pa()
    batches = []
    truncated = False
    try:
        with open(path, "rb") as f:
            reader = pa.ipc.open_stream(f)
            schema = reader.schema
            while True:
                try:
                    batches.append(reader.read_next_batch())
                except StopIteration:
                    break
                except (pa.ArrowInvalid, OSError, EOFError):
                    truncated = True
                    break
    except (pa.ArrowInvalid, OSError):
        return None, True
    return pa.Table.from_batches(batches, schema=schema), truncated


def write_episode_file(dirpath: Path, info: dict[str, Any]) -> None:
    from robostack.dataset.atomic_files import write_json_atomic

    write_json_atomic(dirpath / EPISODE_FILE, info)


def read_episode_file(dirpath: Path) -> dict[str, Any] | None:
    try:
        return json.loads((dirpath / EPISODE_FILE).read_text())
    except (OSError, ValueError):
        return None
