"""An emulated servo bus behind a pseudo-terminal that speaks the real wire protocols.

A driver (or any vendor tool) opens the pty's slave path like a USB serial adapter. The emulator
parses Feetech or Dynamixel 2.0 instruction packets, answers with status packets from a set of
modelled motors, and paces every reply by the byte time of the configured baud rate so that bus
timing is realistic. It can corrupt replies, drop them (the driver sees a timeout), keep a motor
silent (dead or missing id), and refuses to understand a port opened at a different baud rate,
like real servos. Every goal position it receives is recorded with a monotonic stamp.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import select
import struct
import threading
import time
import tty
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from robostack.drivers.servo.motor_model import EmulatedMotor, HandSweep, MotorDynamics
from robostack.drivers.servo.registers import Protocol, control_table, model_numbers
from robostack.drivers.servo import wire

_TCGETS2 = 0x802C542A  # Linux ioctl: struct termios2, carries the numeric line speed
_BITS_PER_BYTE = 10  # start + 8 data + stop


@dataclass
class EmulatorConfig:
    """What the emulated bus looks like and which faults it injects."""

    protocol: Protocol
    ids: Sequence[int] = (1, 2, 3, 4, 5, 6)
    baudrate: int = 1_000_000
    model: str | None = None  # default: sts3215 / xl430-w250
    corrupt_rate: float = 0.0  # probability that a reply has one bit flipped
    timeout_rate: float = 0.0  # probability that a reply is never sent
    dead_ids: Sequence[int] = ()  # on the bus's id list but never answers
    emulate_byte_time: bool = True
    return_delay_us: float = 0.0  # servo's response delay before its status packet
    initial_positions: dict[int, int] = field(default_factory=dict)
    hand_sweep: bool = False  # free joints sweep through a range, as a person would move them
    dynamics: MotorDynamics = field(default_factory=MotorDynamics)
    log_path: Path | None = None  # JSONL of received goal positions
    seed: int | None = None

    def __post_init__(self) -> None:
        control_table(self.protocol)
        if not self.ids:
            raise ValueError("emulator needs at least one motor id")
        for motor_id in self.ids:
            if not 0 <= int(motor_id) <= 252:
                raise ValueError(f"motor id {motor_id} is outside 0..252")
        if len(set(self.ids)) != len(self.ids):
            raise ValueError(f"duplicate motor ids in {list(self.ids)}")
        for name in ("corrupt_rate", "timeout_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value}")
        unknown_dead = set(self.dead_ids) - set(self.ids)
        if unknown_dead:
            raise ValueError(f"dead ids {sorted(unknown_dead)} are not among the bus ids {list(self.ids)}")
        models = model_numbers(self.protocol)
        if self.model is None:
            self.model = "sts3215" if self.protocol == "feetech" else "xl430-w250"
        if self.model not in models:
            raise ValueError(f"unknown {self.protocol} model {self.model!r}; known: {sorted(models)}")
        if self.baudrate <= 0:
            raise ValueError(f"baudrate must be positive, got {self.baudrate}")


@dataclass(frozen=True)
class GoalRecord:
    """One goal position as the bus received it."""

    stamp_ns: int  # time.monotonic_ns() when the packet carrying it was parsed
    motor_id: int
    ticks: int  # the value on the wire, decoded, before any clamping by the motor
    applied: bool
    instruction: str  # "sync_write" or "write"


@dataclass
class EmulatorStats:
    packets_received: int = 0
    bad_packets: int = 0
    replies_sent: int = 0
    replies_corrupted: int = 0
    replies_dropped: int = 0
    wrong_baud_bytes: int = 0
    goals_received: int = 0


def parse_id_list(text: str) -> list[int]:
    """Parse ``"1-6"``, ``"1,2,5"`` or ``"1-3,7"`` into motor ids."""
    ids: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                low, high = (int(x) for x in part.split("-", 1))
                if high < low:
                    raise ValueError
                ids.extend(range(low, high + 1))
            else:
                ids.append(int(part))
        except ValueError:
            raise ValueError(f"bad motor id list {text!r}: use forms like 1-6 or 1,2,3") from None
    if not ids:
        raise ValueError(f"bad motor id list {text!r}: no ids")
    return ids


def _line_speed(fd: int) -> int | None:
    try:
        buf = bytearray(44)
        fcntl.ioctl(fd, _TCGETS2, buf)
        return struct.unpack_from("II", buf, 36)[1]
    except OSError:
        return None


class EmulatedServoBus:
    """The emulator: owns the pty, the motors and a service thread."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.table = control_table(config.protocol)
        number = model_numbers(config.protocol)[config.model]  # type: ignore[index]
        self.motors: dict[int, EmulatedMotor] = {
            motor_id: EmulatedMotor(
                motor_id,
                self.table,
                number,
                initial_position=config.initial_positions.get(motor_id, 2048),
                dynamics=config.dynamics,
            )
            for motor_id in config.ids
        }
        if config.hand_sweep:
            for k, motor in enumerate(self.motors.values()):
                motor.hand_sweep = HandSweep(1100, 3000, period_s=1.0 + 0.1 * k, phase=0.7 * k)
        self.stats = EmulatorStats()
        self._framer = wire.FeetechFramer() if config.protocol == "feetech" else wire.DynamixelFramer()
        self._rng = random.Random(config.seed)
        self._byte_time = _BITS_PER_BYTE / config.baudrate if config.emulate_byte_time else 0.0
        self._bus_free_at = 0.0
        self._lock = threading.RLock()
        self._goal_log: list[GoalRecord] = []
        self._log_file = None
        self._master: int | None = None
        self._slave: int | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.port: str | None = None

    # -- lifecycle -----------------------------------------------------------------------
    def open(self) -> str:
        """Create the pseudo-terminal; returns the slave path a driver should open."""
        if self._master is not None:
            return self.port  # type: ignore[return-value]
        master, slave = os.openpty()
        # Raw mode so that no byte is echoed or translated; the emulator keeps the slave open so
        # the pty survives a driver closing and reopening the port.
        tty.setraw(slave)
        self._master, self._slave = master, slave
        self.port = os.ttyname(slave)
        if self.config.log_path is not None:
            self._log_file = open(self.config.log_path, "a", encoding="utf-8")
        return self.port

    def start(self) -> str:
        """Open the pty and serve it from a background thread; returns the port path."""
        port = self.open()
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self.serve_forever, name="servo-emulator", daemon=True)
            self._thread.start()
        return port

    def stop(self) -> None:
        """Stop serving; packets already sent to the port are still executed (and logged)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        self._drain()
        for fd in (self._master, self._slave):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._master = self._slave = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> "EmulatedServoBus":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _drain(self, quiet_s: float = 0.02) -> None:
        # The pty hands bytes over asynchronously: wait until it has been quiet for a moment so
        # that a goal a driver wrote just before stop() still reaches the log.
        if self._master is None:
            return
        saved = self._byte_time
        self._byte_time = 0.0  # nobody is waiting for these replies any more
        try:
            while select.select([self._master], [], [], quiet_s)[0]:
                try:
                    data = os.read(self._master, 4096)
                except OSError:
                    return
                if not data:
                    return
                self._handle_bytes(data, time.monotonic())
        finally:
            self._byte_time = saved

    # -- API for tests and tools ---------------------------------------------------------
    def goal_log(self, motor_id: int | None = None) -> list[GoalRecord]:
        """Every goal position received so far (optionally for one motor), oldest first."""
        with self._lock:
            if motor_id is None:
                return list(self._goal_log)
            return [r for r in self._goal_log if r.motor_id == motor_id]

    def clear_goal_log(self) -> None:
        with self._lock:
            self._goal_log.clear()

    def present_positions(self, ids: Iterable[int] | None = None) -> dict[int, float]:
        with self._lock:
            out = {}
            for motor_id in ids if ids is not None else self.motors:
                motor = self.motors[motor_id]
                motor.update()
                out[motor_id] = motor.position
            return out

    def torque_enabled(self, motor_id: int) -> bool:
        with self._lock:
            return self.motors[motor_id].torque_enabled

    def move_by_hand(self, positions: dict[int, float]) -> None:
        """Move free joints as a person would (ignored for joints holding torque)."""
        with self._lock:
            for motor_id, ticks in positions.items():
                self.motors[motor_id].move_by_hand(ticks)

    def set_faults(
        self,
        corrupt_rate: float | None = None,
        timeout_rate: float | None = None,
        dead_ids: Sequence[int] | None = None,
    ) -> None:
        """Change fault injection while running."""
        with self._lock:
            if corrupt_rate is not None:
                self.config.corrupt_rate = corrupt_rate
            if timeout_rate is not None:
                self.config.timeout_rate = timeout_rate
            if dead_ids is not None:
                self.config.dead_ids = tuple(dead_ids)

    # -- service loop --------------------------------------------------------------------
    def serve_forever(self) -> None:
        """Answer packets until stop() (or KeyboardInterrupt when run in the foreground)."""
        if self._master is None:
            self.open()
        master = self._master
        assert master is not None
        while not self._stop.is_set():
            ready, _, _ = select.select([master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(master, 4096)
            except OSError:
                # EIO while no process holds the slave open; cannot happen while we hold it, but
                # a closed fd during stop() lands here.
                if self._stop.is_set():
                    return
                time.sleep(0.01)
                continue
            received_at = time.monotonic()
            self._handle_bytes(data, received_at)

    def _handle_bytes(self, data: bytes, received_at: float) -> None:
        speed = _line_speed(self._slave) if self._slave is not None else None
        if speed is not None and speed != self.config.baudrate:
            # At the wrong baud rate a servo sees framing garbage and never answers.
            with self._lock:
                self.stats.wrong_baud_bytes += len(data)
            return
        packets = self._framer.feed(data)
        with self._lock:
            self.stats.bad_packets = self._framer.bad_packets
        # The pty delivers instantly; on a half-duplex wire these bytes could only start once
        # the bus is free (earlier requests and replies sent) and take their byte time.
        wire_end = max(received_at, self._bus_free_at) + len(data) * self._byte_time
        for packet in packets:
            with self._lock:
                self.stats.packets_received += 1
                replies = self._execute(packet)
            wire_end = self._send_replies(replies, wire_end)
        self._bus_free_at = wire_end

    def _send_replies(self, replies: list[bytes], start: float) -> float:
        t = start
        for reply in replies:
            t += self.config.return_delay_us * 1e-6 + len(reply) * self._byte_time
            with self._lock:
                drop = self._rng.random() < self.config.timeout_rate
                corrupt = not drop and self._rng.random() < self.config.corrupt_rate
                if drop:
                    self.stats.replies_dropped += 1
                    continue
                if corrupt:
                    reply = self._corrupt(reply)
                    self.stats.replies_corrupted += 1
            delay = t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                os.write(self._master, reply)  # type: ignore[arg-type]
            except OSError:
                return t
            with self._lock:
                self.stats.replies_sent += 1
        return t

    def _corrupt(self, reply: bytes) -> bytes:
        # Flip one bit after the length field (data, error byte or checksum), the common case of
        # line noise on a long packet; hits on framing bytes look like timeouts, which
        # timeout_rate covers.
        first = 5 if self.config.protocol == "feetech" else 8
        out = bytearray(reply)
        index = self._rng.randrange(first - 1, len(out))
        out[index] ^= 1 << self._rng.randrange(8)
        return bytes(out)

    # -- instruction semantics -----------------------------------------------------------
    def _alive(self, motor_id: int) -> bool:
        return motor_id in self.motors and motor_id not in self.config.dead_ids

    def _status(self, motor_id: int, error: int = 0, params: bytes = b"") -> bytes:
        if self.config.protocol == "feetech":
            return wire.feetech_status(motor_id, error, params)
        return wire.dynamixel_status(motor_id, error, params)

    def _split_addr_len(self, params: bytes) -> tuple[int, int, bytes] | None:
        if self.config.protocol == "feetech":
            if len(params) < 2:
                return None
            return params[0], params[1], params[2:]
        if len(params) < 4:
            return None
        return params[0] | params[1] << 8, params[2] | params[3] << 8, params[4:]

    def _split_addr(self, params: bytes) -> tuple[int, bytes] | None:
        width = 1 if self.config.protocol == "feetech" else 2
        if len(params) < width:
            return None
        address = params[0] if width == 1 else params[0] | params[1] << 8
        return address, params[width:]

    def _record_goal(self, motor_id: int, outcome, instruction: str, stamp_ns: int) -> None:
        if outcome.goal_ticks is None:
            return
        record = GoalRecord(stamp_ns, motor_id, outcome.goal_ticks, outcome.goal_applied, instruction)
        self._goal_log.append(record)
        self.stats.goals_received += 1
        if self._log_file is not None:
            self._log_file.write(json.dumps(asdict(record)) + "\n")
            self._log_file.flush()

    def _execute(self, packet: wire.InstructionPacket) -> list[bytes]:
        stamp_ns = time.monotonic_ns()
        inst = packet.instruction
        dxl = self.config.protocol == "dynamixel"
        target = packet.motor_id
        is_broadcast = target == wire.BROADCAST_ID

        if inst == wire.INST_PING:
            ids = sorted(i for i in self.motors if self._alive(i)) if is_broadcast and dxl else [target]
            replies = []
            for motor_id in ids:
                if not self._alive(motor_id):
                    continue
                params = b""
                if dxl:
                    number = self.motors[motor_id].memory[0:2]
                    params = bytes(number) + bytes([self.motors[motor_id].memory[6]])
                replies.append(self._status(motor_id, 0, params))
            return replies

        if inst == wire.INST_READ:
            parsed = self._split_addr_len(packet.params)
            if parsed is None or is_broadcast or not self._alive(target):
                return []
            address, length, _ = parsed
            data = self.motors[target].read(address, length)
            if data is None:
                # An STS servo has no error code for a bad address and stays silent.
                return [self._status(target, wire.DXL_ERR_ACCESS)] if dxl else []
            return [self._status(target, 0, data)]

        if inst == wire.INST_WRITE:
            parsed = self._split_addr(packet.params)
            if parsed is None:
                return []
            address, data = parsed
            ids = [i for i in self.motors if self._alive(i)] if is_broadcast else [target]
            replies = []
            for motor_id in ids:
                if not self._alive(motor_id):
                    continue
                outcome = self.motors[motor_id].write(address, data)
                self._record_goal(motor_id, outcome, "write", stamp_ns)
                error = 0
                if dxl and not outcome.ok:
                    error = wire.DXL_ERR_ACCESS
                elif dxl and outcome.limit_error:
                    error = wire.DXL_ERR_DATA_LIMIT
                if not is_broadcast:
                    replies.append(self._status(motor_id, error))
            return replies

        if inst == wire.INST_SYNC_WRITE:
            parsed = self._split_addr_len(packet.params)
            if parsed is None:
                return []
            address, length, body = parsed
            stride = 1 + length
            if length == 0 or len(body) % stride:
                return []  # malformed: a servo cannot tell where its slice is
            for offset in range(0, len(body), stride):
                motor_id = body[offset]
                if self._alive(motor_id):
                    outcome = self.motors[motor_id].write(address, body[offset + 1 : offset + stride])
                    self._record_goal(motor_id, outcome, "sync_write", stamp_ns)
            return []

        if inst == wire.INST_SYNC_READ:
            parsed = self._split_addr_len(packet.params)
            if parsed is None:
                return []
            address, length, body = parsed
            replies = []
            for motor_id in body:
                if not self._alive(motor_id):
                    continue  # the next motor waits for a slot that never comes; SDK times out
                data = self.motors[motor_id].read(address, length)
                if data is not None:
                    replies.append(self._status(motor_id, 0, data))
            return replies

        # Instructions the drivers never send (reg write, action, reset, bulk ...).
        if dxl and not is_broadcast and self._alive(target):
            return [self._status(target, wire.DXL_ERR_INSTRUCTION)]
        return []


def _config_to_json(config: EmulatorConfig) -> str:
    data = asdict(config)
    data["ids"] = list(config.ids)
    data["dead_ids"] = list(config.dead_ids)
    data["initial_positions"] = {str(k): v for k, v in config.initial_positions.items()}
    data["log_path"] = str(config.log_path) if config.log_path is not None else None
    return json.dumps(data)


def _config_from_json(text: str) -> EmulatorConfig:
    data = json.loads(text)
    data["dynamics"] = MotorDynamics(**data["dynamics"])
    data["initial_positions"] = {int(k): v for k, v in data["initial_positions"].items()}
    data["log_path"] = Path(data["log_path"]) if data["log_path"] else None
    return EmulatorConfig(**data)


def serve_subprocess() -> None:
    """Child side of EmulatorProcess: config on stdin, port on stdout, report after 'stop'."""
    import sys

    emulator = EmulatedServoBus(_config_from_json(sys.stdin.readline()))
    print(emulator.start(), flush=True)
    sys.stdin.readline()  # any line (or EOF) means stop
    emulator.stop()
    report = {"stats": asdict(emulator.stats), "goals": [asdict(r) for r in emulator.goal_log()]}
    print(json.dumps(report), flush=True)


class EmulatorProcess:
    """An emulator in its own process, like a real bus beside the driver (no shared GIL)."""

    def __init__(self, config: EmulatorConfig) -> None:
        import subprocess
        import sys

        code = "from robostack.drivers.servo.emulator import serve_subprocess; serve_subprocess()"
        self._process = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(_config_to_json(config) + "\n")
        self._process.stdin.flush()
        port = self._process.stdout.readline().strip()
        if not port:
            self._process.kill()
            raise RuntimeError(f"emulator process failed to start (exit code {self._process.wait()})")
        self.port: str = port
        self.stats: EmulatorStats | None = None
        self.goals: list[GoalRecord] = []

    def stop(self) -> tuple[EmulatorStats, list[GoalRecord]]:
        """Stop the process; returns its counters and the goal positions it received."""
        if self.stats is None:
            out, _ = self._process.communicate("stop\n", timeout=30)
            report = json.loads(out.strip().splitlines()[-1])
            self.stats = EmulatorStats(**report["stats"])
            self.goals = [GoalRecord(**g) for g in report["goals"]]
        return self.stats, self.goals

    def __enter__(self) -> "EmulatorProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
