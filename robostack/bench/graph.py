"""``robostack bench graph``: how fast a 6-node graph starts, how fast it is gone after a stop,
and how fast a SIGKILLed node is back, measured on real processes."""

from __future__ import annotations

import argparse
import json
import os
import signal
import tempfile
import threading
import time
from pathlib import Path

from robostack.clock import now_ns
from robostack.graph import build
from robostack.launcher import Launcher
from robostack.metrics import percentiles

SIX_NODES = {
    "name": "bench6",
    "nodes": {
        "cam_a": {"class": "robostack.diagnostics:Pulse", "params": {"shape": [480, 640, 3], "rate_hz": 30}},
        "cam_b": {"class": "robostack.diagnostics:Pulse", "params": {"shape": [7], "dtype": "float32", "rate_hz": 200}},
        "relay_a": {"class": "robostack.diagnostics:Relay", "inputs": {"in": "cam_a/out"}},
        "relay_b": {"class": "robostack.diagnostics:Relay", "inputs": {"in": "cam_b/out"}, "backoff_s": 0.1},
        "probe_a": {"class": "robostack.diagnostics:Probe", "inputs": {"frames": "relay_a/out"}},
        "probe_b": {"class": "robostack.diagnostics:Probe", "inputs": {"frames": "relay_b/out"}},
    },
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--json", action="store_true")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


def _one_run(tmp: str, i: int) -> dict:
    graph = build(SIX_NODES, run_dir=Path(tmp) / f"run{i}", source="bench6")
    launcher = Launcher(graph, duration_s=None, live=False, log_stream=open(os.devnull, "w"))
    result: dict = {}
    thread = threading.Thread(target=lambda: result.setdefault("reason", launcher.run()))
    thread.start()
    deadline = time.monotonic() + 20
    while launcher.all_ready_ns is None and time.monotonic() < deadline:
        time.sleep(0.01)
    startup_s = (launcher.all_ready_ns - launcher.started_ns) / 1e9
    time.sleep(1.0)
    victim = launcher.nodes["relay_b"]
    old_pid = victim.proc.pid
    t_kill = now_ns()
    os.kill(old_pid, signal.SIGKILL)
    while not (victim.proc.pid != old_pid and victim.ready_ns is not None) and time.monotonic() < deadline + 10:
        time.sleep(0.005)
    restart_s = (victim.ready_ns - t_kill) / 1e9
    others_restarted = sum(n.restarts for name, n in launcher.nodes.items() if name != "relay_b")
    pids = [n.proc.pid for n in launcher.nodes.values()]
    t_stop = time.monotonic()
    launcher.request_stop()  # what Ctrl-C does
    while any(_alive(p) for p in pids) and time.monotonic() - t_stop < 10:
        time.sleep(0.002)
    gone_s = time.monotonic() - t_stop
    thread.join(10)
    return {"startup_s": startup_s, "restart_after_sigkill_s": restart_s, "stop_all_gone_s": gone_s,
            "others_restarted": others_restarted, "left_behind": sum(_alive(p) for p in pids)}


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="rs-bench-graph-") as tmp:
        runs = [_one_run(tmp, i) for i in range(args.runs)]
    report = {
        "benchmark": "graph",
        "nodes": len(SIX_NODES["nodes"]),
        "runs": runs,
        "startup_s": percentiles([r["startup_s"] for r in runs]),
        "restart_after_sigkill_s": percentiles([r["restart_after_sigkill_s"] for r in runs]),
        "stop_all_gone_s": percentiles([r["stop_all_gone_s"] for r in runs]),
    }
    report["targets"] = {
        "startup_le_2s": report["startup_s"]["max"] <= 2.0,
        "gone_within_2s_of_ctrl_c": report["stop_all_gone_s"]["max"] <= 2.0,
        "others_kept_running": all(r["others_restarted"] == 0 for r in runs),
        "none_left_behind": all(r["left_behind"] == 0 for r in runs),
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for r in runs:
            print(f"startup {r['startup_s']:.2f} s | SIGKILLed node back in {r['restart_after_sigkill_s']:.2f} s | "
                  f"all gone {r['stop_all_gone_s']:.3f} s after Ctrl-C | left behind {r['left_behind']}")
        print(json.dumps(report["targets"]))
    return 0
