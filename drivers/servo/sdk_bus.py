"""Shared machinery of the SDK-backed buses: opening, retries, counters, sync read/write.

The vendors' SDKs (``scservo_sdk`` and ``dynamixel_sdk``) have the same shape: a PortHandler on
top of pyserial, a packet handler, and GroupSyncRead/GroupSyncWrite helpers. This base class
drives either through a few hooks that the protocol subclasses fill in.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np

from robostack.drivers.servo.bus import (
    BusConfig,
    BusNotRespondingError,
    BusStats,
    CommunicationError,
    MotorModelError,
    MotorNotFoundError,
    PortOpenError,
    ServoBusError,
    ServoState,
)
from robostack.drivers.servo.registers import ControlTable, Register, control_table, model_name, model_numbers

_BITS_PER_BYTE = 10


class SdkServoBus:
    """A servo bus driven through a vendor SDK; see FeetechBus and DynamixelBus."""

    sdk: ModuleType  # set by subclasses
    status_overhead_bytes: int  # framing bytes of one status packet without data

    def __init__(self, config: BusConfig) -> None:
        self.config = config
        self.table: ControlTable = control_table(config.protocol)
        self.stats = BusStats()
        self.models: dict[int, int] = {}
        self._port: Any = None
        self._handler: Any = None
        self._sync_reads: dict[tuple[int, int, tuple[int, ...]], Any] = {}
        self._byte_time_s = _BITS_PER_BYTE / config.baudrate

    # -- hooks -----------------------------------------------------------------------------
    def _make_port(self, port: str) -> Any:
        raise NotImplementedError

    def _make_packet_handler(self) -> Any:
        raise NotImplementedError

    def _ping_once(self, motor_id: int) -> tuple[int, int, int]:
        """(model_number, comm_result, error) of one ping."""
        raise NotImplementedError

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self._port is not None

    def open(self) -> None:
        """Open the port and check that every configured motor answers (see BusConfig)."""
        if self._port is not None:
            return
        self.open_port_only()
        try:
            self._check_motors()
        except BaseException:
            self.close()
            raise

    def open_port_only(self) -> None:
        """Open the serial port without pinging any motor (for scanning an unknown bus)."""
        if self._port is not None:
            return
        port_path = self.config.port
        if not os.path.exists(port_path):
            raise PortOpenError(
                f"serial port {port_path!r} does not exist: is the adapter plugged in? "
                "List candidates with `ls /dev/ttyUSB* /dev/ttyACM*` (or /dev/pts/* for the emulator)."
            )
        port = self._make_port(port_path)
        try:
            opened = port.openPort()
        except Exception as exc:  # pyserial raises SerialException/OSError subclasses
            raise PortOpenError(f"cannot open serial port {port_path!r}: {exc}") from exc
        if not opened:
            raise PortOpenError(f"cannot open serial port {port_path!r} at {self.config.baudrate} baud")
        self._port = port
        self._handler = self._make_packet_handler()

    def close(self) -> None:
        if self._port is not None:
            try:
                self._port.closePort()
            finally:
                self._port = None
                self._sync_reads.clear()

    def __enter__(self) -> "SdkServoBus":
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_motors(self) -> None:
        found: dict[int, int] = {}
        for motor_id in self.config.ids:
            number = self.ping(motor_id)
            if number is not None:
                found[motor_id] = number
        self.models = found
        where = f"{self.config.port} at {self.config.baudrate} baud ({self.config.protocol} protocol)"
        if not found:
            raise BusNotRespondingError(
                f"no motor answered on {where}, ids tried: {list(self.config.ids)}. Check the baud rate "
                "(STS3215 and Dynamixel arms usually run at 1000000), the protocol, the motors' power "
                "supply, and that this is the right port."
            )
        missing = [i for i in self.config.ids if i not in found]
        if missing:
            raise MotorNotFoundError(
                f"motor id(s) {missing} did not answer on {where}; ids that answered: {sorted(found)}. "
                "Check the cabling to those motors and their ids.",
                missing=missing,
                found=sorted(found),
            )
        expected = self.config.expected_model
        if expected is not None:
            number = model_numbers(self.config.protocol).get(expected)
            if number is None:
                raise MotorModelError(f"unknown {self.config.protocol} model {expected!r}")
            wrong = {i: model_name(self.config.protocol, n) for i, n in found.items() if n != number}
            if wrong:
                raise MotorModelError(f"expected {expected} motors, but found {wrong}")

    def _require_open(self) -> None:
        if self._port is None:
            raise ServoBusError(f"bus on {self.config.port!r} is not open; call open() first")

    # -- retry core ------------------------------------------------------------------------
    def _settle(self, expected_reply_bytes: int) -> None:
        # Let replies still on the wire arrive, then drop them, so a retry starts clean.
        time.sleep(expected_reply_bytes * self._byte_time_s + 2e-4)
        self._port.ser.reset_input_buffer()

    def _count_result(self, result: int, motor_id: int | None) -> None:
        sdk = self.sdk
        if result == sdk.COMM_RX_TIMEOUT:
            self.stats.rx_timeouts += 1
        elif result == sdk.COMM_RX_CORRUPT:
            self.stats.rx_corrupt += 1
        elif result == sdk.COMM_TX_FAIL:
            self.stats.tx_failures += 1
        else:
            self.stats.other_failures += 1
        if motor_id is not None:
            self.stats.per_motor_failures[motor_id] = self.stats.per_motor_failures.get(motor_id, 0) + 1

    def _transact(
        self,
        what: str,
        attempt_fn,
        expected_reply_bytes: int,
        raise_on_failure: bool = True,
        retries: int | None = None,
    ):
        """Run ``attempt_fn() -> (ok, value, result, failed_id)`` with retries and counters."""
        self._require_open()
        self.stats.transactions += 1
        last_result, failed_id = None, None
        retries = self.config.retries if retries is None else retries
        for attempt in range(retries + 1):
            if attempt:
                self.stats.retries += 1
                self._settle(expected_reply_bytes)
            self.stats.attempts += 1
            ok, value, result, failed_id = attempt_fn()
            if ok:
                if attempt:
                    self.stats.recovered_transactions += 1
                return value
            last_result = result
            self._count_result(result, failed_id)
        self.stats.failed_transactions += 1
        text = self._handler.getTxRxResult(last_result) if last_result is not None else "?"
        who = f" (motor {failed_id} did not answer correctly)" if failed_id is not None else ""
        message = f"{what} failed after {retries + 1} attempts{who}: {text.strip()}"
        self.stats.last_error = message
        if raise_on_failure:
            raise CommunicationError(message, motor_id=failed_id)
        self._settle(expected_reply_bytes)
        return None

    # -- operations ------------------------------------------------------------------------
    def ping(self, motor_id: int, retries: int | None = None) -> int | None:
        """Model number, or None if the motor does not answer (after ``retries``, default config)."""

        def attempt():
            number, result, _ = self._ping_once(motor_id)
            return result == self.sdk.COMM_SUCCESS, number, result, motor_id

        reply_bytes = self.status_overhead_bytes + 3
        return self._transact(
            f"ping of motor {motor_id}", attempt, reply_bytes, raise_on_failure=False, retries=retries
        )

    def scan(self, ids: Sequence[int] | None = None, retries: int = 0) -> dict[int, int]:
        """Ping ids (default 0..252); by default one attempt each, as a silent id costs a timeout."""
        found = {}
        for motor_id in ids if ids is not None else range(0, 253):
            number = self.ping(motor_id, retries=retries)
            if number is not None:
                found[motor_id] = number
        return found

    def _group_read(self, address: int, length: int, ids: tuple[int, ...]):
        key = (address, length, ids)
        group = self._sync_reads.get(key)
        if group is None:
            group = self.sdk.GroupSyncRead(self._port, self._handler, address, length)
            for motor_id in ids:
                if not group.addParam(motor_id):
                    raise ValueError(f"motor id {motor_id} listed twice in {list(ids)}")
            self._sync_reads[key] = group
        return group

    def sync_read_bytes(self, address: int, length: int, ids: Sequence[int]) -> dict[int, bytes]:
        """Raw register bytes of several motors with one sync read (retried)."""
        ids_t = tuple(int(i) for i in ids)
        if not ids_t:
            return {}
        success = self.sdk.COMM_SUCCESS
        collected: dict[int, bytes] = {}
        remaining = list(ids_t)

        def attempt():
            group = self._group_read(address, length, tuple(remaining))
            result = group.txRxPacket()
            # The SDK reads the replies in id order and stops at the first bad one: the motors
            # before it answered in this very read, so a retry only asks the rest.
            # (Entries after the failed one still hold the previous read's data: never use them.)
            if result == success:
                for motor_id in remaining:
                    collected[motor_id] = bytes(group.data_dict[motor_id][:length])
                remaining.clear()
                return True, {i: collected[i] for i in ids_t}, result, None
            fresh = []
            failed = None
            for motor_id in remaining:
                if len(group.data_dict.get(motor_id) or ()) < length:
                    failed = motor_id
                    break
                fresh.append(motor_id)
            if failed is not None:
                for motor_id in fresh:
                    collected[motor_id] = bytes(group.data_dict[motor_id][:length])
                    remaining.remove(motor_id)
            return False, None, result, failed

        reply_bytes = (self.status_overhead_bytes + length) * len(ids_t)
        self.stats.sync_reads += 1
        return self._transact(f"sync read of {length} bytes at {address} from ids {list(ids_t)}", attempt, reply_bytes)

    def read_positions(self, ids: Sequence[int]) -> np.ndarray:
        reg = self.table.present_position
        raw = self.sync_read_bytes(reg.address, reg.size, ids)
        return np.array([reg.decode(int.from_bytes(raw[int(i)], "little")) for i in ids], dtype=np.int64)

    def read_state(self, ids: Sequence[int]) -> ServoState:
        start, length = self.table.state_block()
        raw = self.sync_read_bytes(start, length, ids)
        stamp = time.monotonic_ns()

        def field(reg: Register) -> np.ndarray:
            offset = reg.address - start
            return np.array(
                [reg.decode(int.from_bytes(raw[int(i)][offset : offset + reg.size], "little")) for i in ids],
                dtype=np.int64,
            )

        return ServoState(
            ids=tuple(int(i) for i in ids),
            positions=field(self.table.present_position),
            velocities=field(self.table.present_velocity),
            currents=field(self.table.present_current),
            stamp_ns=stamp,
        )

    def sync_write_register(self, reg: Register, ids: Sequence[int], values: Sequence[int] | np.ndarray) -> None:
        """Write one register of several motors with one sync write (no reply on the bus)."""
        self._require_open()
        ids_l = [int(i) for i in ids]
        values_l = [int(v) for v in np.asarray(values).reshape(-1)]
        if len(ids_l) != len(values_l):
            raise ValueError(f"{len(ids_l)} ids but {len(values_l)} values for {reg.name}")
        if len(set(ids_l)) != len(ids_l):
            raise ValueError(f"duplicate ids in {ids_l}")
        group = self.sdk.GroupSyncWrite(self._port, self._handler, reg.address, reg.size)
        for motor_id, value in zip(ids_l, values_l):
            group.addParam(motor_id, list(reg.encode(value).to_bytes(reg.size, "little")))
        self.stats.transactions += 1
        self.stats.sync_writes += 1
        for attempt in range(self.config.retries + 1):
            self.stats.attempts += 1
            if attempt:
                self.stats.retries += 1
            result = group.txPacket()
            if result == self.sdk.COMM_SUCCESS:
                if attempt:
                    self.stats.recovered_transactions += 1
                return
            self._count_result(result, None)
            # COMM_PORT_BUSY after an aborted read: the SDK's own flag, safe to clear here
            self._port.is_using = False
        self.stats.failed_transactions += 1
        message = f"sync write of {reg.name} to ids {ids_l} failed: {self._handler.getTxRxResult(result)}"
        self.stats.last_error = message
        raise CommunicationError(message)

    def write_goal_positions(self, ids: Sequence[int], ticks: Sequence[int] | np.ndarray) -> None:
        values = np.asarray(ticks)
        if values.dtype.kind == "f":
            if not np.all(np.isfinite(values)):
                raise ValueError(f"goal positions must be finite, got {values.tolist()}")
            values = np.rint(values).astype(np.int64)
        self.sync_write_register(self.table.goal_position, ids, values)

    def write_register(self, reg: Register, motor_id: int, value: int) -> None:
        """Write one register of one motor, confirmed by its status reply (retried)."""
        data = list(reg.encode(value).to_bytes(reg.size, "little"))
        success = self.sdk.COMM_SUCCESS

        def attempt():
            result, error = self._handler.writeTxRx(self._port, motor_id, reg.address, reg.size, data)
            if result == success and error:
                self.stats.motor_errors += 1
                raise CommunicationError(
                    f"motor {motor_id} refused {reg.name}={value}: {self._handler.getRxPacketError(error).strip()}",
                    motor_id=motor_id,
                )
            return result == success, None, result, motor_id

        self._transact(f"write of {reg.name}={value} to motor {motor_id}", attempt, self.status_overhead_bytes)

    def read_register(self, reg: Register, motor_id: int) -> int:
        """Read one register of one motor (retried)."""
        success = self.sdk.COMM_SUCCESS

        def attempt():
            data, result, _ = self._handler.readTxRx(self._port, motor_id, reg.address, reg.size)
            if result != success:
                return False, None, result, motor_id
            return True, reg.decode(int.from_bytes(bytes(data[: reg.size]), "little")), result, motor_id

        return self._transact(
            f"read of {reg.name} from motor {motor_id}", attempt, self.status_overhead_bytes + reg.size
        )

    def set_torque(self, ids: Sequence[int], on: bool) -> None:
        for motor_id in ids:
            self.write_register(self.table.torque_enable, int(motor_id), 1 if on else 0)
