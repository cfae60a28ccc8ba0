"""One closed-loop episode: a policy's action chunks executed on a twin environment."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol
from collections.abc import Callable

import numpy as np

from robostack.chunks import ActionChunk, Observation, Policy


class EpisodeEnv(Protocol):
    """What the episode loop needs from an engine (MuJoCo :class:`TwinEnv`, PyBullet env)."""

    @property
    def time_ns(self) -> int: ...
    @property
    def time_limit_s(self) -> float: ...
    @property
    def control_dt(self) -> float: ...
    @property
    def instruction(self) -> str: ...
    def reset(self, seed: int) -> Observation: ...
    def observation(self) -> Observation: ...
    def set_joint_targets(self, targets: np.ndarray) -> None: ...
    def step_control(self) -> None: ...
    def is_success(self) -> bool: ...


@dataclass
class EpisodeResult:
    seed: int
    success: bool
    sim_time_s: float
    """Sim time until success (held for the hold time) or the time limit."""
    wall_time_s: float
    policy_calls: int
    instruction: str
    mean_policy_latency_ms: float
    video: str | None = None
    error: str | None = None
    extra: dict[str, float] = field(default_factory=dict)


def action_at(chunk: ActionChunk, t_ns: int) -> np.ndarray:
    """The chunk's action in force at ``t_ns`` (zero-order hold, clamped to the chunk)."""
    index = (t_ns - chunk.start_ns) // chunk.dt_ns
    return chunk.actions[int(np.clip(index, 0, chunk.horizon - 1))]


def run_episode(
    env: EpisodeEnv,
    policy: Policy,
    seed: int,
    success_hold_s: float = 0.2,
    execute_steps: int | None = None,
    on_control_step: Callable[[EpisodeEnv], None] | None = None,
) -> EpisodeResult:
    """Run ``policy`` on ``env`` from ``seed`` until success holds ``success_hold_s`` or the
    task's time limit. Each chunk is executed for ``execute_steps`` control periods (default: its
    whole horizon) before the policy is asked again."""
    wall_start = time.perf_counter()
    env.reset(seed)
    policy.reset(seed)
    limit_ns = int(env.time_limit_s * 1e9)
    observe = getattr(policy, "observe", None)
    control_ns = int(round(env.control_dt * 1e9))
    hold_needed = max(1, int(round(success_hold_s / env.control_dt)))
    held = 0
    calls = 0
    latency = 0.0
    success = False
    if on_control_step is not None:
        on_control_step(env)
    while env.time_ns < limit_ns and not success:
        obs = env.observation()
        stamp = env.time_ns
        t0 = time.perf_counter()
        chunk = policy.act(obs, stamp)
        latency += time.perf_counter() - t0
        calls += 1
        n_exec = execute_steps or max(1, int(np.ceil((chunk.end_ns + chunk.dt_ns - stamp) / control_ns)))
        for i in range(n_exec):
            env.set_joint_targets(action_at(chunk, env.time_ns))
            env.step_control()
            if on_control_step is not None:
                on_control_step(env)
            if observe is not None and i + 1 < n_exec:
                # Policies with an observation history see every control step, as in training.
                observe(env.observation(), env.time_ns)
            held = held + 1 if env.is_success() else 0
            if held >= hold_needed:
                success = True
                break
            if env.time_ns >= limit_ns:
                break
    return EpisodeResult(
        seed=seed,
        success=success,
        sim_time_s=env.time_ns * 1e-9,
        wall_time_s=time.perf_counter() - wall_start,
        policy_calls=calls,
        instruction=env.instruction,
        mean_policy_latency_ms=1e3 * latency / max(calls, 1),
    )
