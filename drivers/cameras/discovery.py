"""Find V4L2 cameras: device nodes, stable links, names from sysfs, and offered formats.

Formats are read with the V4L2 ioctls directly (no v4l-utils needed); they are best effort: a
device that cannot be opened (busy, no permission) is listed with the reason instead.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path

# ioctl request codes: _IOR/_IOWR('V', nr, struct) for the structs packed below.
VIDIOC_QUERYCAP = 0x80685600  # struct v4l2_capability, 104 bytes
VIDIOC_ENUM_FMT = 0xC0405602  # struct v4l2_fmtdesc, 64 bytes
VIDIOC_ENUM_FRAMESIZES = 0xC02C564A  # struct v4l2_frmsizeenum, 44 bytes
VIDIOC_ENUM_FRAMEINTERVALS = 0xC034564B  # struct v4l2_frmivalenum, 52 bytes

V4L2_CAP_VIDEO_CAPTURE = 0x00000001
V4L2_CAP_DEVICE_CAPS = 0x80000000
V4L2_BUF_TYPE_VIDEO_CAPTURE = 1
V4L2_FRMSIZE_TYPE_DISCRETE = 1
V4L2_FRMIVAL_TYPE_DISCRETE = 1

_CAPABILITY = struct.Struct("<16s32s32sIII3I")
_FMTDESC = struct.Struct("<III32sII3I")
_FRMSIZE = struct.Struct("<III6I2I")
_FRMIVAL = struct.Struct("<IIIII6I2I")

_VIDEO_NODE = re.compile(r"video(\d+)$")


@dataclass
class V4L2Format:
    """A pixel format with the frame sizes (``"640x480@30,15"``) the device offers in it."""

    fourcc: str
    description: str
    sizes: list[str] = field(default_factory=list)


@dataclass
class V4L2Device:
    """One ``/dev/videoN`` node. Many cameras expose two nodes, one of which only carries
    metadata (``capture`` is False for it)."""

    path: str
    name: str | None = None
    by_id: list[str] = field(default_factory=list)
    by_path: list[str] = field(default_factory=list)
    capture: bool | None = None
    formats: list[V4L2Format] | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def list_v4l2_devices(
    dev_root: str | os.PathLike[str] = "/dev",
    sysfs_root: str | os.PathLike[str] = "/sys/class/video4linux",
    query_formats: bool = True,
) -> list[V4L2Device]:
    """Every ``videoN`` node found under ``dev_root`` or ``sysfs_root``, by number."""
    dev, sysfs = Path(dev_root), Path(sysfs_root)
    numbers: set[int] = set()
    for folder in (dev, sysfs):
        if folder.is_dir():
            for entry in folder.iterdir():
                match = _VIDEO_NODE.match(entry.name)
                if match:
                    numbers.add(int(match.group(1)))
    links = {kind: _links_by_target(dev / "v4l" / kind) for kind in ("by-id", "by-path")}
    devices = []
    for number in sorted(numbers):
        node = dev / f"video{number}"
        device = V4L2Device(
            path=str(node),
            name=_read_text(sysfs / f"video{number}" / "name"),
            by_id=links["by-id"].get(os.path.realpath(node), []),
            by_path=links["by-path"].get(os.path.realpath(node), []),
        )
        if query_formats:
            _fill_formats(device)
        devices.append(device)
    return devices


def query_v4l2_formats(path: str | os.PathLike[str]) -> tuple[bool, list[V4L2Format]]:
    """Whether the node captures video, and the formats it offers; raises OSError when the
    node cannot be opened or does not answer V4L2 ioctls."""
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    try:
        buf = bytearray(_CAPABILITY.size)
        fcntl.ioctl(fd, VIDIOC_QUERYCAP, buf)
        fields = _CAPABILITY.unpack(buf)
        capabilities, device_caps = fields[4], fields[5]
        caps = device_caps if capabilities & V4L2_CAP_DEVICE_CAPS else capabilities
        if not caps & V4L2_CAP_VIDEO_CAPTURE:
            return False, []
        formats = []
        for index in range(256):
            buf = bytearray(
                _FMTDESC.pack(index, V4L2_BUF_TYPE_VIDEO_CAPTURE, 0, b"", 0, 0, 0, 0, 0)
            )
            if not _ioctl_until_einval(fd, VIDIOC_ENUM_FMT, buf):
                break
            _, _, _, description, pixelformat, *_ = _FMTDESC.unpack(buf)
            fourcc = pixelformat.to_bytes(4, "little").decode("ascii", errors="replace")
            formats.append(
                V4L2Format(
                    fourcc=fourcc,
                    description=description.split(b"\0", 1)[0].decode(errors="replace"),
                    sizes=_frame_sizes(fd, pixelformat),
                )
            )
        return True, formats
    finally:
        os.close(fd)


def _frame_sizes(fd: int, pixelformat: int) -> list[str]:
    sizes = []
    for index in range(256):
        buf = bytearray(_FRMSIZE.pack(index, pixelformat, 0, 0, 0, 0, 0, 0, 0, 0, 0))
        if not _ioctl_until_einval(fd, VIDIOC_ENUM_FRAMESIZES, buf):
            break
        _, _, kind, *values = _FRMSIZE.unpack(buf)
        if kind != V4L2_FRMSIZE_TYPE_DISCRETE:  # stepwise/continuous: a range, one entry
            min_w, max_w, _, min_h, max_h, _ = values[:6]
            sizes.append(f"{min_w}x{min_h}-{max_w}x{max_h}")
            break
        width, height = values[0], values[1]
        rates = _frame_rates(fd, pixelformat, width, height)
        sizes.append(f"{width}x{height}" + (f"@{','.join(rates)}" if rates else ""))
    return sizes


def _frame_rates(fd: int, pixelformat: int, width: int, height: int) -> list[str]:
    rates = []
    for index in range(64):
        buf = bytearray(_FRMIVAL.pack(index, pixelformat, width, height, 0, *([0] * 8)))
        if not _ioctl_until_einval(fd, VIDIOC_ENUM_FRAMEINTERVALS, buf):
            break
        _, _, _, _, kind, numerator, denominator, *_ = _FRMIVAL.unpack(buf)
        if kind != V4L2_FRMIVAL_TYPE_DISCRETE or numerator == 0:
            break
        rates.append(f"{denominator / numerator:g}")
    return rates


def _ioctl_until_einval(fd: int, request: int, buf: bytearray) -> bool:
    """Run an enumeration ioctl; False when the index ran past the end (EINVAL)."""
    try:
        fcntl.ioctl(fd, request, buf)
    except OSError as error:
        if error.errno == errno.EINVAL:
            return False
        raise
    return True


def _fill_formats(device: V4L2Device) -> None:
    try:
        device.capture, device.formats = query_v4l2_formats(device.path)
    except OSError as error:
        reason = error.strerror or str(error)
        if error.errno in (errno.EACCES, errno.EPERM):
            reason += " (add your user to the 'video' group)"
        elif error.errno == errno.ENOTTY:
            reason = "not a V4L2 device (" + reason + ")"
        device.error = reason


def _links_by_target(folder: Path) -> dict[str, list[str]]:
    links: dict[str, list[str]] = {}
    if folder.is_dir():
        for link in sorted(folder.iterdir()):
            links.setdefault(os.path.realpath(link), []).append(str(link))
    return links


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None
