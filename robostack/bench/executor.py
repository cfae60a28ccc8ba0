"""``robostack bench executor``: the action executor and safety layer at the servo rate.

Three measurements:

1. **Real time**: a 500 Hz loop (``robostack.clock.Rate``: sleep, then spin to the deadline) runs
   the asynchronous executor and the safety layer every tick, while a policy thread answers
   requests with chunks after an injected latency (100, 200, 300 ms; the run is split evenly
   between them). Reports the wake-up error against the schedule (p50/p99/max), the error of each
   period's length, the tick's compute time, overruns, and per latency the pauses (ticks where no
   action covered now) and safety interventions.
2. **Chunk boundaries**: the same recorded trajectory and chunk sequence replayed on a synthetic
   clock through asynchronous execution with blending and through naive switching (no blend);
   reports the command jump each switch adds (mean, p50, max) and the naive/async ratio.
3. **Synchronous baseline**: receding-horizon execution on a synthetic clock under the same
   latencies, for the pause counts async mode removes.

The "recorded" trajectory is a demonstration-like motion (minimum-jerk moves between random via
points, 6 joints, 50 Hz) unless ``--trajectory FILE.npy`` gives a real recording (T, D). The
simulated policy returns the recording from the observation time on, offset by a random bias per
chunk (a multimodal policy lands in a slightly different mode each time), which is what makes naive
switching jump.
"""

from __future__ import annotations

import argparse
import gc
import json
import threading
import time


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--duration", type=float, default=60.0,
                   help="seconds of real-time loop in all (split across the latencies; default 60)")
    p.add_argument("--replay-duration", type=float, default=60.0,
                   help="seconds of synthetic-clock replay per latency for the boundary comparison (default 60)")
    p.add_argument("--rate", type=float, default=500.0, help="servo rate in Hz (default 500)")
    p.add_argument("--latencies", default="100,200,300", help="injected inference latencies, ms (comma list)")
    p.add_argument("--horizon", type=int, default=50, help="actions per chunk (default 50)")
    p.add_argument("--policy-dt-ms", type=float, default=20.0, help="step between a chunk's actions (default 20)")
    p.add_argument("--blend-ms", type=float, default=200.0, help="async blend window (default 200)")
    p.add_argument("--bias", type=float, default=0.05, help="per-chunk mode bias, std in joint units (default 0.05)")
    p.add_argument("--interpolation", default="cubic", choices=["linear", "cubic", "minimum_jerk"])
    p.add_argument("--trajectory", default=None, metavar="FILE.npy", help="recorded joint trajectory (T, D)")
    p.add_argument("--trajectory-fps", type=float, default=50.0, help="sample rate of --trajectory (default 50)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rt-priority", type=int, default=0, metavar="N",
                   help="run the servo loop under SCHED_FIFO at priority N (1-99; needs CAP_SYS_NICE), "
                        "as a real servo loop would; 0 (default): normal scheduling")
    p.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    p.add_argument("--json", action="store_true", help="print the full report as JSON")


class _Recording:
    """A joint trajectory sampled at ``fps``, looped, read at any time by linear interpolation."""

    def __init__(self, samples, fps: float) -> None:
        import numpy as np

        self.samples = np.asarray(samples, dtype=np.float64)
        self.fps = fps
        self._t = np.arange(len(self.samples)) / fps
        self.period_s = len(self.samples) / fps

    def at(self, t_s):
        import numpy as np

        t = np.mod(np.asarray(t_s, dtype=np.float64), self.period_s - 1.0 / self.fps)
        return np.stack([np.interp(t, self._t, self.samples[:, j]) for j in range(self.samples.shape[1])], axis=-1)


def _demonstration(seed: int, dims: int = 6, seconds: float = 60.0, fps: float = 50.0):
    """Minimum-jerk moves between random via points, 1.2–2.5 s each, like a teleoperated demo
    (peak joint speeds up to ~2.5 rad/s)."""
    import numpy as np

    from robostack.executor import minimum_jerk_ramp

    rng = np.random.default_rng(seed)
    out = []
    pose = np.zeros(dims)
    while len(out) < seconds * fps:
        goal = rng.uniform(-0.8, 0.8, dims)
        steps = int(rng.uniform(1.2, 2.5) * fps)
        for k in range(steps):
            out.append(pose + (goal - pose) * minimum_jerk_ramp((k + 1) / steps))
        pose = goal
    return np.asarray(out[: int(seconds * fps)])


class _SimulatedPolicy:
    """Chunks from the recording starting at the observation stamp, plus a per-chunk bias."""

    def __init__(self, recording: _Recording, horizon: int, dt_ns: int, bias: float, seed: int) -> None:
        import numpy as np

        self.recording = recording
        self.horizon = horizon
        self.dt_ns = dt_ns
        self.bias = bias
        self.rng = np.random.default_rng(seed)
        self.t0_ns: int = 0

    def act(self, obs_ns: int):
        import numpy as np

        from robostack.chunks import ActionChunk

        times = obs_ns + np.arange(self.horizon, dtype=np.int64) * self.dt_ns
        actions = self.recording.at((times - self.t0_ns) / 1e9)
        actions = actions + self.rng.normal(0.0, self.bias, size=actions.shape[1])
        return ActionChunk(actions=actions, start_ns=obs_ns, dt_ns=self.dt_ns, obs_stamp_ns=obs_ns)


class _PolicyThread(threading.Thread):
    """Answers each request after ``latency_ns`` (a sleeping thread, as a remote server would)."""

    def __init__(self, policy: _SimulatedPolicy, latency_ns: int) -> None:
        super().__init__(daemon=True, name="simulated-policy")
        self.policy = policy
        self.latency_ns = latency_ns
        self._requests: list[int] = []
        self._replies: list = []
        self._cv = threading.Condition()
        self._stopping = False

    def request(self, obs_ns: int) -> None:
        with self._cv:
            self._requests.append(obs_ns)
            self._cv.notify()

    def take_replies(self) -> list:
        if not self._replies:  # cheap check without the lock on the servo thread
            return []
        with self._cv:
            replies, self._replies = self._replies, []
        return replies

    def stop(self) -> None:
        with self._cv:
            self._stopping = True
            self._cv.notify()

    def run(self) -> None:
        from robostack.clock import now_ns

        while True:
            with self._cv:
                while not self._requests and not self._stopping:
                    self._cv.wait()
                if self._stopping:
                    return
                obs_ns = self._requests.pop(0)
            chunk = self.policy.act(obs_ns)
            remaining = obs_ns + self.latency_ns - now_ns()
            if remaining > 0:
                time.sleep(remaining / 1e9)
            with self._cv:
                self._replies.append(chunk)


def _set_scheduler(priority: int) -> str:
    """Put this thread under SCHED_FIFO; returns what the loop actually runs under."""
    import os

    if priority <= 0:
        return "SCHED_OTHER"
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (AttributeError, OSError) as exc:  # not Linux, or no CAP_SYS_NICE
        return f"SCHED_OTHER (SCHED_FIFO refused: {exc})"
    return f"SCHED_FIFO {priority}"


def _restore_scheduler() -> None:
    import os

    try:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    except (AttributeError, OSError):
        pass


def _safety_config(dims: int, rate_hz: float):
    from robostack.safety import SafetyConfig

    return SafetyConfig(position_lower=[-1.5] * dims, position_upper=[1.5] * dims, max_velocity=4.0,
                        max_acceleration=80.0, servo_period_ns=int(round(1e9 / rate_hz)))


def _executor_config(args: argparse.Namespace, mode: str, blend_ms: float):
    from robostack.executor import ExecutorConfig

    return ExecutorConfig(mode=mode, interpolation=args.interpolation, blend_ns=int(blend_ms * 1e6))


def _real_time_run(args, recording, latency_ms: float, seconds: float, seed: int) -> dict:
    import numpy as np

    from robostack.clock import Rate, now_ns
    from robostack.executor import ActionExecutor
    from robostack.safety import SafetyLayer

    dims = recording.samples.shape[1]
    dt_ns = int(args.policy_dt_ms * 1e6)
    policy = _SimulatedPolicy(recording, args.horizon, dt_ns, args.bias, seed)
    worker = _PolicyThread(policy, int(latency_ms * 1e6))
    executor = ActionExecutor(_executor_config(args, "async", args.blend_ms))
    safety = SafetyLayer(_safety_config(dims, args.rate))
    steps = int(seconds * args.rate)
    lateness = np.empty(steps, dtype=np.int64)
    wakes = np.empty(steps, dtype=np.int64)
    work = np.empty(steps, dtype=np.int64)
    measured = recording.at(0.0)
    worker.start()
    gc.collect()
    gc.disable()  # a collection pass can take milliseconds; the servo loop allocates little
    try:
        rate = Rate(args.rate)
        policy.t0_ns = rate.next_deadline_ns
        for i in range(steps):
            lateness[i] = rate.sleep()
            t = now_ns()
            wakes[i] = t
            for chunk in worker.take_replies():
                executor.submit(chunk, t)
            if executor.wants_chunk(t):
                executor.note_request(t)
                worker.request(t)
            out = safety.step(t, executor.command(t), measured)
            if out.positions is not None:
                measured = out.positions  # an ideal position-controlled arm
            work[i] = now_ns() - t
    finally:
        gc.enable()
        worker.stop()
        worker.join(timeout=2.0)
    period_ns = 1e9 / args.rate
    stats = executor.stats.summary()
    return {
        "latency_ms": latency_ms,
        "seconds": seconds,
        "ticks": steps,
        "overruns": rate.stats.overruns,
        "lateness_ns": lateness,
        "interval_error_ns": np.abs(np.diff(wakes) - period_ns),
        "work_ns": work,
        "pauses": stats["pauses"],
        "gap_ticks": stats["gap_ticks"],
        "chunks_accepted": stats["chunks_accepted"],
        "chunks_rejected": stats["chunks_rejected"],
        "chunk_age_ms": stats["chunk_age_ms"],
        "boundary_jump": stats["boundary_jump"],
        "safety_reasons": dict(safety.stats),
        "safety_state": safety.state.value,
    }


def _replay(args, recording, mode: str, blend_ms: float, latency_ms: float, seconds: float, seed: int) -> dict:
    """The real-time scenario on a synthetic clock: deterministic, same chunk sequence per seed."""
    from robostack.executor import ActionExecutor
    from robostack.safety import SafetyLayer

    dt_ns = int(args.policy_dt_ms * 1e6)
    tick_ns = int(round(1e9 / args.rate))
    safety = SafetyLayer(_safety_config(recording.samples.shape[1], args.rate))
    measured = recording.at(0.0)
    latency_ns = int(latency_ms * 1e6)
    policy = _SimulatedPolicy(recording, args.horizon, dt_ns, args.bias, seed)
    executor = ActionExecutor(_executor_config(args, mode, blend_ms))
    in_flight: list[tuple[int, object]] = []
    for k in range(int(seconds * args.rate)):
        now = k * tick_ns
        while in_flight and in_flight[0][0] <= now:
            executor.submit(in_flight.pop(0)[1], now)
        if executor.wants_chunk(now):
            executor.note_request(now)
            in_flight.append((now + latency_ns, policy.act(now)))
        out = safety.step(now, executor.command(now), measured)
        if out.positions is not None:
            measured = out.positions
    return executor.stats.summary() | {"jumps": list(executor.stats.boundary_jumps),
                                       "safety_reasons": dict(safety.stats)}


def _summary_ms(values_ns) -> dict:
    from robostack.metrics import percentiles

    return {k: (round(v / 1e6, 4) if k != "n" else v) for k, v in percentiles(values_ns).items()}


def run(args: argparse.Namespace) -> int:
    import os

    import numpy as np

    if args.duration <= 0 or args.replay_duration <= 0:
        raise SystemExit(f"--duration and --replay-duration must be > 0, got {args.duration}, {args.replay_duration}")
    latencies = [float(x) for x in args.latencies.split(",") if x.strip()]
    if not latencies or any(x < 0 for x in latencies):
        raise SystemExit(f"--latencies must be a comma list of non-negative ms, got {args.latencies!r}")
    if args.trajectory:
        samples = np.load(args.trajectory)
        if samples.ndim != 2 or samples.shape[0] < 2:
            raise SystemExit(f"--trajectory {args.trajectory}: expected an array (T, D), got shape {samples.shape}")
        recording = _Recording(samples, args.trajectory_fps)
        source = args.trajectory
    else:
        recording = _Recording(_demonstration(args.seed), 50.0)
        source = "synthetic demonstration (minimum-jerk moves, 6 joints, 50 Hz)"

    # 1. Real time.
    per_run = args.duration / len(latencies)
    runs = []
    scheduler = _set_scheduler(args.rt_priority)
    try:
        for i, latency in enumerate(latencies):
            if not args.json:
                print(f"real-time {args.rate:.0f} Hz, {per_run:.1f} s with {latency:.0f} ms inference latency "
                      f"({scheduler}) ...", flush=True)
            runs.append(_real_time_run(args, recording, latency, per_run, args.seed + i))
    finally:
        if args.rt_priority > 0:
            _restore_scheduler()
    lateness = np.concatenate([r.pop("lateness_ns") for r in runs])
    interval = np.concatenate([r.pop("interval_error_ns") for r in runs])
    work = np.concatenate([r.pop("work_ns") for r in runs])

    # 2. Chunk boundaries, async blend vs naive switching, same chunks.
    replay_s = args.replay_duration
    boundaries = {}
    for latency in latencies:
        blended = _replay(args, recording, "async", args.blend_ms, latency, replay_s, args.seed)
        naive = _replay(args, recording, "async", 0.0, latency, replay_s, args.seed)
        a, n = np.asarray(blended["jumps"]), np.asarray(naive["jumps"])
        boundaries[str(int(latency))] = {
            "switches": int(min(a.size, n.size)),
            "async_mean": float(a.mean()), "async_max": float(a.max()),
            "naive_mean": float(n.mean()), "naive_max": float(n.max()),
            "ratio_mean": float(n.mean() / a.mean()), "ratio_max": float(n.max() / a.max()),
            "async_pauses": blended["pauses"], "naive_pauses": naive["pauses"],
            # Ticks where the safety layer had to clamp the stream (start-up ramp included).
            "async_safety_reasons": blended["safety_reasons"], "naive_safety_reasons": naive["safety_reasons"],
        }

    # 3. Synchronous receding horizon under the same latencies.
    synchronous = {}
    for latency in latencies:
        rh = _replay(args, recording, "receding_horizon", 0.0, latency, replay_s, args.seed)
        synchronous[str(int(latency))] = {"pauses": rh["pauses"], "gap_ticks": rh["gap_ticks"],
                                          "paused_fraction": round(rh["gap_ticks"] / rh["ticks"], 3)}

    report = {
        "benchmark": "executor",
        "rate_hz": args.rate,
        "duration_s": args.duration,
        "scheduler": scheduler,
        "cpus": os.cpu_count(),
        "load_avg_1min_at_end": round(os.getloadavg()[0], 2),
        "trajectory": source,
        "chunk": {"horizon": args.horizon, "dt_ms": args.policy_dt_ms, "bias": args.bias,
                  "interpolation": args.interpolation, "blend_ms": args.blend_ms},
        "period_error_ms": _summary_ms(lateness),
        "interval_error_ms": _summary_ms(interval),
        "tick_work_ms": _summary_ms(work),
        "overruns": int(sum(r["overruns"] for r in runs)),
        "latency_runs": runs,
        "boundary_discontinuity": {"replay_s": replay_s, "by_latency_ms": boundaries},
        "synchronous_receding_horizon": synchronous,
    }
    targets = {
        "period_error_p99_le_0.5ms": report["period_error_ms"]["p99"] <= 0.5,
        "async_never_pauses": all(r["pauses"] == 0 for r in runs)
        and all(b["async_pauses"] == 0 for b in boundaries.values()),
        "async_smoother_than_naive": all(b["ratio_mean"] > 1.0 for b in boundaries.values()),
    }
    report["targets"] = targets
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        pe, ie, wk = report["period_error_ms"], report["interval_error_ms"], report["tick_work_ms"]
        print(f"period error  p50 {pe['p50']:.3f}  p99 {pe['p99']:.3f}  max {pe['max']:.3f} ms   "
              f"interval error p99 {ie['p99']:.3f} ms   tick work p99 {wk['p99']:.3f} ms   overruns {report['overruns']}")
        for r in runs:
            print(f"latency {r['latency_ms']:5.0f} ms: pauses {r['pauses']}  gap ticks {r['gap_ticks']}  "
                  f"chunks {r['chunks_accepted']}  safety {r['safety_reasons'] or '{}'}")
        for lat, b in boundaries.items():
            print(f"boundary jump @ {lat} ms: async mean {b['async_mean']:.4f}  naive mean {b['naive_mean']:.4f}"
                  f"  ratio {b['ratio_mean']:.1f} (max ratio {b['ratio_max']:.1f})")
        for lat, s in synchronous.items():
            print(f"synchronous receding horizon @ {lat} ms: pauses {s['pauses']}  "
                  f"paused {100 * s['paused_fraction']:.0f}% of ticks")
        print(json.dumps(targets))
    return 1 if args.check and not all(targets.values()) else 0
