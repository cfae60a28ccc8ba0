"""Leader arm -> follower arm, two node processes on two emulated Feetech buses: a hand moves the
leader's free joints; the follower's bus must receive goals that track them, within its limits."""

from __future__ import annotations

import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "arm"))
from arm_node_harness import NodeProcess, endpoint, short_dir, ticks_to_rad, wait_for, write_calibration  # noqa: E402

from robostack.clock import now_ns  # noqa: E402
from robostack.drivers.servo.emulator import EmulatedServoBus, EmulatorConfig  # noqa: E402
from robostack.transport import Subscriber  # noqa: E402

pytestmark = pytest.mark.slow
IDS = [1, 2, 3, 4, 5, 6]
MAX_VELOCITY = 3.0
TICKS_PER_RAD = 4096 / (2 * np.pi)


def hand(t_s: float, fast: bool) -> np.ndarray:
    """Where the person holds leader joints 1 and 2 (radians) at time ``t_s``."""
    if fast:  # 1.5 Hz, 0.6 rad: up to 5.7 rad/s, faster than the follower may move
        return np.array([0.6, -0.3]) * np.sin(2 * np.pi * 1.5 * t_s)
    return np.array([0.5, -0.3]) * np.sin(2 * np.pi * 0.4 * t_s)  # up to 1.3 rad/s


def test_follower_goals_track_the_leader_moved_by_hand_within_the_velocity_limit():
    run_dir = short_dir()
    leader_bus = EmulatedServoBus(EmulatorConfig(protocol="feetech", ids=IDS))
    follower_bus = EmulatedServoBus(EmulatorConfig(protocol="feetech", ids=IDS))
    nodes = []
    moving = threading.Event()
    trace: list[tuple[int, float, float]] = []
    phase = {"fast": False, "t0": 0}

    def move_leader() -> None:
        while not moving.is_set():
            time.sleep(0.001)
        while moving.is_set():
            t = now_ns()
            q = hand((t - phase["t0"]) / 1e9, phase["fast"])
            leader_bus.move_by_hand({1: 2048 + q[0] * TICKS_PER_RAD, 2: 2048 + q[1] * TICKS_PER_RAD})
            trace.append((t, q[0], q[1]))
            time.sleep(0.002)

    mover = threading.Thread(target=move_leader, daemon=True)
    try:
        leader_port, follower_port = leader_bus.start(), follower_bus.start()
        lcal = write_calibration(run_dir / "leader.json", arm_type="so101_leader")
        fcal = write_calibration(run_dir / "follower.json")
        leader = NodeProcess("leader", "robostack.drivers.teleop.leader:LeaderArmNode",
                             {"port": leader_port, "calibration": str(lcal), "rate_hz": 100.0}, run_dir,
                             outputs={"action": endpoint(run_dir, "leader.action")}, rt_priority=10)
        nodes.append(leader)
        follower = NodeProcess(
            "follower", "robostack.drivers.arm.servo_arm:ServoArmNode",
            {"port": follower_port, "calibration": str(fcal), "rate_hz": 100.0, "max_velocity": MAX_VELOCITY,
             "max_acceleration": 60.0}, run_dir,
            inputs={"command": (endpoint(run_dir, "leader.action"), "leader/action", "latest")},
            outputs={"applied": endpoint(run_dir, "follower.applied")}, rt_priority=10)
        nodes.append(follower)
        applied = Subscriber(endpoint(run_dir, "follower.applied"), "follower/applied", mode="latest")
        wait_for(applied, 20, follower)
        assert not leader_bus.torque_enabled(1)  # the leader's joints are free
        mover.start()
        phase["t0"] = now_ns()
        moving.set()
        time.sleep(2.5)
        fast_from = now_ns()
        phase["fast"], phase["t0"] = True, fast_from
        time.sleep(1.5)
        moving.clear()
        mover.join()
        time.sleep(0.1)
        applied.close()

        log = follower_bus.goal_log(1)
        t = np.array([r.stamp_ns for r in log])
        q = ticks_to_rad([r.ticks for r in log])
        q2 = ticks_to_rad([r.ticks for r in follower_bus.goal_log(2)])[: q.size]
        tr = np.array(trace)

        # Slow phase: the follower's goal is the hand position a few ms earlier.
        slow = (t > tr[0, 0] + int(0.3e9)) & (t < fast_from)
        best = None
        for lag_ms in range(0, 80, 2):
            want = np.interp(t[slow] - lag_ms * 1_000_000, tr[:, 0], tr[:, 1])
            want2 = np.interp(t[slow] - lag_ms * 1_000_000, tr[:, 0], tr[:, 2])
            err = np.maximum(np.abs(q[slow] - want), np.abs(q2[slow] - want2))
            if best is None or np.percentile(err, 95) < best[1]:
                best = (lag_ms, float(np.percentile(err, 95)), float(err.max()))
        print(f"leader -> follower: goals track the hand with {best[0]} ms lag, error p95 {best[1]:.4f} rad, "
              f"max {best[2]:.4f} rad")
        # p95: a process the OS stalls for tens of ms (shared CI machine) lags for a moment
        assert best[1] < 0.02 and best[2] < 0.15 and best[0] <= 60

        # Fast phase: the hand moves at up to 5.7 rad/s; the follower's goals never exceed 3 rad/s
        # (velocity between consecutive goals on the bus, one tick quantization of slack).
        fast = t >= fast_from
        # speed over 5 goals: the bus's arrival stamps jitter by a few ms around the node's ticks
        tf, qf = t[fast], q[fast]
        v = np.abs(qf[5:] - qf[:-5]) / ((tf[5:] - tf[:-5]) / 1e9)
        print(f"fast hand: goal speed p99 {np.percentile(v, 99):.2f} rad/s, max {v.max():.2f} (limit {MAX_VELOCITY}), "
              f"goal range {qf.min():+.3f}..{qf.max():+.3f} rad")
        assert np.max(np.abs(np.diff(qf))) <= MAX_VELOCITY * 0.02 + 2 / TICKS_PER_RAD  # <= 2 periods' worth
        assert np.percentile(v, 99) <= MAX_VELOCITY * 1.1
        assert q[fast].max() > 0.3 and q[fast].min() < -0.3  # still following, not holding
    finally:
        moving.clear()
        for node in nodes:
            rc = node.stop()
            assert rc == 0, node.log
        leader_bus.stop()
        follower_bus.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
