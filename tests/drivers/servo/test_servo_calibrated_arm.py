"""Joint-space access through a calibration, against the emulated bus."""

import time

import numpy as np
import pytest

from robostack.drivers.servo.bus import BusConfig
from robostack.drivers.servo.calibrated_arm import CalibratedServoArm
from robostack.drivers.servo.calibration import ArmCalibration, CalibrationError, JointCalibration
from robostack.drivers.servo.emulator import EmulatedServoBus, EmulatorConfig
from robostack.drivers.servo.factory import make_bus


def calibration(protocol, model):
    joints = (
        JointCalibration("a", 1, model, homing_offset=2048, range_min=1024, range_max=3072),
        JointCalibration("b", 2, model, homing_offset=2048, range_min=1500, range_max=2600, drive_direction=-1),
    )
    return ArmCalibration("test_arm", protocol, joints)


@pytest.mark.parametrize("protocol, model", [("feetech", "sts3215"), ("dynamixel", "xl430-w250")])
def test_joint_goals_reach_the_bus_as_calibrated_ticks_and_clamps_are_counted(protocol, model):
    with EmulatedServoBus(EmulatorConfig(protocol=protocol, ids=[1, 2])) as emulator:
        arm = CalibratedServoArm(
            make_bus(BusConfig(port=emulator.port, protocol=protocol, ids=[1, 2], latency_timer_ms=10.0)),
            calibration(protocol, model),
        )
        arm.open()
        try:
            arm.set_torque(True)
            sent = arm.write_joint_goals(np.array([np.pi / 4, 0.1]))
            assert sent.tolist() == [2048 + 512, 2048 - round(0.1 * 4096 / (2 * np.pi))]
            assert arm.clamped_goals == 0
            moving = arm.read_joints()
            # the shaft is slewing at the model's velocity limit (4000 ticks/s ~ 6.1 rad/s)
            assert moving.velocities[0] == pytest.approx(4000 * 2 * np.pi / 4096, rel=0.1)
            time.sleep(0.4)
            positions, stamp = arm.read_joint_positions()
            np.testing.assert_allclose(positions, [np.pi / 4, 0.1], atol=2 * 2 * np.pi / 4096)
            assert stamp <= time.monotonic_ns()

            arm.write_joint_goals(np.array([10.0, -10.0]))  # both beyond the calibrated range
            assert arm.clamped_goals == 2
            arm.read_joint_positions()  # a round trip: the bus has handled the write before it
            assert [r.ticks for r in emulator.goal_log()[-2:]] == [3072, 2600]
        finally:
            arm.close()


def test_calibration_for_other_motor_models_is_refused_on_open():
    with EmulatedServoBus(EmulatorConfig(protocol="dynamixel", ids=[1, 2], model="xl330-m288")) as emulator:
        arm = CalibratedServoArm(
            make_bus(BusConfig(port=emulator.port, protocol="dynamixel", ids=[1, 2], latency_timer_ms=10.0)),
            calibration("dynamixel", "xl430-w250"),
        )
        with pytest.raises(CalibrationError, match=r"motor 1 \(a\) is a xl330-m288, calibrated as xl430-w250"):
            arm.open()
        assert not arm.bus.is_open


def test_calibration_for_another_protocol_is_refused():
    bus = make_bus(BusConfig(port="/dev/null", protocol="dynamixel", ids=[1, 2]))
    with pytest.raises(ValueError, match="calibration is for a feetech bus, but the bus speaks dynamixel"):
        CalibratedServoArm(bus, calibration("feetech", "sts3215"))
