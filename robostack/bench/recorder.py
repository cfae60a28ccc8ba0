"""``robostack bench recorder``: record two synthetic 640×480@30 cameras plus 7-DoF state and
action at 30 Hz through real node processes, and report dropped/duplicated frames, whether the
encoder kept up (queue depth), CPU use per process and the encoder settings."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path

from robostack.graph import build
from robostack.launcher import Launcher

CLK_TCK = os.sysconf("SC_CLK_TCK")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--duration", type=float, default=300.0, help="seconds of recording (one episode)")
    p.add_argument("--vcodec", default="libx264", choices=["libx264", "mpeg4"])
    p.add_argument("--preset", default="ultrafast")
    p.add_argument("--crf", type=int, default=23)
    p.add_argument("--noise", type=int, default=8, help="camera-like texture amplitude of the synthetic frames")
    p.add_argument("--out", default=None, help="keep the dataset here (default: a temporary directory)")
    p.add_argument("--json", action="store_true")


def _cpu_s(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def _graph(out: Path, args: argparse.Namespace) -> dict:
    cam = {"class": "robostack.drivers.recorder.sources:PatternCamera"}
    return {
        "name": "benchrec",
        "nodes": {
            "cam_front": {**cam, "params": {"name": "front", "noise": args.noise}},
            "cam_wrist": {**cam, "params": {"name": "wrist", "noise": args.noise}},
            "arm": {"class": "robostack.drivers.recorder.sources:JointWave", "params": {"dof": 7, "rate_hz": 30}},
            "rec": {
                "class": "robostack.drivers.recorder.node:Recorder",
                "params": {
                    "out": str(out), "cameras": ["front", "wrist"], "episodes": 1, "episode_time_s": args.duration,
                    "vcodec": args.vcodec, "preset": args.preset, "crf": args.crf, "keyboard": False,
                },
                "inputs": {"camera0": "cam_front/frames", "camera1": "cam_wrist/frames", "state": "arm/state", "action": "arm/action"},
                "shutdown_on_exit": True,
                "restart": "never",
            },
        },
    }


def run(args: argparse.Namespace) -> int:
    from robostack.dataset.reader import DatasetReader
    from robostack.dataset.validate import validate

    with tempfile.TemporaryDirectory(prefix="rs-bench-rec-") as tmp:
        out = Path(args.out) if args.out else Path(tmp) / "ds"
        graph = build(_graph(out, args), run_dir=Path(tmp) / "run", source="benchrec")
        launcher = Launcher(graph, duration_s=args.duration + 60, live=False, log_stream=open(os.devnull, "w"))
        result: dict = {}
        thread = threading.Thread(target=lambda: result.setdefault("reason", launcher.run()))
        t_start = time.monotonic()
        thread.start()
        cpu: dict[str, float] = {}
        first: dict[str, tuple[float, float]] = {}
        max_queue = 0
        while thread.is_alive():
            for name, n in launcher.nodes.items():
                pid = n.proc.pid if n.proc else None
                c = _cpu_s(pid) if pid else None
                if c is not None:
                    first.setdefault(name, (c, time.monotonic()))
                    cpu[name] = c
                    cpu[name + "@t"] = time.monotonic()
                stats = getattr(n, "stats", None) or {}
                enc = (stats.get("extra") or {}).get("encoder") or {}
                max_queue = max([max_queue, *[e.get("max_queue", 0) for e in enc.values()]])
            time.sleep(0.5)
        thread.join()
        summary = launcher.summary(result.get("reason"))
        rec = summary["nodes"]["rec"]
        rec_stats = rec.get("stats") or {}
        cpu_pct = {
            name: round(100 * (cpu[name] - c0) / max(1e-9, cpu[name + "@t"] - t0), 1)
            for name, (c0, t0) in first.items() if name in cpu
        }
        reader = DatasetReader(out)
        ep = reader.load_episode(0) if reader.num_episodes else None
        frames = {}
        if ep is not None:
            for key in reader.video_keys + ["observation.state", "action"]:
                frames[key] = {
                    "rows": int(ep.length),
                    "duplicated_rows": int(ep.columns[f"dup.{key}"].sum()),
                    "dropped_samples": int(ep.columns[f"dropped.{key}"].sum()),
                }
        inputs = {k: {"dropped": v.get("dropped"), "overflow": v.get("overflow"), "gaps": v.get("gaps")} for k, v in (rec_stats.get("inputs") or {}).items()}
        report = {
            "benchmark": "recorder",
            "duration_s": args.duration,
            "wall_s": round(time.monotonic() - t_start, 1),
            "cpus": os.cpu_count(),
            "encoder": {"codec": args.vcodec, "preset": args.preset, "crf": args.crf, "pix_fmt": "yuv420p",
                        "keyframe_interval_s": 0.5, "tune": "zerolatency" if args.vcodec == "libx264" else None, "threads": 1},
            "episodes": reader.num_episodes,
            "frames": frames,
            "transport_drops": inputs,
            "encoder_max_queue_frames": max_queue,
            "cpu_percent_of_one_core": cpu_pct,
            "recorder_exit_codes": rec.get("exit_codes"),
            "valid": validate(out).ok,
            "dataset_mb": round(sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 1e6, 1),
        }
    print(json.dumps(report, indent=None if args.json else 2))
    return 0 if report["valid"] and report["episodes"] == 1 else 1
