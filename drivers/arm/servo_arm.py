"""An arm on a Feetech (SO-100/SO-101) or Dynamixel (Koch, WidowX-style) servo bus, as a graph node.

Joint positions in radians through the arm's calibration file (``robostack arm calibrate``); the
position limits of the safety layer are the calibrated ranges (narrowed by ``position_lower`` /
``position_upper`` if given).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from robostack.drivers.arm.base import ArmDescription, ArmDriverNode, ArmDriverParams
from robostack.drivers.servo.bus import BusConfig, CommunicationError
from robostack.drivers.servo.calibrated_arm import CalibratedServoArm
from robostack.drivers.servo.calibration import load_calibration
from robostack.drivers.servo.factory import make_bus


@dataclass
class ServoBusParams:
    """Where an arm's servo bus is and how it is calibrated (shared by follower and leader nodes)."""

    port: str = ""
    protocol: Literal["feetech", "dynamixel"] = "feetech"
    ids: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5, 6])
    baudrate: int = 1_000_000
    calibration: str = ""  # calibration JSON from `robostack arm calibrate`
    arm_type: str | None = None  # checked against the calibration file when given
    latency_timer_ms: float = 4.0  # reply timeout basis; 16 for an FTDI adapter at its default
    retries: int = 3
    port_wait_s: float = 10.0  # wait this long for the port to appear (an emulator, a replug)

    def check_bus(self) -> None:
        if not self.port:
            raise ValueError("param 'port': the serial port of the arm's bus is required (e.g. /dev/ttyACM0)")
        if not self.calibration:
            raise ValueError("param 'calibration': a calibration file is required (make one with "
                             "`robostack arm calibrate`)")
        if self.port_wait_s < 0:
            raise ValueError(f"param 'port_wait_s' must be >= 0, got {self.port_wait_s}")


def wait_for_port(path: str, timeout_s: float) -> None:
    """Block until ``path`` exists (a device node, or a symlink to an emulator's pty)."""
    deadline = time.monotonic() + timeout_s
    while not os.path.exists(path):
        if time.monotonic() >= deadline:
            raise FileNotFoundError(f"serial port {path!r} did not appear within {timeout_s:g} s; is the arm "
                                    "plugged in (or its emulator started)?")
        time.sleep(0.05)


def open_calibrated_arm(p: ServoBusParams) -> CalibratedServoArm:
    """Wait for the port, load and check the calibration, open the bus."""
    wait_for_port(p.port, p.port_wait_s)
    calibration = load_calibration(p.calibration, arm_type=p.arm_type, ids=p.ids, protocol=p.protocol)
    bus = make_bus(BusConfig(port=p.port, protocol=p.protocol, ids=p.ids, baudrate=p.baudrate,
                             retries=p.retries, latency_timer_ms=p.latency_timer_ms))
    arm = CalibratedServoArm(bus, calibration)
    arm.open()
    return arm


@dataclass
class ServoArmParams(ArmDriverParams, ServoBusParams):
    def __post_init__(self) -> None:
        ArmDriverParams.__post_init__(self)
        self.check_bus()


class ServoArmNode(ArmDriverNode):
    """Follower arm on a servo bus: state at ``rate_hz``, chunks/commands through executor and
    safety layer to the motors."""

    Params = ServoArmParams
    communication_errors = (CommunicationError,)

    def open_arm(self) -> ArmDescription:
        self.arm = open_calibrated_arm(self.params)
        low, high = self.arm.lower_limits, self.arm.upper_limits
        return ArmDescription(list(self.arm.calibration.names), low, high)

    def read_joints(self) -> tuple[np.ndarray, np.ndarray | None, int]:
        reading = self.arm.read_joints()
        return reading.positions, reading.velocities, reading.stamp_ns

    def write_goals(self, positions: np.ndarray) -> None:
        self.arm.write_joint_goals(positions)

    def set_torque(self, on: bool) -> None:
        self.arm.set_torque(on)

    def close_arm(self) -> None:
        self.arm.close()

    def hardware_stats(self) -> dict[str, Any]:
        arm = getattr(self, "arm", None)
        if arm is None:
            return {}
        return {"bus": arm.bus.stats.as_dict(), "clamped_goals": arm.clamped_goals}
