"""Reading and atomically writing the ``meta/`` files: info, tasks, episodes, stats."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from robostack.dataset import stats as stats_mod
from robostack.dataset.atomic_files import write_atomic, write_json_atomic
from robostack.dataset.errors import DatasetError
from robostack.dataset.layout import (
    EPISODES_PATH,
    INFO_PATH,
    ROBOSTACK_META_PATH,
    STATS_PATH,
    TASKS_PATH,
)

EPISODES_FILE = EPISODES_PATH.format(chunk_index=0, file_index=0)


def read_json(root: Path, rel: str) -> dict[str, Any]:
    path = root / rel
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DatasetError(f"{root}: no {rel} (not a dataset directory?)") from None
    except ValueError as exc:
        raise DatasetError(f"{path}: not valid JSON: {exc}") from exc


def read_info(root: Path) -> dict[str, Any]:
    return read_json(root, INFO_PATH)


def write_info(root: Path, info: dict[str, Any]) -> None:
    write_json_atomic(root / INFO_PATH, info)


def write_robostack_meta(root: Path, meta: dict[str, Any]) -> None:
    write_json_atomic(root / ROBOSTACK_META_PATH, meta)


def read_tasks(root: Path) -> list[str]:
    """Tasks in ``task_index`` order."""
    import pyarrow.parquet as pq

    path = root / TASKS_PATH
    if not path.exists():
        return []
    table = pq.read_table(path)
    if "task" not in table.column_names or "task_index" not in table.column_names:
        raise DatasetError(f"{path}: expected columns 'task' and 'task_index', got {table.column_names}")
    pairs = sorted(zip(table["task_index"].to_pylist(), table["task"].to_pylist()))
    if [i for i, _ in pairs] != list(range(len(pairs))):
        raise DatasetError(f"{path}: task_index values are not 0..{len(pairs) - 1}")
    return [t for _, t in pairs]


def write_tasks(root: Path, tasks: list[str]) -> None:
    """``meta/tasks.parquet`` with the task text as the pandas index, as LeRobot reads it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pandas_meta = {
        "index_columns": ["task"],
        "column_indexes": [
            {"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object", "metadata": {"encoding": "UTF-8"}}
        ],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64", "metadata": None},
            {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object", "metadata": None},
        ],
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.3",
    }
    schema = pa.schema([("task_index", pa.int64()), ("task", pa.string())], metadata={"pandas": json.dumps(pandas_meta)})
    table = pa.table({"task_index": list(range(len(tasks))), "task": list(tasks)}, schema=schema)
    write_atomic(root / TASKS_PATH, lambda tmp: pq.write_table(table, tmp))


def read_episodes(root: Path) -> list[dict[str, Any]]:
    """Rows of every ``meta/episodes/*/*.parquet``, in episode order."""
    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = []
    for path in sorted((root / "meta" / "episodes").glob("*/*.parquet")):
        try:
            rows.extend(pq.read_table(path).to_pylist())
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several kinds for broken files
            raise DatasetError(f"{path}: unreadable episodes metadata: {exc}") from exc
    rows.sort(key=lambda r: r["episode_index"])
    return rows


def write_episodes(root: Path, rows: list[dict[str, Any]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not rows:
        (root / EPISODES_FILE).unlink(missing_ok=True)
        return
    table = pa.Table.from_pylist(rows)
    write_atomic(root / EPISODES_FILE, lambda tmp: pq.write_table(table, tmp))


def episode_stats_from_row(row: dict[str, Any]) -> dict[str, stats_mod.Stats]:
    """The ``stats/<feature>/<stat>`` columns of an episodes row, as arrays."""
    out: dict[str, stats_mod.Stats] = {}
    for col, value in row.items():
        if not col.startswith("stats/") or value is None:
            continue
        feature, _, stat = col[len("stats/"):].rpartition("/")
        out.setdefault(feature, {})[stat] = np.asarray(value)
    return out


def stats_columns(stats: dict[str, stats_mod.Stats]) -> dict[str, Any]:
    return {f"stats/{feat}/{k}": np.asarray(v).tolist() for feat, s in stats.items() for k, v in s.items()}


def write_stats(root: Path, episode_rows: list[dict[str, Any]]) -> None:
    per_episode = [episode_stats_from_row(r) for r in episode_rows]
    features = sorted({f for s in per_episode for f in s})
    total = {f: stats_mod.aggregate([s[f] for s in per_episode if f in s]) for f in features}
    write_json_atomic(root / STATS_PATH, stats_mod.to_json(total))
