"""The per-tick control pipeline of an arm driver, shared by the real arm node and its sim twin.

:class:`ArmController` owns an :class:`~robostack.executor.ActionExecutor` and a
:class:`~robostack.safety.SafetyLayer` and takes the driver's inputs as plain calls with times:

* :meth:`ArmController.submit_chunk`: an action chunk (policy);
* :meth:`ArmController.submit_command`: one target position (teleop), held for
  ``command_hold_ns`` after it arrives, so a teleop stream that stops expires like a chunk and the
  safety watchdog takes over (hold, then stop);
* :meth:`ArmController.set_estop` / :meth:`ArmController.set_alarm`: e-stop and failure alarms;
* :meth:`ArmController.tick`: once per servo tick with the measured positions; returns the
  :class:`~robostack.safety.SafeCommand` to write.

No zmq, no bus, no clock of its own: the caller passes ``now_ns`` (``CLOCK_MONOTONIC`` of the
robot host, or sim time), so a node, the twin and a test drive it the same way.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from robostack.chunks import ActionChunk
from robostack.executor import ActionExecutor, ChunkTrajectory, ExecutorConfig
from robostack.safety import SafeCommand, SafetyConfig, SafetyLayer, SafetyState, ForwardKinematics


@dataclass
class ArmControlConfig:
    """Settings of an :class:`ArmController`; times in nanoseconds."""

    safety: SafetyConfig
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    # A single command stays the target for this long after it arrived (teleop streams refresh it).
    command_hold_ns: int = 100_000_000
    # A command whose capture stamp is older than this when it arrives is refused (None: no check).
    max_command_age_ns: int | None = 500_000_000
    # A chunk that fails validation (NaN/Inf, wrong dimension) drops the current plan: "hold"
    # (the arm holds within one tick), or is only counted while the old plan runs on: "ignore".
    on_invalid_chunk: str = "hold"
    # A chunk is refused as ``chunk_jump`` when two consecutive actions, or its first executed
    # action and the plan it replaces, differ by more than this on any joint (None: no check).
    # The executor blends a far-off chunk in smoothly, so the safety layer's per-tick jump check
    # would not see it; this catches it before it becomes a fast, "smooth" move.
    max_chunk_jump: float | Sequence[float] | None = None
    chunk_source: str = "policy"
    command_source: str = "teleop"

    def __post_init__(self) -> None:
        if self.command_hold_ns <= 0:
            raise ValueError(f"ArmControlConfig.command_hold_ns must be > 0, got {self.command_hold_ns}")
        if self.max_command_age_ns is not None and self.max_command_age_ns <= 0:
            raise ValueError(f"ArmControlConfig.max_command_age_ns must be > 0 or None, got {self.max_command_age_ns}")
        if self.on_invalid_chunk not in ("hold", "ignore"):
            raise ValueError(f"ArmControlConfig.on_invalid_chunk must be 'hold' or 'ignore', got {self.on_invalid_chunk!r}")
        if self.max_chunk_jump is not None:
            jump = np.broadcast_to(np.asarray(self.max_chunk_jump, dtype=np.float64), (self.safety.n_joints,))
            if not np.all(jump > 0):
                raise ValueError(f"ArmControlConfig.max_chunk_jump must be > 0, got {self.max_chunk_jump!r}")
        if self.chunk_source == self.command_source:
            raise ValueError("ArmControlConfig.chunk_source and command_source must differ")


# Short names for the ``mode`` of the ``applied`` topic (docs/topics.md).
APPLIED_MODE = {
    SafetyState.IDLE: "idle",
    SafetyState.ACTIVE: "ok",
    SafetyState.RAMPING: "ramp",
    SafetyState.HOLDING: "hold",
    SafetyState.STOPPED: "stopped",
    SafetyState.ESTOPPED: "estop",
    SafetyState.RETREATING: "retreat",
    SafetyState.ALARM_HOLD: "alarm_hold",
}


@dataclass
class _HeldCommand:
    position: np.ndarray
    arrived_ns: int
    expires_ns: int


class ArmController:
    """Executor + safety layer + command sources: inputs in, one safe command per tick out."""

    def __init__(self, config: ArmControlConfig, forward_kinematics: ForwardKinematics | None = None) -> None:
        self.config = config
        self.n_joints = config.safety.n_joints
        self._fk = forward_kinematics
        self.executor = ActionExecutor(config.executor)
        self.safety = SafetyLayer(config.safety, forward_kinematics)
        self.counts: Counter = Counter()  # input events and rejections, by reason
        self._command: _HeldCommand | None = None
        self._last_chunk_ns: int | None = None
        self._estop_engaged = False
        self._alarm_active = False
        self._last_source: str | None = None
        self.last_output: SafeCommand | None = None
        self.last_source: str | None = None  # where this tick's command came from (None: nothing)
        self._max_chunk_jump = (None if config.max_chunk_jump is None else np.broadcast_to(
            np.asarray(config.max_chunk_jump, dtype=np.float64), (self.n_joints,)))

    # -- inputs ------------------------------------------------------------------------------

    def submit_chunk(self, chunk: ActionChunk, now_ns: int) -> bool:
        """Offer a chunk that arrived at ``now_ns``; False when refused (counted by reason)."""
        if chunk.action_dim != self.n_joints:
            return self._invalid_chunk(now_ns, "chunk_bad_dim")
        if not np.all(np.isfinite(chunk.actions)):
            return self._invalid_chunk(now_ns, "chunk_non_finite")
        if self._estop_engaged:
            self.counts["chunk_during_estop"] += 1
            return False
        if self._max_chunk_jump is not None and self._chunk_jumps(chunk, now_ns):
            return self._invalid_chunk(now_ns, "chunk_jump")
        before = dict(self.executor.stats.chunks_rejected)
        if not self.executor.submit(chunk, now_ns):
            after = self.executor.stats.chunks_rejected
            reason = next((r for r in after if after[r] != before.get(r, 0)), "rejected")
            self.counts[f"chunk_{reason}"] += 1
            return False
        self.counts["chunks_accepted"] += 1
        self._last_chunk_ns = now_ns
        return True

    def submit_command(self, position: np.ndarray, now_ns: int, stamp_ns: int | None = None) -> bool:
        """A single target (teleop) that arrived at ``now_ns``, captured at ``stamp_ns``; it is the
        target until ``now_ns + command_hold_ns`` unless a newer one replaces it. Commands with a
        wrong shape or NaN/Inf are refused and counted; validity beyond that (limits, jumps) is the
        safety layer's job, every tick."""
        cmd = np.asarray(position, dtype=np.float64)
        if cmd.shape != (self.n_joints,):
            self.counts["command_bad_shape"] += 1
            return False
        if not np.all(np.isfinite(cmd)):
            # A broken teleop device: stop following it now rather than at expiry.
            self.counts["command_non_finite"] += 1
            self._command = None
            return False
        age = self.config.max_command_age_ns
        if age is not None and stamp_ns is not None and now_ns - stamp_ns > age:
            self.counts["command_stale"] += 1
            return False
        if self._estop_engaged:
            self.counts["command_during_estop"] += 1
            return False
        self._command = _HeldCommand(cmd.copy(), now_ns, now_ns + self.config.command_hold_ns)
        self.counts["commands_accepted"] += 1
        return True

    def set_estop(self, engaged: bool, now_ns: int, reset: bool = False) -> None:
        """E-stop input. Engaging latches it (every plan and held command is dropped); releasing
        (an ``engaged=False`` after ``True``) or ``reset=True`` is the operator's reset, which also
        clears a watchdog stop."""
        if engaged:
            if not self._estop_engaged:
                self.counts["estop_engaged"] += 1
            self._estop_engaged = True
            self.safety.trigger_estop(now_ns)
            self.executor.reset()
            self._command = None
            return
        if self._estop_engaged or reset:
            self.counts["reset"] += 1
            self._estop_engaged = False
            self.reset(now_ns)

    def reset(self, now_ns: int) -> None:
        """Operator reset: releases an e-stop or a watchdog stop; the next command ramps from the
        measured position."""
        self._estop_engaged = False
        self.executor.reset()
        self._command = None
        self.safety.reset(now_ns)  # after a torque-off stop it restarts from the measured position

    def set_alarm(self, active: bool, now_ns: int, detail: str = "") -> None:
        """Failure alarm from failure prediction: the safety layer reacts per its config."""
        if active and not self._alarm_active:
            self.counts["alarms"] += 1
        if active:
            self.safety.raise_alarm(now_ns, detail)
        elif self._alarm_active:
            self.safety.clear_alarm(now_ns)
        self._alarm_active = active

    @property
    def estop_engaged(self) -> bool:
        return self._estop_engaged

    # -- the tick ----------------------------------------------------------------------------

    def tick(self, now_ns: int, measured_positions: np.ndarray) -> SafeCommand:
        """One servo tick: choose this tick's command and pass it through the safety layer."""
        command, source = self._select(now_ns)
        self.last_source = source
        out = self.safety.step(now_ns, command, np.asarray(measured_positions, dtype=np.float64),
                               source=source or self.config.chunk_source)
        if source is not None and source != self._last_source:
            if self._last_source is not None:
                self.counts["source_switches"] += 1
            self._last_source = source
        self.last_output = out
        return out

    def _select(self, now_ns: int) -> tuple[np.ndarray | None, str | None]:
        """Executor output or the held teleop command: the one the safety layer accepts if it
        restricts the source (teleop handover), else whichever input arrived last."""
        cfg = self.config
        planned = self.executor.command(now_ns)  # exactly once per tick: gaps are counted per call
        held = self._command
        if held is not None and now_ns > held.expires_ns:
            self.counts["command_expired"] += 1
            self._command = held = None
        wanted = self.safety.accepted_source
        if wanted == cfg.command_source:
            return (held.position if held is not None else None), cfg.command_source
        if wanted == cfg.chunk_source:
            return planned, cfg.chunk_source
        if held is not None and (planned is None or self._last_chunk_ns is None
                                 or held.arrived_ns >= self._last_chunk_ns):
            return held.position, cfg.command_source
        if planned is not None:
            return planned, cfg.chunk_source
        return None, None

    def _chunk_jumps(self, chunk: ActionChunk, now_ns: int) -> bool:
        limit = self._max_chunk_jump
        actions = np.asarray(chunk.actions, dtype=np.float64)
        if actions.shape[0] > 1 and np.any(np.abs(np.diff(actions, axis=0)) > limit):
            return True
        # Against the plan it replaces, at the time it takes over (a continuing stream only: after
        # a gap the safety layer ramps from the measured position).
        switch_ns = max(now_ns + self.config.executor.drop_margin_ns + 1, chunk.start_ns)
        if switch_ns > chunk.end_ns:
            return False  # late: the executor refuses it and counts why
        planned = self.executor.planned(switch_ns)
        if planned is None:
            return False
        first = ChunkTrajectory(chunk, self.config.executor.interpolation).sample(switch_ns)
        return bool(np.any(np.abs(first - planned) > limit))

    def _invalid_chunk(self, now_ns: int, reason: str) -> bool:
        self.counts[reason] += 1
        if self.config.on_invalid_chunk == "hold":
            # The policy produced garbage: its earlier chunks are not to be trusted either.
            self.executor.reset()
            self.counts["plan_dropped"] += 1
        return False

    # -- reporting ---------------------------------------------------------------------------

    @property
    def safety_stats(self) -> Counter:
        """Every safety rejection/clamp since start, by reason."""
        return Counter(self.safety.stats)

    def summary(self) -> dict[str, Any]:
        """Counters for a node's stats: inputs, executor, safety."""
        return {
            "state": self.safety.state.value,
            "inputs": dict(self.counts),
            "executor": self.executor.stats.summary(),
            "safety": dict(self.safety_stats),
        }


def applied_meta(out: SafeCommand, source: str | None = None) -> dict[str, Any]:
    """``meta`` of an ``applied`` message for a safe command (``mode``, ``reasons``, ...)."""
    meta: dict[str, Any] = {
        "mode": APPLIED_MODE[out.state],
        "state": out.state.value,
        "reasons": list(out.reasons),
        "torque": out.torque_enabled,
    }
    if source is not None:
        meta["source"] = source
    return meta


__all__ = ["APPLIED_MODE", "ArmControlConfig", "ArmController", "applied_meta"]
