"""Dynamixel protocol 2.0 bus (X series: Koch, WidowX, ALOHA arms) via ``dynamixel_sdk``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dynamixel_sdk

from robostack.drivers.servo.bus import BusConfig
from robostack.drivers.servo.port_wait import QuietWaitMixin
from robostack.drivers.servo.sdk_bus import SdkServoBus

_PROTOCOL_VERSION = 2.0


class _DynamixelPort(QuietWaitMixin, dynamixel_sdk.PortHandler):
    """The SDK's port with a configurable reply timeout (its default assumes a 16 ms latency)."""

    def __init__(self, port_name: str, latency_timer_ms: float) -> None:
        super().__init__(port_name)
        self.latency_timer_ms = latency_timer_ms

    def setPacketTimeout(self, packet_length):  # noqa: N802 (SDK method name)
        self.packet_start_time = self.getCurrentTime()
        self.packet_timeout = self.tx_time_per_byte * packet_length + 2.0 * self.latency_timer_ms + 2.0


class DynamixelBus(SdkServoBus):
    """A bus of Dynamixel servos speaking protocol 2.0 (CRC-16, byte stuffing)."""

    sdk = dynamixel_sdk
    status_overhead_bytes = 11  # FF FF FD 00 ID LEN LEN 55 ERR ... CRC CRC

    def __init__(self, config: BusConfig) -> None:
        if config.protocol != "dynamixel":
            raise ValueError(f"DynamixelBus needs protocol 'dynamixel', got {config.protocol!r}")
        super().__init__(config)

    def _make_port(self, port: str) -> Any:
        handler = _DynamixelPort(port, self.config.latency_timer_ms)
        handler.baudrate = self.config.baudrate
        return handler

    def _make_packet_handler(self) -> Any:
        return dynamixel_sdk.PacketHandler(_PROTOCOL_VERSION)

    def _ping_once(self, motor_id: int) -> tuple[int, int, int]:
        return self._handler.ping(self._port, motor_id)

    def scan(self, ids: Sequence[int] | None = None, retries: int = 0) -> dict[int, int]:
        """One broadcast ping finds every motor; falls back to per-id pings if it fails."""
        self._require_open()
        self.stats.transactions += 1
        self.stats.attempts += 1
        found, result = self._handler.broadcastPing(self._port)
        if result != dynamixel_sdk.COMM_SUCCESS and not found:
            self._count_result(result, None)
            if result == dynamixel_sdk.COMM_RX_TIMEOUT:
                return {}
            return super().scan(ids, retries)
        wanted = set(ids) if ids is not None else None
        return {i: info[0] for i, info in sorted(found.items()) if wanted is None or i in wanted}
