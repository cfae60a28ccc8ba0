"""``robostack bench timer``: how precisely a node's loop keeps its period.

Runs a real node through :class:`~robostack.runtime.NodeRunner` (the same loop every launched
node uses: drift-free schedule, sleep then spin) at 100, 500 and 1000 Hz, and beside it, as the
baseline, a naive ``time.sleep(period)`` loop. Reports the wake-up error against the schedule
(p50/p99/max, µs), the error of each period's length, overruns, and the naive loop's drift.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass

import numpy as np

from robostack.clock import now_ns
from robostack.metrics import percentiles
from robostack.node import Node
from robostack.runtime import NodeRunner


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rates", default="100,500,1000", help="comma list of rates in Hz")
    p.add_argument("--duration", type=float, default=5.0, help="seconds per rate")
    p.add_argument("--spin-ms", type=float, default=1.0, help="spin window before each deadline")
    p.add_argument("--rt-priority", type=int, default=None, metavar="P",
                   help="also measure under SCHED_FIFO priority P (what a launch file's rt_priority does)")
    p.add_argument("--json", action="store_true")


@dataclass
class _TickParams:
    rate_hz: float = 500.0
    steps: int = 2500


class _TickNode(Node):
    """Records the wake time of every step and stops after ``steps``."""

    Params = _TickParams

    def setup(self) -> None:
        self.wakes = np.empty(self.params.steps, dtype=np.int64)
        self.n = 0

    def step(self) -> None:
        self.wakes[self.n] = now_ns()
        self.n += 1
        if self.n >= self.params.steps:
            self.request_stop()


def _node_loop(hz: float, duration: float, spin_s: float) -> dict:
    steps = int(hz * duration)
    node = _TickNode("timer", {"rate_hz": hz, "steps": steps})
    runner = NodeRunner(node, period_window=steps, spin_s=spin_s)
    runner.run()
    periods_us = np.diff(node.wakes[: node.n]) / 1e3
    return {
        "wake_error_us": _round(runner.period_error_us.summary()),
        "period_error_us": _round(percentiles(np.abs(periods_us - 1e6 / hz))),
        "overruns": runner.overruns,
        "steps": node.n,
    }


def _naive_loop(hz: float, duration: float) -> dict:
    period = 1.0 / hz
    steps = int(hz * duration)
    wakes = np.empty(steps, dtype=np.int64)
    t0 = now_ns()
    for i in range(steps):
        time.sleep(period)
        wakes[i] = now_ns()
    deadlines = t0 + (np.arange(1, steps + 1) * period * 1e9).astype(np.int64)
    periods_us = np.diff(wakes) / 1e3
    return {
        "wake_error_us": _round(percentiles((wakes - deadlines) / 1e3)),
        "period_error_us": _round(percentiles(np.abs(periods_us - 1e6 / hz))),
        "drift_ms_per_s": round(float((wakes[-1] - deadlines[-1]) / 1e6 / duration), 3),
    }


def _with_fifo(priority: int) -> str | None:
    from robostack.runtime import set_realtime_priority

    return set_realtime_priority(priority)


def _round(d: dict) -> dict:
    return {k: (round(v, 1) if isinstance(v, float) else v) for k, v in d.items()}


def run(args: argparse.Namespace) -> int:
    rates = [float(r) for r in args.rates.split(",")]
    report = {"benchmark": "timer", "duration_s": args.duration, "spin_ms": args.spin_ms, "rates": {}}
    for hz in rates:
        node = _node_loop(hz, args.duration, args.spin_ms / 1e3)
        naive = _naive_loop(hz, min(args.duration, 2.0))
        report["rates"][str(int(hz))] = {"node": node, "naive_sleep": naive}
        if args.rt_priority:
            problem = _with_fifo(args.rt_priority)
            if problem:
                report["rates"][str(int(hz))]["node_rt"] = {"error": problem}
            else:
                report["rates"][str(int(hz))]["node_rt"] = _node_loop(hz, args.duration, args.spin_ms / 1e3)
                os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        if not args.json:
            print(f"{hz:6.0f} Hz node: wake error p50 {node['wake_error_us']['p50']:7.1f} µs  "
                  f"p99 {node['wake_error_us']['p99']:7.1f} µs  max {node['wake_error_us']['max']:8.1f} µs  "
                  f"overruns {node['overruns']}  | naive sleep p99 {naive['wake_error_us']['p99']:9.1f} µs, "
                  f"drift {naive['drift_ms_per_s']} ms/s", flush=True)
        rt = report["rates"][str(int(hz))].get("node_rt")
        if rt and not args.json and "error" not in rt:
            print(f"{hz:6.0f} Hz node under SCHED_FIFO {args.rt_priority}: wake error p50 {rt['wake_error_us']['p50']:.1f} µs  "
                  f"p99 {rt['wake_error_us']['p99']:.1f} µs  max {rt['wake_error_us']['max']:.1f} µs", flush=True)
    if "500" in report["rates"]:
        r500 = report["rates"]["500"]
        report["targets"] = {"500hz_period_error_p99_le_0.5ms": r500["node"]["wake_error_us"]["p99"] <= 500}
        if "wake_error_us" in r500.get("node_rt", {}):
            report["targets"]["500hz_rt_period_error_p99_le_0.5ms"] = r500["node_rt"]["wake_error_us"]["p99"] <= 500
    print(json.dumps(report, indent=2) if args.json else json.dumps(report.get("targets", {})))
    return 0
