from __future__ import annotations

import os
from pathlib import Path

from robostack.drivers.cameras import discovery
from robostack.drivers.cameras.discovery import list_v4l2_devices


def fake_tree(root: Path) -> tuple[Path, Path]:
    """A /dev and sysfs layout as udev makes it for one camera with a metadata node."""
    dev, sysfs = root / "dev", root / "sys"
    (dev / "v4l" / "by-id").mkdir(parents=True)
    (dev / "v4l" / "by-path").mkdir(parents=True)
    for n in (0, 1, 10):
        (dev / f"video{n}").write_bytes(b"")
        (sysfs / f"video{n}").mkdir(parents=True)
    (sysfs / "video0" / "name").write_text("HD USB Camera: HD USB Camera\n")
    (sysfs / "video1" / "name").write_text("HD USB Camera: HD USB Camera\n")
    by_id = dev / "v4l" / "by-id"
    os.symlink("../../video0", by_id / "usb-Acme_HD_USB_Camera_01-video-index0")
    os.symlink("../../video1", by_id / "usb-Acme_HD_USB_Camera_01-video-index1")
    os.symlink(
        "../../video0", dev / "v4l" / "by-path" / "pci-0000:00:14.0-usb-0:2:1.0-video-index0"
    )
    return dev, sysfs


def test_lists_nodes_in_numeric_order_with_names_and_stable_links(tmp_path: Path) -> None:
    dev, sysfs = fake_tree(tmp_path)
    devices = list_v4l2_devices(dev, sysfs, query_formats=False)
    assert [d.path for d in devices] == [str(dev / f"video{n}") for n in (0, 1, 10)]
    first = devices[0]
    assert first.name == "HD USB Camera: HD USB Camera"
    assert first.by_id == [str(dev / "v4l/by-id/usb-Acme_HD_USB_Camera_01-video-index0")]
    assert first.by_path == [str(dev / "v4l/by-path/pci-0000:00:14.0-usb-0:2:1.0-video-index0")]
    assert devices[1].by_id == [str(dev / "v4l/by-id/usb-Acme_HD_USB_Camera_01-video-index1")]
    assert devices[2].name is None and devices[2].by_id == []


def test_node_that_does_not_answer_v4l2_is_listed_with_the_reason(tmp_path: Path) -> None:
    dev, sysfs = fake_tree(tmp_path)
    device = list_v4l2_devices(dev, sysfs)[0]
    assert device.formats is None
    assert device.error is not None and "not a V4L2 device" in device.error


def test_nothing_found_under_empty_roots(tmp_path: Path) -> None:
    assert list_v4l2_devices(tmp_path / "dev", tmp_path / "sys") == []


def test_ioctl_request_codes_encode_the_struct_sizes_they_are_used_with() -> None:
    pairs = [
        (discovery.VIDIOC_QUERYCAP, discovery._CAPABILITY, 0, 2),
        (discovery.VIDIOC_ENUM_FMT, discovery._FMTDESC, 2, 3),
        (discovery.VIDIOC_ENUM_FRAMESIZES, discovery._FRMSIZE, 74, 3),
        (discovery.VIDIOC_ENUM_FRAMEINTERVALS, discovery._FRMIVAL, 75, 3),
    ]
    for request, layout, number, direction in pairs:
        assert request & 0xFF == number
        assert (request >> 8) & 0xFF == ord("V")
        assert (request >> 16) & 0x3FFF == layout.size
        assert request >> 30 == direction  # 2: read, 3: read/write
