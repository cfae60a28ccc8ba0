"""Only what can be checked without a RealSense: the optional dependency is reported clearly.
The capture path itself is untested here (no device, and pyrealsense2 is not installed)."""

from __future__ import annotations

import sys

import pytest

from robostack.drivers.cameras import CameraDependencyError, RealSenseCamera, RealSenseCameraConfig


def test_missing_pyrealsense2_is_a_clear_error_at_open(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyrealsense2", None)  # makes the import fail
    camera = RealSenseCamera(RealSenseCameraConfig(serial="123456789"))
    with pytest.raises(CameraDependencyError, match="pip install pyrealsense2"):
        camera.open()
    assert not camera.is_open


def test_dependency_error_is_also_an_import_error() -> None:
    assert issubclass(CameraDependencyError, ImportError)
