"""A servo bus seen in joint space: radians in and out, through a calibration.

This is the layer an arm driver node calls at its servo rate. It converts with the calibration,
keeps every goal inside the calibrated range as a last line of defence under the safety layer,
and counts each clamp so that nothing is adjusted silently.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from robostack.drivers.servo.bus import ServoBus
from robostack.drivers.servo.calibration import ArmCalibration
from robostack.drivers.servo.registers import VELOCITY_UNIT_TICKS_PER_S

@dataclass
class JointReading:
    positions: np.ndarray  # radians, joint order of the calibration
    velocities: np.ndarray  # radians per second (raw velocity register x its unit)
    currents: np.ndarray  # raw current/load register values
    stamp_ns: int  # time.monotonic_ns() when the read completed

class CalibratedServoArm:
    """Joint-space access to the motors of one calibrated arm."""

    def __init__(self, bus: ServoBus, calibration: ArmCalibration) -> None:
        if bus.config.protocol != calibration.protocol:
            raise ValueError(
                f"calibration is for a {calibration.protocol} bus, but the bus speaks {bus.config.protocol}"
            )
        self.bus = bus
        self.calibration = calibration
        self.ids = calibration.ids
        self.clamped_goals = 0  # goals outside the calibrated range, per joint value
        low, high = calibration.limits_radians()
        self.lower_limits = low
        self.upper_limits = high

    def open(self) -> None:
        """Open the bus and check its motors against the calibration (ids and models)."""
        self.bus.open()
        try:
            models = getattr(self.bus, "models", None)
            self.calibration.check_matches(ids=None, models=models or None, source="calibration")
        except BaseException:
            self.bus.close()
            raise

    def close(self) -> None:
        self.bus.close()

    def read_joint_positions(self) -> tuple[np.ndarray, int]:
        """Joint angles (radians) and the monotonic stamp of the read."""
        ticks = self.bus.read_positions(self.ids)
        return self.calibration.ticks_to_radians(ticks), time.monotonic_ns()

    def read_joints(self) -> JointReading:
        state = self.bus.read_state(self.ids)
        cal = self.calibration
        scale = np.array([j.drive_direction * 2 * np.pi / j.resolution for j in cal.joints])
        unit = VELOCITY_UNIT_TICKS_PER_S[cal.protocol]
        return JointReading(
            positions=cal.ticks_to_radians(state.positions),
            velocities=state.velocities * unit * scale,
            currents=state.currents.astype(np.float64),
            stamp_ns=state.stamp_ns,
        )

    def write_joint_goals(self, radians: np.ndarray) -> np.ndarray:
        """Send goals (radians); returns the ticks put on the bus. Non-finite input raises."""
        radians = np.asarray(radians, dtype=np.float64)
        unclamped = self.calibration.radians_to_ticks(radians, clamp=False)
        ticks = self.calibration.radians_to_ticks(radians, clamp=True)
        self.clamped_goals += int(np.count_nonzero(ticks != unclamped))
        self.bus.write_goal_positions(self.ids, ticks)
        return ticks

    def set_torque(self, on: bool) -> None:
        self.bus.set_torque(self.ids, on)
