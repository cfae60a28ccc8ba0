from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest

from robostack.drivers import camera_cli


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="robostack")
    camera_cli.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    args = parse(*argv)
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_list_says_no_cameras_found_when_there_are_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys, "cameras", "list", "--dev-root", str(tmp_path), "--sysfs-root", str(tmp_path)
    )
    assert code == 0
    assert out.strip() == "no cameras found"


def test_list_runs_against_this_machines_devices(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "cameras", "list", "--json")
    assert code == 0
    assert isinstance(json.loads(out), list)


def test_list_shows_name_and_stable_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dev, sysfs = tmp_path / "dev", tmp_path / "sys"
    (dev / "v4l" / "by-id").mkdir(parents=True)
    (sysfs / "video2").mkdir(parents=True)
    (dev / "video2").write_bytes(b"")
    (sysfs / "video2" / "name").write_text("Arm Wrist Cam\n")
    os.symlink("../../video2", dev / "v4l" / "by-id" / "usb-Wrist_Cam-video-index0")
    code, out, _ = run(
        capsys, "cameras", "list", "--dev-root", str(dev), "--sysfs-root", str(sysfs)
    )
    assert code == 0
    assert f"{dev / 'video2'}  Arm Wrist Cam" in out
    assert "usb-Wrist_Cam-video-index0" in out
    assert "formats unavailable: not a V4L2 device" in out


def test_probe_reports_rate_and_counters_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "cameras",
        "probe",
        "synthetic",
        "--frames",
        "20",
        "--fps",
        "200",
        "--width",
        "160",
        "--height",
        "120",
        "--json",
    )
    assert code == 0
    report = json.loads(out)
    assert report["frames"] == 20
    assert report["shape"] == [120, 160, 3]
    assert report["nominal_fps"] == pytest.approx(200.0)
    assert report["measured_fps"] == pytest.approx(200.0, rel=0.2)
    assert report["stats"]["frames"] == 20


def test_probe_of_a_video_file_stops_at_its_end(
    make_video, capsys: pytest.CaptureFixture[str]
) -> None:
    path = make_video(range(6), codec="MJPG")
    code, out, _ = run(capsys, "cameras", "probe", str(path), "--lockstep", "--json")
    assert code == 0
    assert json.loads(out)["frames"] == 6


def test_probe_of_a_missing_device_fails_with_the_reason(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(capsys, "cameras", "probe", "/dev/v4l/by-id/usb-Gone-video-index0")
    assert code == 1
    assert "usb-Gone-video-index0 does not exist" in err


def test_cameras_without_a_command_is_a_usage_error() -> None:
    with pytest.raises(SystemExit):
        parse("cameras")


def test_cli_module_imports_only_the_standard_library() -> None:
    import subprocess
    import sys

    code = (
        "import sys; import robostack.drivers.camera_cli; "
        "heavy = {'cv2', 'numpy', 'robostack.drivers.cameras'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
