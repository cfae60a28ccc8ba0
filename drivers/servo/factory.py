"""Build the right bus for a protocol name."""

from __future__ import annotations

from robostack.drivers.servo.bus import BusConfig
from robostack.drivers.servo.sdk_bus import SdkServoBus


def make_bus(config: BusConfig) -> SdkServoBus:
    """A FeetechBus or DynamixelBus for ``config.protocol`` (not opened yet)."""
    if config.protocol == "feetech":
        from robostack.drivers.servo.feetech import FeetechBus

        return FeetechBus(config)
    if config.protocol == "dynamixel":
        from robostack.drivers.servo.dynamixel import DynamixelBus

        return DynamixelBus(config)
    raise ValueError(f"unknown servo protocol {config.protocol!r}; expected 'feetech' or 'dynamixel'")
