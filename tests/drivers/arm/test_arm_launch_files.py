"""The shipped launch files, run by `robostack launch`: emulated buses, arm nodes, chunk source,
leader arm and keyboard jog. Asserted on the emulated follower bus's goal log (JSONL)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from arm_node_harness import TICKS_PER_RAD, short_dir

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[3]
ROBOSTACK = [sys.executable, "-m", "robostack.cli", "launch"]


def goals(path: Path, motor_id: int) -> tuple[np.ndarray, np.ndarray]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows = [r for r in rows if r["motor_id"] == motor_id]
    return np.array([r["stamp_ns"] for r in rows]), (np.array([r["ticks"] for r in rows]) - 2048) / TICKS_PER_RAD


@pytest.fixture
def run_dir():
    d = short_dir()
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_arm_emulated_graph_follows_the_sine_chunks_without_pauses(run_dir):
    out = subprocess.run(
        [*ROBOSTACK, str(REPO / "launch/arm_emulated.yaml"), "--duration", "5", "--json",
         "--set", f"port={run_dir}/follower", "--set", f"calibration={run_dir}/follower.json",
         "--set", f"goal_log={run_dir}/goals.jsonl", "--set", "latency_ms=200"],
        capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr
    arm = json.loads(out.stdout)["nodes"]["arm"]["stats"]
    executor = arm["extra"]["executor"]
    assert executor["chunks_accepted"] > 10 and executor["pauses"] == 0 and not executor["chunks_rejected"]
    assert arm["extra"]["comm"]["read_failures"] == 0
    t, q = goals(run_dir / "goals.jsonl", 5)  # wrist_roll: amplitude 0.5 rad, period 4 s
    assert t.size > 250 and np.ptp(q) > 0.5
    assert np.max(np.abs(np.diff(q))) < 3.0 * 0.02  # never faster than the velocity limit (2 periods)
    assert not (run_dir / "follower").exists()  # the emulator removed its link on shutdown


def test_keyboard_jog_moves_the_selected_joint_by_the_step_per_key(run_dir):
    proc = subprocess.Popen(
        [*ROBOSTACK, str(REPO / "launch/teleop_emulated.yaml"), "--duration", "6", "--json",
         "--set", "operator=keyboard", "--set", f"follower_port={run_dir}/follower",
         "--set", f"follower_calibration={run_dir}/follower.json", "--set", f"goal_log={run_dir}/goals.jsonl"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    log = run_dir / "goals.jsonl"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (not log.exists() or log.stat().st_size < 20_000):
        time.sleep(0.1)  # the follower is writing goals (~100 lines)
    time.sleep(0.8)  # and the keyboard node has the arm's state
    # joint 2 up four steps of 0.05; then double the step and joint 3 down once
    proc.stdin.write(b"2" + b"\x1b[A" * 4 + b"+3\x1b[B")
    proc.stdin.flush()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    summary = json.loads(out)["nodes"]
    assert summary["keyboard"]["stats"]["extra"]["keys"] == 8
    _, q1 = goals(log, 1)
    _, q2 = goals(log, 2)
    _, q3 = goals(log, 3)
    assert abs(q1[-1]) < 1.5 / TICKS_PER_RAD  # untouched
    assert abs(q2[-1] - 0.20) < 1.5 / TICKS_PER_RAD
    assert abs(q3[-1] + 0.10) < 1.5 / TICKS_PER_RAD


def test_leader_emulated_graph_drives_the_follower_within_its_velocity_limit(run_dir):
    out = subprocess.run(
        [*ROBOSTACK, str(REPO / "launch/teleop_emulated.yaml"), "--duration", "4", "--json",
         "--set", f"follower_port={run_dir}/follower", "--set", f"follower_calibration={run_dir}/follower.json",
         "--set", f"leader_port={run_dir}/leader", "--set", f"leader_calibration={run_dir}/leader.json",
         "--set", f"goal_log={run_dir}/goals.jsonl"],
        capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr
    nodes = json.loads(out.stdout)["nodes"]
    assert nodes["leader"]["stats"]["extra"]["read_failures"] == 0
    t, q = goals(run_dir / "goals.jsonl", 1)
    # The leader's hand sweep moves up to ~9 rad/s; the follower goes up to its 3 rad/s limit.
    # Judged over 5 goals: the bus's arrival stamps jitter by a few ms around the node's ticks.
    assert np.ptp(q) > 1.0
    speed = np.abs(q[5:] - q[:-5]) / ((t[5:] - t[:-5]) / 1e9)
    print(f"follower speed p99 {np.percentile(speed, 99):.2f} rad/s, max {speed.max():.2f} (limit 3.0)")
    assert np.percentile(speed, 99) < 3.0 * 1.1
    assert np.max(np.abs(np.diff(q))) <= 3.0 * 0.02 + 1 / TICKS_PER_RAD  # a step never exceeds 2 periods' worth
