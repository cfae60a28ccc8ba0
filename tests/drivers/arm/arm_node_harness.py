"""Runs one node class in its own process (``python -m robostack.runtime SPEC``), wired to
publishers and subscribers that the test owns, plus helpers to read an emulator's goal log."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from robostack.drivers.servo.calibration import ArmCalibration, JointCalibration
from robostack.node import InputWiring, OutputWiring, Wiring
from robostack.runtime import NodeSpec
from robostack.transport import Publisher, Subscriber

TICKS_PER_RAD = 4096 / (2 * np.pi)


def short_dir() -> Path:
    """A directory short enough for ipc socket paths (pytest's tmp_path can be too long)."""
    return Path(tempfile.mkdtemp(prefix="rs-arm-", dir="/tmp"))


def write_calibration(path: Path, ids=(1, 2, 3, 4, 5, 6), protocol="feetech", model="sts3215",
                      range_ticks=(1024, 3072), arm_type="so101") -> Path:
    names = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"][: len(ids)]
    if len(names) < len(ids):
        names = [f"joint{i}" for i in ids]
    joints = tuple(JointCalibration(n, i, model, 2048, range_ticks[0], range_ticks[1]) for n, i in zip(names, ids))
    return ArmCalibration(arm_type, protocol, joints).save(path)


def ticks_to_rad(ticks) -> np.ndarray:
    return (np.asarray(ticks, dtype=np.float64) - 2048) / TICKS_PER_RAD


class NodeProcess:
    """A node process; ``inputs`` maps port -> (endpoint, topic, mode), ``outputs`` port -> endpoint."""

    def __init__(self, name: str, class_path: str, params: dict, run_dir: Path,
                 inputs: dict[str, tuple[str, str, str]] | None = None, outputs: dict[str, str] | None = None,
                 rt_priority: int | None = None) -> None:
        self.stats_endpoint = endpoint(run_dir, f"{name}._stats")
        wiring = Wiring(
            inputs={k: InputWiring([ep], topic, mode=mode) for k, (ep, topic, mode) in (inputs or {}).items()},
            outputs={k: OutputWiring(ep) for k, ep in (outputs or {}).items()},
            stats_endpoint=self.stats_endpoint, stats_period_s=0.2,
        )
        self.stats_sub = Subscriber(self.stats_endpoint, f"{name}/_stats", mode="latest")
        spec = NodeSpec(name, class_path, params, wiring, rt_priority=rt_priority)
        self.log_path = run_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "robostack.runtime", spec.to_json()],
                                     stdout=self._log, stderr=subprocess.STDOUT, env=dict(os.environ))

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        rc = self.proc.wait(timeout=timeout)
        self._log.close()
        self.stats_sub.close()
        return rc

    def stats(self, timeout: float = 2.0) -> dict:
        """The node's newest stats message (``extra`` holds its own counters)."""
        return fresh(self.stats_sub, timeout, self, max_age_s=1.0).meta

    @property
    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")


def endpoint(run_dir: Path, name: str) -> str:
    return f"ipc://{run_dir}/{name}.sock"


def wait_for(sub: Subscriber, timeout: float, proc: NodeProcess | None = None):
    """The next message on ``sub``; fails with the node's log if none comes in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = sub.receive()
        if msg is not None:
            return msg
        if proc is not None and proc.proc.poll() is not None:
            raise AssertionError(f"node exited with {proc.proc.returncode}:\n{proc.log}")
        time.sleep(0.002)
    raise AssertionError("no message in time" + (f"; node log:\n{proc.log}" if proc else ""))


def connect_publisher(pub: Publisher, timeout: float = 5.0) -> None:
    assert pub.wait_for_subscribers(1, timeout), f"nobody subscribed to {pub.topic}"


def fresh(sub: Subscriber, timeout: float, proc: NodeProcess | None = None, max_age_s: float = 0.02):
    """The first message captured at most ``max_age_s`` before this call. Older ones are skipped:
    a subscriber that was not read for a while still gets samples queued before the pause, even
    in ``latest`` mode (the publisher's send queue holds them)."""
    oldest = time.monotonic_ns() - int(max_age_s * 1e9)
    deadline = time.monotonic() + timeout
    while True:
        msg = wait_for(sub, max(0.01, deadline - time.monotonic()), proc)
        if msg.stamp_ns >= oldest:
            return msg
