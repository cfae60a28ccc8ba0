import json
import math

import numpy as np
import pytest

from robostack.drivers.servo.calibration import (
    ArmCalibration,
    CalibrationError,
    CalibrationRecorder,
    JointCalibration,
    load_calibration,
)


def make_calibration(arm_type="so101"):
    joints = tuple(
        JointCalibration(name=n, motor_id=i, model="sts3215", homing_offset=2048, range_min=1000, range_max=3000,
                         drive_direction=-1 if i == 2 else 1)
        for i, n in enumerate(["pan", "lift", "elbow"], start=1)
    )
    return ArmCalibration(arm_type=arm_type, protocol="feetech", joints=joints, created="2025-01-01T00:00:00+00:00")


def test_ticks_radians_round_trip_with_direction():
    cal = make_calibration()
    rad = cal.ticks_to_radians([2048 + 1024, 2048 + 1024, 2048])
    np.testing.assert_allclose(rad, [math.pi / 2, -math.pi / 2, 0.0])
    np.testing.assert_array_equal(cal.radians_to_ticks(rad, clamp=False), [3072, 3072, 2048])


def test_radians_to_ticks_clamps_into_the_calibrated_range():
    cal = make_calibration()
    np.testing.assert_array_equal(cal.radians_to_ticks([10.0, 10.0, -10.0]), [3000, 1000, 1000])
    with pytest.raises(ValueError, match="finite"):
        cal.radians_to_ticks([0.0, float("nan"), 0.0])
    low, high = cal.limits_radians()
    assert np.all(low < high)


def test_save_and_load_round_trip(tmp_path):
    cal = make_calibration()
    path = cal.save(tmp_path / "arm.json")
    assert load_calibration(path, arm_type="so101", ids=[1, 2, 3], protocol="feetech") == cal
    data = json.loads(path.read_text())
    assert data["version"] == 1 and data["joints"][1]["drive_direction"] == -1


def _write(tmp_path, data):
    path = tmp_path / "cal.json"
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def test_corrupt_json_names_file_and_position(tmp_path):
    text = json.dumps(make_calibration().to_dict())[:-20]
    with pytest.raises(CalibrationError, match=r"cal.json' is corrupt: invalid JSON at line 1, column \d+"):
        load_calibration(_write(tmp_path, text))


def test_unknown_version_is_rejected(tmp_path):
    data = make_calibration().to_dict()
    data["version"] = 7
    with pytest.raises(CalibrationError, match="unknown calibration version 7"):
        load_calibration(_write(tmp_path, data))


def test_inverted_range_names_the_joint(tmp_path):
    data = make_calibration().to_dict()
    data["joints"][2]["range_min"], data["joints"][2]["range_max"] = 3000, 1000
    with pytest.raises(CalibrationError, match=r"joint 'elbow' \(id 3\): range is inverted"):
        load_calibration(_write(tmp_path, data))


def test_mismatched_arm_and_ids_are_rejected(tmp_path):
    path = make_calibration().save(tmp_path / "cal.json")
    with pytest.raises(CalibrationError, match="is for arm type 'so101', not 'koch'"):
        load_calibration(path, arm_type="koch")
    with pytest.raises(CalibrationError, match=r"covers motor ids \[1, 2, 3\], but the arm has ids \[1, 2, 3, 4\]"):
        load_calibration(path, ids=[1, 2, 3, 4])
    with pytest.raises(CalibrationError, match="is for a feetech bus, not dynamixel"):
        load_calibration(path, protocol="dynamixel")


def test_missing_or_mistyped_fields_are_named(tmp_path):
    data = make_calibration().to_dict()
    del data["joints"][0]["homing_offset"]
    with pytest.raises(CalibrationError, match=r"joint #0 \('pan'\): missing 'homing_offset'"):
        load_calibration(_write(tmp_path, data))
    data = make_calibration().to_dict()
    data["joints"][1]["id"] = True
    with pytest.raises(CalibrationError, match="'id' must be int, got True"):
        load_calibration(_write(tmp_path, data))
    with pytest.raises(CalibrationError, match="not a robostack servo calibration"):
        load_calibration(_write(tmp_path, {"joints": []}))
    with pytest.raises(CalibrationError, match="does not exist; run `robostack arm calibrate`"):
        load_calibration(tmp_path / "nope.json")


def test_models_on_the_bus_must_match_the_calibration():
    cal = make_calibration()
    cal.check_matches(models={1: 777, 2: 777, 3: 777})
    with pytest.raises(CalibrationError, match=r"motor 2 \(lift\) is a unknown-1060, calibrated as sts3215"):
        cal.check_matches(models={1: 777, 2: 1060, 3: 777})


def test_recorder_tracks_home_and_extremes():
    rec = CalibrationRecorder([1, 2])
    rec.set_home([2000, 2100])
    for a, b in [(1500, 2100), (2600, 1800), (1900, 2500)]:
        rec.observe([a, b])
    cal = rec.result("koch", "dynamixel", {1: "xl430-w250", 2: "xl330-m288"}, names=["a", "b"], inverted_ids=[2])
    j1, j2 = cal.joints
    assert (j1.homing_offset, j1.range_min, j1.range_max, j1.drive_direction) == (2000, 1500, 2600, 1)
    assert (j2.homing_offset, j2.range_min, j2.range_max, j2.drive_direction) == (2100, 1800, 2500, -1)


def test_recorder_refuses_joints_that_were_not_moved():
    rec = CalibrationRecorder([1, 2])
    rec.set_home([2000, 2100])
    rec.observe([2500, 2105])
    with pytest.raises(CalibrationError, match=r"not moved through their range: joint2 \(id 2: 5 ticks\)"):
        rec.result("custom", "feetech", {1: "sts3215", 2: "sts3215"})
