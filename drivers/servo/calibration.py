"""Joint calibration of a servo arm: homing offsets, ranges and directions in a versioned file.

Calibration lives on the host, not in the servos' EEPROM: the driver converts raw ticks to joint
radians with ``radians = direction * (ticks - homing_offset) * 2 pi / resolution``, and the
recorded range [range_min, range_max] (raw ticks) bounds every goal it sends.

File format (JSON, ``schema`` = "robostack.servo_calibration", ``version`` = 1)::

    {"schema": ..., "version": 1, "arm_type": "so101", "protocol": "feetech",
     "created": "2025-01-01T00:00:00+00:00",
     "joints": [{"name": "shoulder_pan", "id": 1, "model": "sts3215", "homing_offset": 2047,
                 "range_min": 1010, "range_max": 3050, "drive_direction": 1,
                 "resolution": 4096}, ...]}
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from robostack.drivers.servo.registers import PROTOCOLS, Protocol, model_name

SCHEMA_NAME = "robostack.servo_calibration"
SCHEMA_VERSION = 1
SUPPORTED_VERSIONS = (1,)

SIX_DOF_NAMES = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")

# Arm types the project knows: protocol and joint names in id order (ids 1..n).
ARM_PRESETS: dict[str, tuple[Protocol, tuple[str, ...]]] = {
    "so100": ("feetech", SIX_DOF_NAMES),
    "so101": ("feetech", SIX_DOF_NAMES),
    "so101_leader": ("feetech", SIX_DOF_NAMES),
    "koch": ("dynamixel", SIX_DOF_NAMES),
    "koch_leader": ("dynamixel", SIX_DOF_NAMES),
}


class CalibrationError(ValueError):
    """A calibration file or recording is unusable; the message says what and where."""


def default_joint_names(arm_type: str, ids: Sequence[int]) -> list[str]:
    """Preset joint names for a known arm with as many ids, else ``joint<id>``."""
    preset = ARM_PRESETS.get(arm_type)
    if preset is not None and len(preset[1]) == len(ids):
        return list(preset[1])
    return [f"joint{i}" for i in ids]


@dataclass(frozen=True)
class JointCalibration:
    name: str
    motor_id: int
    model: str
    homing_offset: int  # raw ticks at the joint's zero
    range_min: int  # raw ticks
    range_max: int  # raw ticks
    drive_direction: int = 1  # +1 or -1: sign between tick and joint-angle increments
    resolution: int = 4096  # ticks per revolution

    def __post_init__(self) -> None:
        where = f"joint {self.name!r} (id {self.motor_id})"
        if not self.name:
            raise CalibrationError(f"joint with id {self.motor_id} has an empty name")
        if not 0 <= self.motor_id <= 252:
            raise CalibrationError(f"{where}: motor id must be within 0..252")
        if self.drive_direction not in (1, -1):
            raise CalibrationError(f"{where}: drive_direction must be 1 or -1, got {self.drive_direction}")
        if self.resolution <= 0:
            raise CalibrationError(f"{where}: resolution must be positive, got {self.resolution}")
        if self.range_min >= self.range_max:
            raise CalibrationError(
                f"{where}: range is inverted or empty (range_min {self.range_min} >= range_max {self.range_max})"
            )

    @property
    def radians_per_tick(self) -> float:
        return 2.0 * math.pi / self.resolution

    def range_radians(self) -> tuple[float, float]:
        """Joint-angle limits (low, high) in radians."""
        a = self.drive_direction * (self.range_min - self.homing_offset) * self.radians_per_tick
        b = self.drive_direction * (self.range_max - self.homing_offset) * self.radians_per_tick
        return (min(a, b), max(a, b))


@dataclass(frozen=True)
class ArmCalibration:
    arm_type: str
    protocol: Protocol
    joints: tuple[JointCalibration, ...]
    created: str = ""
    version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise CalibrationError(f"unknown protocol {self.protocol!r}; expected one of {PROTOCOLS}")
        if not self.joints:
            raise CalibrationError("calibration has no joints")
        ids = [j.motor_id for j in self.joints]
        names = [j.name for j in self.joints]
        if len(set(ids)) != len(ids):
            raise CalibrationError(f"duplicate motor ids in calibration: {ids}")
        if len(set(names)) != len(names):
            raise CalibrationError(f"duplicate joint names in calibration: {names}")

    # -- accessors -----------------------------------------------------------------------
    @property
    def ids(self) -> list[int]:
        return [j.motor_id for j in self.joints]

    @property
    def names(self) -> list[str]:
        return [j.name for j in self.joints]

    def _column(self, attr: str) -> np.ndarray:
        return np.array([getattr(j, attr) for j in self.joints], dtype=np.float64)

    def ticks_to_radians(self, ticks: Sequence[float] | np.ndarray) -> np.ndarray:
        """Raw ticks (joint order) to joint angles in radians."""
        ticks = np.asarray(ticks, dtype=np.float64)
        self._check_len(ticks)
        scale = 2.0 * np.pi / self._column("resolution")
        return self._column("drive_direction") * (ticks - self._column("homing_offset")) * scale

    def radians_to_ticks(self, radians: Sequence[float] | np.ndarray, clamp: bool = True) -> np.ndarray:
        """Joint angles to raw ticks (int64), clamped into the calibrated range by default."""
        radians = np.asarray(radians, dtype=np.float64)
        self._check_len(radians)
        if not np.all(np.isfinite(radians)):
            raise ValueError(f"joint angles must be finite, got {radians.tolist()}")
        scale = self._column("resolution") / (2.0 * np.pi)
        ticks = np.rint(self._column("homing_offset") + self._column("drive_direction") * radians * scale)
        if clamp:
            ticks = np.clip(ticks, self._column("range_min"), self._column("range_max"))
        return ticks.astype(np.int64)

    def limits_radians(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-joint (low, high) limits in radians."""
        pairs = [j.range_radians() for j in self.joints]
        return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])

    def _check_len(self, values: np.ndarray) -> None:
        if values.shape != (len(self.joints),):
            raise ValueError(f"expected {len(self.joints)} values (one per joint), got shape {values.shape}")

    # -- checks --------------------------------------------------------------------------
    def check_matches(
        self,
        arm_type: str | None = None,
        ids: Sequence[int] | None = None,
        protocol: str | None = None,
        models: Mapping[int, int] | None = None,
        source: str = "calibration",
    ) -> None:
        """Raise CalibrationError if this calibration is for another arm, bus or motor set."""
        if arm_type is not None and arm_type != self.arm_type:
            raise CalibrationError(f"{source} is for arm type {self.arm_type!r}, not {arm_type!r}")
        if protocol is not None and protocol != self.protocol:
            raise CalibrationError(f"{source} is for a {self.protocol} bus, not {protocol}")
        if ids is not None and list(ids) != self.ids:
            raise CalibrationError(f"{source} covers motor ids {self.ids}, but the arm has ids {list(ids)}")
        if models is not None:
            for joint in self.joints:
                number = models.get(joint.motor_id)
                if number is None:
                    raise CalibrationError(f"{source}: motor {joint.motor_id} ({joint.name}) is not on the bus")
                found = model_name(self.protocol, number)
                if found != joint.model:
                    raise CalibrationError(
                        f"{source}: motor {joint.motor_id} ({joint.name}) is a {found}, calibrated as {joint.model}"
                    )

    # -- (de)serialisation ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_NAME,
            "version": self.version,
            "arm_type": self.arm_type,
            "protocol": self.protocol,
            "created": self.created,
            "joints": [
                {
                    "name": j.name,
                    "id": j.motor_id,
                    "model": j.model,
                    "homing_offset": j.homing_offset,
                    "range_min": j.range_min,
                    "range_max": j.range_max,
                    "drive_direction": j.drive_direction,
                    "resolution": j.resolution,
                }
                for j in self.joints
            ],
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "calibration") -> "ArmCalibration":
        if not isinstance(data, dict):
            raise CalibrationError(f"{source}: top level must be a JSON object, got {type(data).__name__}")
        if data.get("schema") != SCHEMA_NAME:
            raise CalibrationError(f"{source}: not a robostack servo calibration (schema {data.get('schema')!r})")
        version = data.get("version")
        if version not in SUPPORTED_VERSIONS:
            raise CalibrationError(
                f"{source}: unknown calibration version {version!r}; this robostack reads versions "
                f"{list(SUPPORTED_VERSIONS)}"
            )
        for key in ("arm_type", "protocol", "joints"):
            if key not in data:
                raise CalibrationError(f"{source}: missing key {key!r}")
        if not isinstance(data["joints"], list):
            raise CalibrationError(f"{source}: 'joints' must be a list")
        joints = []
        for index, entry in enumerate(data["joints"]):
            where = f"{source}: joint #{index}"
            if not isinstance(entry, dict):
                raise CalibrationError(f"{where} must be an object")
            where = f"{where} ({entry.get('name', '?')!r})"
            try:
                values = {
                    "name": _typed(entry, "name", str, where),
                    "motor_id": _typed(entry, "id", int, where),
                    "model": _typed(entry, "model", str, where),
                    "homing_offset": _typed(entry, "homing_offset", int, where),
                    "range_min": _typed(entry, "range_min", int, where),
                    "range_max": _typed(entry, "range_max", int, where),
                    "drive_direction": _typed(entry, "drive_direction", int, where),
                    "resolution": _typed(entry, "resolution", int, where),
                }
                joints.append(JointCalibration(**values))
            except CalibrationError as exc:
                msg = str(exc)
                raise CalibrationError(msg if msg.startswith(source) else f"{source}: {msg}") from None
        try:
            return cls(
                arm_type=_typed(data, "arm_type", str, source),
                protocol=_typed(data, "protocol", str, source),  # type: ignore[arg-type]
                joints=tuple(joints),
                created=str(data.get("created", "")),
                version=version,
            )
        except CalibrationError as exc:
            msg = str(exc)
            raise CalibrationError(msg if msg.startswith(source) else f"{source}: {msg}") from None

    def save(self, path: str | Path) -> Path:
        """Write the file atomically (a crash never leaves half a calibration)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)
        return path


def _typed(entry: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in entry:
        raise CalibrationError(f"{where}: missing {key!r}")
    value = entry[key]
    # bool is an int subclass in Python; a true/false here is a broken file, not 1/0
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise CalibrationError(f"{where}: {key!r} must be {kind.__name__}, got {value!r}")
    return value


def load_calibration(
    path: str | Path,
    arm_type: str | None = None,
    ids: Sequence[int] | None = None,
    protocol: str | None = None,
) -> ArmCalibration:
    """Read and validate a calibration file, optionally checking it belongs to this arm."""
    path = Path(path)
    source = f"calibration file {str(path)!r}"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CalibrationError(f"{source} does not exist; run `robostack arm calibrate` first") from None
    except OSError as exc:
        raise CalibrationError(f"{source} cannot be read: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CalibrationError(
            f"{source} is corrupt: invalid JSON at line {exc.lineno}, column {exc.colno} ({exc.msg})"
        ) from None
    calibration = ArmCalibration.from_dict(data, source=source)
    calibration.check_matches(arm_type=arm_type, ids=ids, protocol=protocol, source=source)
    return calibration


@dataclass
class CalibrationRecorder:
    """Accumulates readings into homing offsets and ranges."""

    ids: Sequence[int]
    min_span_ticks: int = 20  # a joint that moved less than this was not swept
    home: np.ndarray | None = None
    low: np.ndarray | None = None
    high: np.ndarray | None = None
    samples: int = 0
    _ids: list[int] = field(init=False)

    def __post_init__(self) -> None:
        self._ids = [int(i) for i in self.ids]

    def set_home(self, ticks: Sequence[int] | np.ndarray) -> None:
        """The reading with every joint at its zero pose."""
        self.home = np.asarray(ticks, dtype=np.int64).copy()
        self.observe(ticks)

    def observe(self, ticks: Sequence[int] | np.ndarray) -> None:
        ticks = np.asarray(ticks, dtype=np.int64)
        if ticks.shape != (len(self._ids),):
            raise ValueError(f"expected {len(self._ids)} positions, got shape {ticks.shape}")
        self.low = ticks.copy() if self.low is None else np.minimum(self.low, ticks)
        self.high = ticks.copy() if self.high is None else np.maximum(self.high, ticks)
        self.samples += 1

    def result(
        self,
        arm_type: str,
        protocol: Protocol,
        models: Mapping[int, str],
        names: Sequence[str] | None = None,
        inverted_ids: Sequence[int] = (),
        resolution: int = 4096,
    ) -> ArmCalibration:
        if self.home is None or self.low is None or self.high is None:
            raise CalibrationError("no homing pose was recorded")
        names = list(names) if names is not None else default_joint_names(arm_type, self._ids)
        if len(names) != len(self._ids):
            raise CalibrationError(f"{len(names)} joint names for {len(self._ids)} motor ids")
        unknown = set(inverted_ids) - set(self._ids)
        if unknown:
            raise CalibrationError(f"inverted ids {sorted(unknown)} are not among the motor ids {self._ids}")
        still = [
            f"{name} (id {i}: {int(hi - lo)} ticks)"
            for name, i, lo, hi in zip(names, self._ids, self.low, self.high)
            if hi - lo < self.min_span_ticks
        ]
        if still:
            raise CalibrationError(
                "these joints were not moved through their range: " + ", ".join(still)
                + f"; move every joint from end to end (at least {self.min_span_ticks} ticks)"
            )
        joints = tuple(
            JointCalibration(
                name=name,
                motor_id=i,
                model=models[i],
                homing_offset=int(home),
                range_min=int(lo),
                range_max=int(hi),
                drive_direction=-1 if i in inverted_ids else 1,
                resolution=resolution,
            )
            for name, i, home, lo, hi in zip(names, self._ids, self.home, self.low, self.high)
        )
        return ArmCalibration(
            arm_type=arm_type,
            protocol=protocol,
            joints=joints,
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )


def record_calibration(
    read_positions: Callable[[], np.ndarray],
    recorder: CalibrationRecorder,
    wait_for_home: Callable[[], None],
    range_done: Callable[[], bool],
    rate_hz: float = 50.0,
    on_sample: Callable[[np.ndarray], None] | None = None,
) -> None:
    """Home, then sweep: waits for the zero pose, records it, then tracks min/max until done."""
    wait_for_home()
    recorder.set_home(read_positions())
    period = 1.0 / rate_hz
    while not range_done():
        ticks = read_positions()
        recorder.observe(ticks)
        if on_sample is not None:
            on_sample(ticks)
        time.sleep(period)
