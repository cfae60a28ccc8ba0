"""``robostack bench latency``: the injected-latency experiment. For each inference latency L
(in sim time) and each execution mode (naive synchronous, asynchronous, asynchronous with the
frozen prefix), the same seeded held-out episodes; success rate with a 95% Wilson interval.

Only the standard library at import time (the CLI imports every benchmark module to build its
parser); the twin and the policy are imported when the benchmark runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from robostack.params import comma_list

DEFAULT_LATENCIES_MS = (0.0, 100.0, 200.0, 300.0)
DEFAULT_EXECUTIONS = ("sync", "async", "async_prefix")
HELD_OUT_SEED_START = 10_000  # demos are recorded from seed 0 up; reported numbers use seeds beyond


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--policy", default="expert", help="'expert', a policy directory, or module:factory")
    p.add_argument("--task", default="pick_place")
    p.add_argument("--episodes", type=int, default=20, help="episodes per (latency, execution) cell, the same seeds in every cell")
    p.add_argument("--latencies", default=",".join(f"{v:g}" for v in DEFAULT_LATENCIES_MS), metavar="MS,...",
                   help="injected inference latencies in ms (default 0,100,200,300)")
    p.add_argument("--executions", default=",".join(DEFAULT_EXECUTIONS), metavar="MODE,...",
                   help="execution modes (default sync,async,async_prefix)")
    p.add_argument("--execute-steps", type=int, default=8, metavar="K",
                   help="actions per chunk before asking again: sync executes K then waits; async asks after K at the latest")
    p.add_argument("--seed-start", type=int, default=HELD_OUT_SEED_START, help="first seed (default: the held-out 10000)")
    p.add_argument("--workers", type=int, default=1, help="parallel worker processes per cell")
    p.add_argument("--arm", default="panda")
    p.add_argument("--control-hz", type=float, default=20.0)
    p.add_argument("--out", metavar="FILE", default=None, help="also write the JSON result to FILE")
    p.add_argument("--json", action="store_true", help="print JSON only")


def _parse_list(text: str, flag: str) -> list[str]:
    items = list(comma_list(text))
    if not items:
        raise ValueError(f"{flag} needs at least one value")
    return items


def run_latency_bench(
    policy: str,
    task: str,
    episodes: int,
    latencies_ms: list[float],
    executions: list[str],
    execute_steps: int | None = 8,
    seed_start: int = HELD_OUT_SEED_START,
    workers: int = 1,
    arm: str = "panda",
    control_hz: float = 20.0,
    progress: bool = False,
) -> dict[str, Any]:
    """Evaluate every (latency, execution) cell on seeds ``seed_start …`` and summarise."""
    import time

    from robostack.sim.evaluation import EvalConfig, evaluate

    start = time.perf_counter()
    cells = []
    for latency in latencies_ms:
        for execution in executions:
            config = EvalConfig(task=task, policy=policy, episodes=episodes, workers=workers, arm=arm, seed_start=seed_start,
                                control_hz=control_hz, execute_steps=execute_steps, latency_ms=latency, execution=execution)
            if progress:
                print(f"latency {latency:g} ms, {execution} ...", file=sys.stderr, flush=True)
            report = evaluate(config, progress=False)
            s = report.summary

            def mean_extra(key: str) -> float | None:
                values = [r.extra[key] for r in report.results if key in r.extra]
                return round(sum(values) / len(values), 4) if values else None

            cells.append({
                "latency_ms": latency,
                "execution": execution,
                "episodes": s["episodes"],
                "successes": s["successes"],
                "success_rate": s["success_rate"],
                "wilson95": [round(v, 4) for v in s["wilson95"]],
                "mean_success_sim_time_s": None if s["mean_success_sim_time_s"] is None else round(s["mean_success_sim_time_s"], 3),
                "mean_pauses": mean_extra("pauses"),
                "mean_switch_jump": mean_extra("mean_switch_jump"),
                "mean_max_switch_jump": mean_extra("max_switch_jump"),
                "prefix_conditioned": mean_extra("prefix_conditioned"),
                "mean_policy_calls": round(sum(r.policy_calls for r in report.results) / s["episodes"], 2),
                "mean_policy_compute_ms": round(s["mean_policy_latency_ms"], 2),
                "errors": s["errors"],
                "wall_time_s": round(report.wall_time_s, 2),
            })
    zero = {c["execution"]: c["success_rate"] for c in cells if c["latency_ms"] == 0}
    for c in cells:
        base = zero.get(c["execution"])
        c["points_vs_zero_latency"] = None if base is None else round(100 * (c["success_rate"] - base), 1)
    return {
        "policy": policy,
        "task": task,
        "episodes_per_cell": episodes,
        "seeds": [seed_start, seed_start + episodes - 1],
        "execute_steps": execute_steps,
        "latency": "injected in sim time: a request at t with the observation of t delivers its chunk at t + L (lockstep)",
        "cells": cells,
        "wall_time_s": round(time.perf_counter() - start, 1),
    }


def format_table(result: dict[str, Any]) -> str:
    """One row per latency, one column per execution: success and its 95% Wilson interval."""
    executions = list(dict.fromkeys(c["execution"] for c in result["cells"]))
    lines = [
        f"{result['task']} · policy {result['policy']} · {result['episodes_per_cell']} episodes per cell "
        f"(seeds {result['seeds'][0]}–{result['seeds'][1]}) · execute_steps {result['execute_steps']}",
        "latency " + "".join(f"{e:>36}" for e in executions),
    ]
    for latency in dict.fromkeys(c["latency_ms"] for c in result["cells"]):
        row = f"{latency:5g} ms"
        for e in executions:
            c = next(c for c in result["cells"] if c["latency_ms"] == latency and c["execution"] == e)
            low, high = c["wilson95"]
            delta, took = c["points_vs_zero_latency"], c["mean_success_sim_time_s"]
            row += f"{c['success_rate']:>10.2f} [{low:.2f}, {high:.2f}]"
            row += f" {delta:+4.0f}pt" if delta is not None else " " * 7
            row += f" {took:5.2f}s" if took is not None else " " * 7
        lines.append(row)
    lines.append("pt: success change in points vs the same execution at 0 ms; s: mean sim time of the successes")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        try:
            latencies = [float(v) for v in _parse_list(args.latencies, "--latencies")]
        except ValueError:
            raise ValueError(f"--latencies must be comma-separated numbers (ms), got {args.latencies!r}") from None
        executions = _parse_list(args.executions, "--executions")
        if args.episodes < 1:
            raise ValueError(f"--episodes must be >= 1, got {args.episodes}")
        result = run_latency_bench(args.policy, args.task, args.episodes, latencies, executions, args.execute_steps,
                                   args.seed_start, args.workers, args.arm, args.control_hz, progress=not args.json)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    text = json.dumps(result, indent=2)
    if args.out:
        from pathlib import Path

        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    print(text if args.json else format_table(result))
    return 0
