"""Errors raised by cameras; each message names the device and what went wrong."""

from __future__ import annotations


class CameraError(RuntimeError):
    """Base class of every camera error."""


class CameraOpenError(CameraError):
    """The device or file could not be opened (missing, busy, not decodable)."""


class CameraSettingsError(CameraError):
    """The device opened but refused a requested setting (format, resolution, rate)."""


class CameraNotOpenError(CameraError):
    """``read()`` was called before ``open()`` or after ``close()``."""


class CameraDependencyError(CameraError, ImportError):
    """An optional library the camera needs (e.g. ``pyrealsense2``) is not installed."""
