"""Crash-safe file replacement: write a temporary sibling, fsync it, ``os.replace`` it over the
target, fsync the directory. A reader sees the old file or the new one, never a torn one."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

from robostack.dataset.errors import storage_error


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def tmp_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def commit_file(tmp: Path, path: Path) -> None:
    """fsync ``tmp`` and move it over ``path`` atomically."""
    try:
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        raise storage_error(exc, str(path)) from exc


def write_atomic(path: Path, produce: Callable[[Path], None]) -> None:
    """Have ``produce(tmp_path)`` write the file, then commit it over ``path``."""
    tmp = tmp_sibling(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        produce(tmp)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise storage_error(exc, str(path)) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    commit_file(tmp, path)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    write_atomic(path, lambda tmp: tmp.write_bytes(data))


def write_json_atomic(path: Path, obj: Any) -> None:
    write_bytes_atomic(path, (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode())
