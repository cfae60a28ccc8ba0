"""The common interface of servo buses, their configuration, counters and errors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Protocol as TypingProtocol, runtime_checkable

import numpy as np

from robostack.drivers.servo.registers import Protocol, control_table, supported_baudrates


class ServoBusError(RuntimeError):
    """Base class of every servo-bus failure."""


class PortOpenError(ServoBusError):
    """The serial port is missing, busy or not accessible."""


class BusNotRespondingError(ServoBusError):
    """Not a single motor answered: wrong baud rate, wrong protocol, no power or wrong port."""


class MotorNotFoundError(ServoBusError):
    """Some expected motor ids do not answer."""

    def __init__(self, message: str, missing: Sequence[int], found: Sequence[int]) -> None:
        super().__init__(message)
        self.missing = list(missing)
        self.found = list(found)


class CommunicationError(ServoBusError):
    """A transaction still failed after every retry."""

    def __init__(self, message: str, motor_id: int | None = None) -> None:
        super().__init__(message)
        self.motor_id = motor_id


class MotorModelError(ServoBusError):
    """A motor answered with a model number other than the expected one."""


@dataclass
class BusConfig:
    """Where a bus is and how hard to try.

    ``latency_timer_ms`` feeds the SDKs' reply timeout (bytes x byte time + 2 x latency + 2 ms):
    16 ms matches an FTDI adapter's default latency timer; adapters without one (CH340, the
    Feetech board) or a pty can use a few ms for faster failure detection.
    """

    port: str
    protocol: Protocol
    ids: Sequence[int] = (1, 2, 3, 4, 5, 6)
    baudrate: int = 1_000_000
    retries: int = 3  # extra attempts after the first, per transaction
    latency_timer_ms: float = 16.0
    expected_model: str | None = None  # checked on open() when set

    def __post_init__(self) -> None:
        control_table(self.protocol)
        if self.baudrate not in supported_baudrates(self.protocol):
            raise ValueError(
                f"baud rate {self.baudrate} is not supported by the {self.protocol} SDK; "
                f"choose one of {list(supported_baudrates(self.protocol))}"
            )
        if not self.ids:
            raise ValueError("a bus needs at least one motor id")
        bad = [i for i in self.ids if not 0 <= int(i) <= 252]
        if bad:
            raise ValueError(f"motor ids must be within 0..252, got {bad}")
        if len(set(self.ids)) != len(self.ids):
            raise ValueError(f"duplicate motor ids in {list(self.ids)}")
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0, got {self.retries}")
        if self.latency_timer_ms < 0:
            raise ValueError(f"latency_timer_ms must be >= 0, got {self.latency_timer_ms}")


@dataclass
class BusStats:
    """Counters of everything that happened on a bus; never reset implicitly."""

    transactions: int = 0  # logical operations (a sync read, a torque write, a ping)
    attempts: int = 0  # packets exchanged, retries included
    retries: int = 0
    rx_timeouts: int = 0
    rx_corrupt: int = 0
    tx_failures: int = 0
    other_failures: int = 0
    failed_transactions: int = 0  # still failing after every retry
    recovered_transactions: int = 0  # failed at first, succeeded on a retry
    motor_errors: int = 0  # status packets carrying an error byte
    sync_reads: int = 0
    sync_writes: int = 0
    last_error: str = ""
    per_motor_failures: dict[int, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ServoState:
    """One sync read of several motors, raw units, stamped when the read completed."""

    ids: tuple[int, ...]
    positions: np.ndarray  # ticks, int64
    velocities: np.ndarray  # raw velocity register units, int64
    currents: np.ndarray  # raw current (load) register units, int64
    stamp_ns: int  # time.monotonic_ns() after the last reply arrived


@runtime_checkable
class ServoBus(TypingProtocol):
    """What an arm driver needs from a servo bus. Positions are raw ticks."""

    config: BusConfig
    stats: BusStats

    def open(self) -> None:
        """Open the port and check that every configured motor answers."""

    def close(self) -> None:
        """Close the port (torque is left as it is)."""

    def ping(self, motor_id: int) -> int | None:
        """Model number of a motor, or None when it does not answer."""

    def scan(self, ids: Sequence[int] | None = None, retries: int = 0) -> dict[int, int]:
        """Motor id -> model number of every motor that answers."""

    def read_positions(self, ids: Sequence[int]) -> np.ndarray:
        """Present positions (ticks) with one sync read."""

    def read_state(self, ids: Sequence[int]) -> ServoState:
        """Present positions, velocities and currents with one sync read."""

    def write_goal_positions(self, ids: Sequence[int], ticks: Sequence[int] | np.ndarray) -> None:
        """Goal positions (ticks) with one sync write."""

    def set_torque(self, ids: Sequence[int], on: bool) -> None:
        """Enable or disable torque, confirmed by each motor's status reply."""
