"""Feetech STS-series bus (STS3215: SO-100/SO-101 follower and leader arms) via ``scservo_sdk``."""

from __future__ import annotations

from typing import Any

import scservo_sdk

from robostack.drivers.servo.bus import BusConfig
from robostack.drivers.servo.port_wait import QuietWaitMixin
from robostack.drivers.servo.sdk_bus import SdkServoBus

# STS servos use little-endian words: the SDK's "protocol end" 0 (1 is the big-endian SCS series).
_STS_PROTOCOL_END = 0


class _FeetechPort(QuietWaitMixin, scservo_sdk.PortHandler):
    """The SDK's port with a configurable reply timeout and an input flush before each request."""

    def __init__(self, port_name: str, latency_timer_ms: float) -> None:
        super().__init__(port_name)
        self.latency_timer_ms = latency_timer_ms

    def setPacketTimeout(self, packet_length):  # noqa: N802 (SDK method name)
        self.packet_start_time = self.getCurrentTime()
        self.packet_timeout = self.tx_time_per_byte * packet_length + 2.0 * self.latency_timer_ms + 2.0

    def clearPort(self):  # noqa: N802
        # The SDK calls this right before sending an instruction. Its own version only flushes
        # output, so a late reply from an earlier, failed transaction would be parsed as the
        # answer to this one; dropping pending input keeps request and reply paired.
        self.ser.reset_input_buffer()


class FeetechBus(SdkServoBus):
    """A bus of Feetech STS servos (SCS protocol, 1-byte checksum)."""

    sdk = scservo_sdk
    status_overhead_bytes = 6  # FF FF ID LEN ERR ... CHK

    def __init__(self, config: BusConfig) -> None:
        if config.protocol != "feetech":
            raise ValueError(f"FeetechBus needs protocol 'feetech', got {config.protocol!r}")
        super().__init__(config)

    def _make_port(self, port: str) -> Any:
        handler = _FeetechPort(port, self.config.latency_timer_ms)
        handler.baudrate = self.config.baudrate
        return handler

    def _make_packet_handler(self) -> Any:
        return scservo_sdk.PacketHandler(_STS_PROTOCOL_END)

    def _ping_once(self, motor_id: int) -> tuple[int, int, int]:
        # The SDK's ping is a ping followed by a read of the model number (address 3).
        return self._handler.ping(self._port, motor_id)
