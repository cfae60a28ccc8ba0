"""Control tables of the supported servo families: addresses, sizes and value encodings.

Addresses were checked against the vendors' documentation:

* Feetech STS/SMS series (STS3215, used by SO-100/SO-101), protocol "SCS" with little-endian
  words (``scservo_sdk.PacketHandler(0)``). Torque enable 40, goal position 42 (2 bytes), present
  position 56 (2 bytes), present load 60, present current 69; model number at 3 (STS3215 = 777).
  Positions, velocities and the homing offset use sign-magnitude encodings (sign bit 15, or 11 for
  the homing offset), not two's complement.
* Dynamixel X series over protocol 2.0 (XL330, XL430, XM430, XM540, XC430; Koch, WidowX, ALOHA):
  torque enable 64, goal position 116 (4 bytes), present current 126 (2 bytes; "present load" on
  XL430/XC430), present velocity 128, present position 132 (4 bytes); model number at 0. Values
  are two's complement little endian.

Both families have a 4096-tick revolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Literal

Protocol = Literal["feetech", "dynamixel"]
PROTOCOLS: tuple[Protocol, ...] = ("feetech", "dynamixel")


class Encoding(Enum):
    UNSIGNED = "unsigned"
    TWOS_COMPLEMENT = "twos_complement"
    SIGN_MAGNITUDE = "sign_magnitude"


@dataclass(frozen=True)
class Register:
    """One control-table entry."""

    name: str
    address: int
    size: int
    encoding: Encoding = Encoding.UNSIGNED
    sign_bit: int = 0  # only for SIGN_MAGNITUDE

    def decode(self, raw: int) -> int:
        """Turn the unsigned little-endian register content into a signed value."""
        if self.encoding is Encoding.TWOS_COMPLEMENT:
            bits = 8 * self.size
            return raw - (1 << bits) if raw & (1 << (bits - 1)) else raw
        if self.encoding is Encoding.SIGN_MAGNITUDE:
            magnitude = raw & ((1 << self.sign_bit) - 1)
            return -magnitude if raw & (1 << self.sign_bit) else magnitude
        return raw

    def encode(self, value: int) -> int:
        """Turn a signed value into the unsigned register content; raises if it does not fit."""
        value = int(value)
        if self.encoding is Encoding.TWOS_COMPLEMENT:
            bits = 8 * self.size
            if not -(1 << (bits - 1)) <= value < (1 << (bits - 1)):
                raise ValueError(f"{self.name}: {value} does not fit in {bits} signed bits")
            return value & ((1 << bits) - 1)
        if self.encoding is Encoding.SIGN_MAGNITUDE:
            limit = 1 << self.sign_bit
            if abs(value) >= limit:
                raise ValueError(f"{self.name}: |{value}| must be < {limit} (sign bit {self.sign_bit})")
            return (abs(value) | limit) if value < 0 else value
        if not 0 <= value < (1 << (8 * self.size)):
            raise ValueError(f"{self.name}: {value} does not fit in {self.size} unsigned bytes")
        return value


@dataclass(frozen=True)
class ControlTable:
    """The registers the drivers and the emulator use, for one servo family."""

    family: str
    model_number: Register
    id: Register
    baud_rate: Register
    return_delay: Register  # units of 2 us on both families
    min_position_limit: Register
    max_position_limit: Register
    torque_enable: Register
    goal_position: Register
    present_current: Register
    present_velocity: Register
    present_position: Register
    operating_mode: Register
    resolution: int = 4096

    def state_block(self) -> tuple[int, int]:
        """(start, length) of one contiguous read covering position, velocity and current."""
        regs = (self.present_position, self.present_velocity, self.present_current)
        start = min(r.address for r in regs)
        end = max(r.address + r.size for r in regs)
        return start, end - start


FEETECH_STS = ControlTable(
    family="feetech_sts",
    model_number=Register("model_number", 3, 2),
    id=Register("id", 5, 1),
    baud_rate=Register("baud_rate", 6, 1),
    return_delay=Register("return_delay", 7, 1),
    min_position_limit=Register("min_position_limit", 9, 2),
    max_position_limit=Register("max_position_limit", 11, 2),
    operating_mode=Register("operating_mode", 33, 1),
    torque_enable=Register("torque_enable", 40, 1),
    goal_position=Register("goal_position", 42, 2, Encoding.SIGN_MAGNITUDE, 15),
    present_position=Register("present_position", 56, 2, Encoding.SIGN_MAGNITUDE, 15),
    present_velocity=Register("present_velocity", 58, 2, Encoding.SIGN_MAGNITUDE, 15),
    present_current=Register("present_current", 69, 2, Encoding.SIGN_MAGNITUDE, 15),
)

# Extra Feetech registers the emulator fills so that a generic tool reading them sees sane values.
FEETECH_PRESENT_LOAD = Register("present_load", 60, 2, Encoding.SIGN_MAGNITUDE, 10)
FEETECH_PRESENT_VOLTAGE = Register("present_voltage", 62, 1)  # 0.1 V
FEETECH_PRESENT_TEMPERATURE = Register("present_temperature", 63, 1)
FEETECH_MOVING = Register("moving", 66, 1)

DYNAMIXEL_X = ControlTable(
    family="dynamixel_x",
    model_number=Register("model_number", 0, 2),
    id=Register("id", 7, 1),
    baud_rate=Register("baud_rate", 8, 1),
    return_delay=Register("return_delay", 9, 1),
    operating_mode=Register("operating_mode", 11, 1),
    max_position_limit=Register("max_position_limit", 48, 4),
    min_position_limit=Register("min_position_limit", 52, 4),
    torque_enable=Register("torque_enable", 64, 1),
    goal_position=Register("goal_position", 116, 4, Encoding.TWOS_COMPLEMENT),
    present_current=Register("present_current", 126, 2, Encoding.TWOS_COMPLEMENT),
    present_velocity=Register("present_velocity", 128, 4, Encoding.TWOS_COMPLEMENT),
    present_position=Register("present_position", 132, 4, Encoding.TWOS_COMPLEMENT),
)

DYNAMIXEL_FIRMWARE_VERSION = Register("firmware_version", 6, 1)
DYNAMIXEL_MOVING = Register("moving", 122, 1)
DYNAMIXEL_PRESENT_VOLTAGE = Register("present_input_voltage", 144, 2)  # 0.1 V
DYNAMIXEL_PRESENT_TEMPERATURE = Register("present_temperature", 146, 1)

# One unit of the present-velocity register, in ticks per second: STS servos count steps/s;
# Dynamixel X counts 0.229 rev/min.
VELOCITY_UNIT_TICKS_PER_S: dict[str, float] = {"feetech": 1.0, "dynamixel": 0.229 * 4096 / 60.0}

# Model numbers reported at the model-number register (ping on Dynamixel returns it too).
FEETECH_MODELS: dict[str, int] = {"sts3215": 777}
DYNAMIXEL_MODELS: dict[str, int] = {
    "xl330-m077": 1190,
    "xl330-m288": 1200,
    "xl430-w250": 1060,
    "xm430-w350": 1020,
    "xm540-w270": 1120,
    "xc430-w150": 1070,
}

# Baud rates each SDK's port handler accepts; others fail before any byte is sent.
FEETECH_BAUDRATES: tuple[int, ...] = (
    4800, 9600, 14400, 19200, 38400, 57600, 115200, 128000, 250000, 500000, 1000000,
)
DYNAMIXEL_BAUDRATES: tuple[int, ...] = (
    9600, 19200, 38400, 57600, 115200, 230400, 460800, 500000, 576000, 921600, 1000000,
    1152000, 2000000, 2500000, 3000000, 3500000, 4000000,
)


def control_table(protocol: Protocol) -> ControlTable:
    """The control table of a bus protocol."""
    if protocol == "feetech":
        return FEETECH_STS
    if protocol == "dynamixel":
        return DYNAMIXEL_X
    raise ValueError(f"unknown servo protocol {protocol!r}; expected one of {PROTOCOLS}")


def model_numbers(protocol: Protocol) -> dict[str, int]:
    """Known model names to model numbers for a protocol."""
    control_table(protocol)  # validates the name
    return dict(FEETECH_MODELS if protocol == "feetech" else DYNAMIXEL_MODELS)


def model_name(protocol: Protocol, number: int) -> str:
    """The model name for a model number, or ``"unknown-<n>"``."""
    for name, value in model_numbers(protocol).items():
        if value == number:
            return name
    return f"unknown-{number}"


def supported_baudrates(protocol: Protocol) -> tuple[int, ...]:
    control_table(protocol)
    return FEETECH_BAUDRATES if protocol == "feetech" else DYNAMIXEL_BAUDRATES
