"""Twin throughput numbers: physics steps/s, camera frames/s, lockstep episodes/min."""

from __future__ import annotations

import time
from typing import Any


def physics_steps_per_s(task: str = "pick_place", arm: str = "panda", steps: int = 20_000) -> dict[str, float]:
    """Physics rate of a task scene with the arm holding its home pose and no rendering."""
    from robostack.sim.env import TwinConfig, TwinEnv

    env = TwinEnv(TwinConfig(task=task, arm=arm))
    env.reset(0)
    env.step(500)  # settle contacts before timing
    start = time.perf_counter()
    env.step(steps)
    batched = steps / (time.perf_counter() - start)
    start = time.perf_counter()
    for _ in range(steps // 4):
        env.step(1)
    single = (steps // 4) / (time.perf_counter() - start)
    return {"steps_per_s": batched, "steps_per_s_python_loop": single, "timestep_s": env.model.opt.timestep}


def camera_fps(height: int, width: int, camera: str = "front", frames: int = 100, task: str = "pick_place") -> float:
    """Offscreen frames/s of one camera at ``height`` x ``width`` (physics step between frames)."""
    from robostack.sim.env import TwinConfig, TwinEnv

    env = TwinEnv(TwinConfig(task=task))
    env.reset(0)
    for _ in range(5):
        env.render(camera, height, width)
    start = time.perf_counter()
    for _ in range(frames):
        env.step(1)
        env.render(camera, height, width)
    fps = frames / (time.perf_counter() - start)
    env.close()
    return fps


def episode_throughput(task: str, workers: int, episodes: int) -> dict[str, float]:
    """Expert episodes/min in lockstep mode with ``workers`` processes (start-up included)."""
    from robostack.sim.evaluation import EvalConfig, evaluate

    report = evaluate(EvalConfig(task=task, episodes=episodes, workers=workers), progress=False)
    return {
        "episodes": episodes,
        "episodes_per_min": report.summary["episodes_per_min"],
        # Without process start-up: what a long evaluation approaches.
        "episodes_per_min_steady": 60.0 * workers / report.summary["mean_episode_wall_time_s"],
        "success_rate": report.summary["success_rate"],
        "wall_time_s": report.wall_time_s,
    }


def run_sim_bench(episodes: int = 60) -> dict[str, Any]:
    """Every twin benchmark, as one JSON-ready dict."""
    import os

    return {
        "host_cpus": os.cpu_count(),
        "mujoco_gl": os.environ.get("MUJOCO_GL"),
        "physics_pick_place_panda": physics_steps_per_s(),
        "camera_fps_224x224": camera_fps(224, 224),
        "camera_fps_640x480": camera_fps(480, 640),
        "camera_fps_wrist_224x224": camera_fps(224, 224, camera="wrist"),
        "mirror": mirror_update_latency(),
        "lockstep_pick_place_1_worker": episode_throughput("pick_place", 1, episodes),
        "lockstep_pick_place_2_workers": episode_throughput("pick_place", 2, episodes),
    }


def mirror_update_latency(samples: int = 5000) -> dict[str, float]:
    """Cost of mirroring one joint-state sample (positions in, kinematics updated), in ms."""
    import numpy as np

    from robostack.sim.mirror import MirrorTwin

    mirror = MirrorTwin("panda")
    home = mirror.arm.home_array()
    times = np.empty(samples)
    for i in range(samples):
        q = home + 0.01 * np.sin(i * 0.01)
        start = time.perf_counter()
        mirror.update(q, stamp_ns=i)
        times[i] = time.perf_counter() - start
    check = []
    chunk = np.tile(home, (10, 1))
    for _ in range(50):
        start = time.perf_counter()
        mirror.check_chunk(chunk, dt_s=0.05)
        check.append(time.perf_counter() - start)
    return {
        "update_p50_ms": float(np.percentile(times, 50) * 1e3),
        "update_p99_ms": float(np.percentile(times, 99) * 1e3),
        "check_chunk_10x50ms_p50_ms": float(np.percentile(check, 50) * 1e3),
    }


# `robostack bench sim` through the core's benchmark table: add_arguments(parser) + run(args).
def add_arguments(parser: Any) -> None:
    from robostack.sim.cli import add_bench_arguments

    add_bench_arguments(parser)


def run(args: Any) -> int:
    from robostack.sim.cli import run_bench

    return run_bench(args)
