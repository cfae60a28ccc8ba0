"""A simple physical model of one position-controlled servo, behind its control table.

The model is deliberately plain: with torque on, the shaft follows the goal as a first-order lag
with a velocity limit, inside the position-limit registers; with torque off it stays where it is
unless "a hand" moves it (an explicit call, or the optional sweep that imitates a person moving
the joint through its range during calibration). Present position/velocity/current registers are
refreshed from the model whenever they are read.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from robostack.drivers.servo.registers import (
    DYNAMIXEL_FIRMWARE_VERSION,
    DYNAMIXEL_MOVING,
    DYNAMIXEL_PRESENT_TEMPERATURE,
    DYNAMIXEL_PRESENT_VOLTAGE,
    FEETECH_MOVING,
    FEETECH_PRESENT_LOAD,
    FEETECH_PRESENT_TEMPERATURE,
    FEETECH_PRESENT_VOLTAGE,
    ControlTable,
    VELOCITY_UNIT_TICKS_PER_S,
    Register,
)


@dataclass
class MotorDynamics:
    """First-order position tracking parameters (ticks, seconds)."""

    time_constant_s: float = 0.03
    max_velocity_ticks_s: float = 4000.0  # ~6 rad/s: an STS3215 at 12 V is in this range
    current_per_tick: float = 2.0  # raw current units per tick of tracking error
    max_current: int = 1000


@dataclass
class HandSweep:
    """Imitates a person moving a free (torque-off) joint back and forth."""

    low_ticks: int
    high_ticks: int
    period_s: float
    phase: float


class EmulatedMotor:
    """One servo: a control table in memory and the model that drives its present values."""

    MEMORY_SIZE = 256

    def __init__(
        self,
        motor_id: int,
        table: ControlTable,
        model_number: int,
        initial_position: int = 2048,
        dynamics: MotorDynamics | None = None,
        clock=time.monotonic,
    ) -> None:
        self.motor_id = motor_id
        self.table = table
        self.dynamics = dynamics or MotorDynamics()
        self.memory = bytearray(self.MEMORY_SIZE)
        self.hand_sweep: HandSweep | None = None
        self._clock = clock
        self._position = float(initial_position)
        self._velocity = 0.0
        self._goal = float(initial_position)
        self._last_update = clock()
        self._sweep_t0 = self._last_update
        self._is_dynamixel = table.family.startswith("dynamixel")
        self._set(table.model_number, model_number)
        self._set(table.id, motor_id)
        self._set(table.min_position_limit, 0)
        self._set(table.max_position_limit, table.resolution - 1)
        self._set(table.goal_position, initial_position)
        if self._is_dynamixel:
            self._set(table.operating_mode, 3)  # position control
            self._set(table.baud_rate, 3)  # 1 Mbps in the X-series table
            self._set(DYNAMIXEL_FIRMWARE_VERSION, 52)
            self._set(DYNAMIXEL_PRESENT_VOLTAGE, 120)
            self._set(DYNAMIXEL_PRESENT_TEMPERATURE, 30)
        else:
            self._set(table.baud_rate, 0)  # 1 Mbps in the STS table
            self._set(FEETECH_PRESENT_VOLTAGE, 120)
            self._set(FEETECH_PRESENT_TEMPERATURE, 30)
        self._refresh_present()

    # -- register memory -------------------------------------------------------------------
    def _get(self, reg: Register) -> int:
        return reg.decode(int.from_bytes(self.memory[reg.address : reg.address + reg.size], "little"))

    def _set(self, reg: Register, value: int) -> None:
        self.memory[reg.address : reg.address + reg.size] = reg.encode(value).to_bytes(reg.size, "little")

    @property
    def torque_enabled(self) -> bool:
        return self._get(self.table.torque_enable) != 0

    @property
    def position(self) -> float:
        return self._position

    @property
    def goal(self) -> float:
        return self._goal

    def position_limits(self) -> tuple[int, int]:
        return self._get(self.table.min_position_limit), self._get(self.table.max_position_limit)

    def read(self, address: int, length: int) -> bytes | None:
        """Register bytes, or None when the range leaves the control table."""
        if address < 0 or length <= 0 or address + length > self.MEMORY_SIZE:
            return None
        self.update()
        return bytes(self.memory[address : address + length])

    def write(self, address: int, data: bytes) -> "WriteOutcome":
        """Write registers with the side effects a servo applies; reports any goal it saw."""
        if address < 0 or address + len(data) > self.MEMORY_SIZE:
            return WriteOutcome(ok=False)
        self.update()
        table = self.table
        torque_before = self.torque_enabled
        goal_reg = table.goal_position
        touches_goal = address <= goal_reg.address and address + len(data) >= goal_reg.address + goal_reg.size
        old_goal_bytes = bytes(self.memory[goal_reg.address : goal_reg.address + goal_reg.size])
        self.memory[address : address + len(data)] = data
        outcome = WriteOutcome(ok=True)
        if touches_goal:
            requested = self._get(goal_reg)
            low, high = self.position_limits()
            outcome.goal_ticks = requested
            if self._is_dynamixel and not low <= requested <= high:
                # X series rejects an out-of-limit goal (Data Limit Error) and keeps the old one.
                self.memory[goal_reg.address : goal_reg.address + goal_reg.size] = old_goal_bytes
                outcome.goal_applied = False
                outcome.limit_error = True
            else:
                applied = min(max(requested, low), high)  # STS clamps into its angle limits
                self._set(goal_reg, applied)
                self._goal = float(applied)
                outcome.goal_applied = True
        torque_after = self.torque_enabled
        if torque_after and not torque_before:
            # Enabling torque holds the shaft where it is instead of jumping to a stale goal.
            hold = int(round(self._position))
            self._set(goal_reg, hold)
            self._goal = float(hold)
        return outcome

    # -- model ---------------------------------------------------------------------------
    def move_by_hand(self, ticks: float) -> None:
        """Put a free joint at a position (ignored while torque holds it)."""
        self.update()
        if not self.torque_enabled:
            self._position = float(ticks)
            self._refresh_present()

    def update(self) -> None:
        now = self._clock()
        dt = max(0.0, now - self._last_update)
        self._last_update = now
        dyn = self.dynamics
        if self.torque_enabled:
            wanted = (self._goal - self._position) / max(dyn.time_constant_s, 1e-6)
            self._velocity = max(-dyn.max_velocity_ticks_s, min(dyn.max_velocity_ticks_s, wanted))
            step = self._velocity * dt
            # never overshoot the goal in one integration step
            if abs(step) > abs(self._goal - self._position):
                step = self._goal - self._position
            self._position += step
        elif self.hand_sweep is not None:
            sweep = self.hand_sweep
            mid = 0.5 * (sweep.low_ticks + sweep.high_ticks)
            amp = 0.5 * (sweep.high_ticks - sweep.low_ticks)
            t = now - self._sweep_t0
            new = mid + amp * math.sin(2 * math.pi * t / sweep.period_s + sweep.phase)
            self._velocity = (new - self._position) / dt if dt > 0 else 0.0
            self._position = new
        else:
            self._velocity = 0.0
        self._refresh_present()

    def _refresh_present(self) -> None:
        table = self.table
        dyn = self.dynamics
        pos = int(round(self._position))
        pos = max(-(1 << 15) + 1, min((1 << 15) - 1, pos))
        self._set(table.present_position, pos)
        unit = VELOCITY_UNIT_TICKS_PER_S["dynamixel" if self._is_dynamixel else "feetech"]
        vel = int(round(self._velocity / unit))
        vel = max(-(1 << 15) + 1, min((1 << 15) - 1, vel))
        self._set(table.present_velocity, vel)
        current = 0
        if self.torque_enabled:
            current = int(round(dyn.current_per_tick * (self._goal - self._position)))
            current = max(-dyn.max_current, min(dyn.max_current, current))
        self._set(table.present_current, current)
        moving = 1 if abs(self._velocity) > 1.0 else 0
        if self._is_dynamixel:
            self._set(DYNAMIXEL_MOVING, moving)
        else:
            self._set(FEETECH_MOVING, moving)
            self._set(FEETECH_PRESENT_LOAD, max(-1000, min(1000, current)))


@dataclass
class WriteOutcome:
    ok: bool
    goal_ticks: int | None = None
    goal_applied: bool = False
    limit_error: bool = False
