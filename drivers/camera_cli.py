"""``robostack cameras``: list the connected cameras, probe one and measure its stream.

Only the standard library is imported at module level; the camera code loads inside the
commands.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from robostack.drivers.cameras import Camera

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``cameras`` command group to the top-level CLI."""
    cameras = subparsers.add_parser("cameras", help="list and probe cameras")
    commands = cameras.add_subparsers(dest="cameras_command", metavar="COMMAND", required=True)

    list_parser = commands.add_parser(
        "list", help="list V4L2 cameras with their stable paths and formats"
    )
    list_parser.add_argument("--json", action="store_true", help="print JSON")
    list_parser.add_argument(
        "--no-formats", action="store_true", help="skip opening devices to read their formats"
    )
    list_parser.add_argument(
        "--dev-root", default="/dev", help="where device nodes live (default /dev)"
    )
    list_parser.add_argument(
        "--sysfs-root",
        default="/sys/class/video4linux",
        help="sysfs folder with device names (default /sys/class/video4linux)",
    )
    list_parser.set_defaults(func=run_list)

    probe = commands.add_parser(
        "probe",
        help="open a camera, read frames and report rate, stamp jitter and health counters",
        description=(
            "SOURCE is a device index or path (/dev/video0, /dev/v4l/by-id/...), a video file, "
            "'synthetic', or 'realsense[:SERIAL]'."
        ),
    )
    probe.add_argument("source")
    probe.add_argument("--frames", type=int, default=100, help="frames to read (default 100)")
    probe.add_argument("--width", type=int, default=None)
    probe.add_argument("--height", type=int, default=None)
    probe.add_argument("--fps", type=float, default=None)
    probe.add_argument("--fourcc", default=None, help="pixel format of a V4L2 device, e.g. MJPG")
    probe.add_argument(
        "--lockstep", action="store_true", help="files/synthetic: return frames as fast as read"
    )
    probe.add_argument("--json", action="store_true", help="print JSON")
    probe.set_defaults(func=run_probe)


def run_list(args: argparse.Namespace) -> int:
    from robostack.drivers.cameras.discovery import list_v4l2_devices

    devices = list_v4l2_devices(args.dev_root, args.sysfs_root, query_formats=not args.no_formats)
    if args.json:
        print(json.dumps([d.as_dict() for d in devices], indent=2))
        return 0
    if not devices:
        print("no cameras found")
        return 0
    for device in devices:
        kind = {True: "capture", False: "no capture (metadata node)", None: ""}[device.capture]
        print(f"{device.path}  {device.name or '(unnamed)'}" + (f"  [{kind}]" if kind else ""))
        for link in device.by_id + device.by_path:
            print(f"    {link}")
        if device.error:
            print(f"    formats unavailable: {device.error}")
        for fmt in device.formats or []:
            sizes = " ".join(fmt.sizes) if fmt.sizes else "(no sizes listed)"
            print(f"    {fmt.fourcc} ({fmt.description}): {sizes}")
    return 0


def run_probe(args: argparse.Namespace) -> int:
    from robostack.drivers.cameras import CameraError

    if args.frames < 2:
        print("error: --frames must be at least 2", file=sys.stderr)
        return 2
    try:
        camera = _camera_for(args)
        with camera:
            report = _measure(camera, args.frames)
    except (CameraError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key}: {value}")
    return 0


def _camera_for(args: argparse.Namespace) -> Camera:
    from pathlib import Path

    from robostack.drivers.cameras import (
        OpenCVCamera,
        OpenCVCameraConfig,
        RealSenseCamera,
        RealSenseCameraConfig,
        SyntheticCamera,
        SyntheticCameraConfig,
        VideoFileCamera,
        VideoFileCameraConfig,
    )

    source: str = args.source
    if source == "synthetic":
        return SyntheticCamera(
            SyntheticCameraConfig(
                width=args.width or 640,
                height=args.height or 480,
                fps=args.fps or 30.0,
                lockstep=args.lockstep,
            )
        )
    if source == "realsense" or source.startswith("realsense:"):
        serial = source.partition(":")[2] or None
        return RealSenseCamera(
            RealSenseCameraConfig(
                serial=serial,
                width=args.width or 640,
                height=args.height or 480,
                fps=int(args.fps or 30),
            )
        )
    if Path(source).suffix.lower() in VIDEO_SUFFIXES:
        return VideoFileCamera(VideoFileCameraConfig(source, fps=args.fps, lockstep=args.lockstep))
    return OpenCVCamera(
        OpenCVCameraConfig(
            device=int(source) if source.isdigit() else source,
            width=args.width,
            height=args.height,
            fps=args.fps,
            fourcc=args.fourcc,
        )
    )


def _measure(camera: Camera, frames: int) -> dict[str, Any]:
    import time

    import numpy as np

    stamps: list[int] = []
    read_s: list[float] = []
    shape: tuple[int, ...] | None = None
    start = time.perf_counter()
    misses = 0
    while len(stamps) < frames and misses < 3 * frames:
        t0 = time.perf_counter()
        frame = camera.read()
        read_s.append(time.perf_counter() - t0)
        if frame is None:
            if getattr(camera, "finished", False):  # a video file has ended
                break
            misses += 1
            continue
        stamps.append(frame.stamp_ns)
        shape = frame.image.shape
    duration = time.perf_counter() - start
    periods_ms = np.diff(np.asarray(stamps, dtype=np.int64)) / 1e6
    reads_ms = np.asarray(read_s) * 1e3

    def summary(values: np.ndarray) -> dict[str, float]:
        if values.size == 0:
            return {}
        return {
            "p50": round(float(np.percentile(values, 50)), 3),
            "p99": round(float(np.percentile(values, 99)), 3),
            "max": round(float(values.max()), 3),
        }

    return {
        "camera": repr(camera),
        "frames": len(stamps),
        "shape": list(shape) if shape else None,
        "nominal_fps": camera.fps,
        "measured_fps": round((len(stamps) - 1) / (periods_ms.sum() / 1e3), 3)
        if periods_ms.size and periods_ms.sum() > 0
        else None,
        "duration_s": round(duration, 3),
        "stamp_period_ms": summary(periods_ms),
        "read_call_ms": summary(reads_ms),
        "stats": camera.stats.as_dict(),
    }
