"""Datasets in the LeRobot dataset layout v3.0, written so a crash loses at most the last second.

- :mod:`.layout`: file paths, feature schema and ``meta/info.json`` of a dataset.
- :mod:`.writer`: :class:`~.writer.DatasetWriter` records episodes through a per-episode journal
  (Arrow IPC rows + fragmented mp4 per camera, made durable every ≤0.5 s) and commits each
  finished episode atomically into ``data/``, ``videos/`` and ``meta/``.
- :mod:`.reader`: :class:`~.reader.DatasetReader` loads episodes and decodes their frames.
- :mod:`.validate` and :mod:`.repair`: consistency checks, and recovery of what a crash left.

Only the standard library and numpy load here; pyarrow and PyAV load inside the modules that
use them, so ``import robostack.dataset`` stays light.
"""

from robostack.dataset.errors import DatasetError, DatasetStorageError
from robostack.dataset.layout import CODEBASE_VERSION, CameraSpec, DatasetSpec, VideoEncoderConfig

__all__ = [
    "CODEBASE_VERSION",
    "CameraSpec",
    "DatasetError",
    "DatasetSpec",
    "DatasetStorageError",
    "VideoEncoderConfig",
]
