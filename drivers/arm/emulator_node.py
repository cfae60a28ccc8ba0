"""An emulated servo bus as a graph node, so a launch file can run the arm stack without hardware.

The node serves :class:`~robostack.drivers.servo.emulator.EmulatedServoBus` on a pseudo-terminal
and makes ``link`` (a fixed path, e.g. ``/tmp/robostack-emu-follower``) a symlink to it; the arm
node's ``port`` param names the same path and waits for it to appear. With ``write_calibration``
the node first writes the nominal calibration of the emulated arm (zero at tick 2048, the range
``range_ticks``), as `robostack arm calibrate` would have recorded it, so the arm node can load
it. Every goal the bus receives can be logged as JSONL (``goal_log``), which is what the
end-to-end tests assert on.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from robostack.node import Node


@dataclass
class ServoEmulatorParams:
    link: str = ""  # symlink to the pty, created at start, removed on close
    protocol: Literal["feetech", "dynamixel"] = "feetech"
    ids: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5, 6])
    baudrate: int = 1_000_000
    model: str | None = None
    hand_sweep: bool = False  # free (torque-off) joints sweep their range, like a person moving them
    corrupt_rate: float = 0.0
    timeout_rate: float = 0.0
    goal_log: str | None = None  # JSONL of every goal position received
    write_calibration: str | None = None  # write the emulated arm's nominal calibration here
    arm_type: str = "so101"
    joint_names: list[str] = field(default_factory=list)  # default: the arm type's preset names
    range_ticks: list[int] = field(default_factory=lambda: [1024, 3072])  # calibrated range (min, max)
    seed: int | None = None
    rate_hz: float = 5.0  # how often the node reports the bus's counters

    def __post_init__(self) -> None:
        if not self.link:
            raise ValueError("param 'link': a path for the symlink to the emulator's pty is required, "
                             "e.g. /tmp/robostack-emu-follower")
        if len(self.range_ticks) != 2 or self.range_ticks[0] >= self.range_ticks[1]:
            raise ValueError(f"param 'range_ticks' must be [min, max] with min < max, got {self.range_ticks}")


class ServoEmulatorNode(Node):
    """Runs an emulated Feetech/Dynamixel bus behind the symlink ``link`` (no outputs; its
    counters are in the node stats)."""

    Params = ServoEmulatorParams

    def setup(self) -> None:
        from robostack.drivers.servo.emulator import EmulatedServoBus, EmulatorConfig

        p = self.params
        if p.write_calibration:
            self._write_calibration(Path(p.write_calibration))
        self.emulator = EmulatedServoBus(EmulatorConfig(
            protocol=p.protocol, ids=p.ids, baudrate=p.baudrate, model=p.model, hand_sweep=p.hand_sweep,
            corrupt_rate=p.corrupt_rate, timeout_rate=p.timeout_rate, seed=p.seed,
            log_path=Path(p.goal_log) if p.goal_log else None))
        pty = self.emulator.start()
        link = Path(p.link)
        if link.is_symlink() or link.exists():
            if not link.is_symlink():
                raise FileExistsError(f"param 'link': {link} exists and is not a symlink; refusing to replace it")
            link.unlink()
        # Create under a temporary name and rename: a waiting driver never sees a half-made link.
        tmp = link.with_name(f".{link.name}.{os.getpid()}")
        tmp.symlink_to(pty)
        os.replace(tmp, link)
        self._link_made = True
        self.log.info("emulated %s bus, ids %s, at %s -> %s", p.protocol, list(p.ids), link, pty)

    def _write_calibration(self, path: Path) -> None:
        from robostack.drivers.servo.calibration import ArmCalibration, JointCalibration, default_joint_names

        p = self.params
        model = p.model or ("sts3215" if p.protocol == "feetech" else "xl430-w250")
        names = p.joint_names or default_joint_names(p.arm_type, p.ids)
        if len(names) != len(p.ids):
            raise ValueError(f"param 'joint_names' has {len(names)} names for {len(p.ids)} ids")
        joints = tuple(JointCalibration(name, motor_id, model, homing_offset=2048, range_min=p.range_ticks[0],
                                        range_max=p.range_ticks[1]) for name, motor_id in zip(names, p.ids))
        path.parent.mkdir(parents=True, exist_ok=True)
        ArmCalibration(p.arm_type, p.protocol, joints).save(path)

    def step(self) -> None:
        pass  # the emulator serves the pty from its own thread

    def close(self) -> None:
        if getattr(self, "_link_made", False):
            link = Path(self.params.link)
            try:
                if link.is_symlink():
                    link.unlink()
            except OSError:
                pass
        emulator = getattr(self, "emulator", None)
        if emulator is not None:
            emulator.stop()

    def extra_stats(self) -> dict[str, Any]:
        emulator = getattr(self, "emulator", None)
        return asdict(emulator.stats) if emulator is not None else {}
