"""Safety layer: the last stage before the servo bus, applied to every command whatever its source.

The arm driver calls :meth:`SafetyLayer.step` once per servo tick with the executor's (or teleop's,
or a script's) command and the measured joint positions, and sends what comes back. The layer is
pure (time is passed in), so its rules are tested with a synthetic clock.

Rules, in the order they apply:

* e-stop: latched by :meth:`SafetyLayer.trigger_estop` until :meth:`SafetyLayer.reset`; torque off
  (or hold, per config).
* validity: a command from a source that is not accepted, of the wrong shape, with NaN/Inf, a jump
  larger than ``max_jump`` from the last sent position, outside the position limits (when
  ``out_of_range="reject"``) or whose forward kinematics leave the workspace box is replaced by
  hold, within the same tick.
* watchdog: with no valid command, hold the last sent position; after ``stop_after_ns`` of silence
  go to ``STOPPED`` (hold or torque off), which only :meth:`SafetyLayer.reset` leaves unless
  ``auto_resume``.
* failure alarm (:meth:`SafetyLayer.raise_alarm`): hold, slow (scale the velocity and
  acceleration limits), retreat to ``safe_pose`` at a bounded velocity, or hand over to teleop.
* after a gap (no valid command for ``gap_threshold_ns``, a stop, a reset, a handover) the first
  steps ramp from the *measured* position at ``ramp_velocity``.
* rate limits: velocity and acceleration relative to the last sent command over the nominal servo
  period; position limits clamp last.

Every rejection and clamp is counted by reason (:attr:`SafetyLayer.stats`) and its onset recorded
in :attr:`SafetyLayer.events`.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass
from enum import Enum
from typing import Callable, Sequence

import numpy as np

from robostack.params import enum_field as _enum_field

ForwardKinematics = Callable[[np.ndarray], np.ndarray]
"""Joint positions (D,) → points to keep in the workspace box, shape (3,) or (N, 3)."""


class SafetyState(str, Enum):
    IDLE = "idle"  # no valid command yet: holding the position measured at start
    ACTIVE = "active"
    RAMPING = "ramping"  # first steps after a gap, from the measured position at ramp velocity
    HOLDING = "holding"  # watchdog: no valid command covers now
    STOPPED = "stopped"  # watchdog: silence longer than stop_after_ns
    ESTOPPED = "estopped"
    RETREATING = "retreating"  # alarm: moving to the safe pose
    ALARM_HOLD = "alarm_hold"  # alarm: holding (in place, or at the safe pose after a retreat)


class StopAction(str, Enum):
    HOLD = "hold"
    TORQUE_OFF = "torque_off"


class AlarmReaction(str, Enum):
    HOLD = "hold"
    SLOW = "slow"
    RETREAT = "retreat"
    TELEOP = "teleop"


@dataclass
class SafetyConfig:
    """Limits and reactions of a :class:`SafetyLayer`. Positions in the arm's joint units,
    velocities per second, accelerations per second squared, times in nanoseconds. Per-joint
    values accept a scalar for all joints."""

    position_lower: Sequence[float]
    position_upper: Sequence[float]
    max_velocity: float | Sequence[float]
    max_acceleration: float | Sequence[float] | None = None
    servo_period_ns: int = 2_000_000
    # Rate limits use the time since the previous step, at most this many servo periods, so a
    # late tick moves as far as the elapsed time allows but a stall never licenses a big step.
    max_step_periods: float = 2.0
    # A command further than this from the previous command (or the held position) is rejected
    # (None: no check).
    max_jump: float | Sequence[float] | None = None
    # Out-of-range commands: "clamp" to the limits, or "reject" (hold).
    out_of_range: str = "clamp"
    # Optional workspace box for the points returned by the forward kinematics.
    workspace_lower: Sequence[float] | None = None
    workspace_upper: Sequence[float] | None = None
    # No valid command for longer than this: the next one ramps from the measured position.
    gap_threshold_ns: int = 50_000_000
    # Velocity of that ramp (None: a quarter of max_velocity).
    ramp_velocity: float | Sequence[float] | None = None
    # Watchdog: silence after which the arm is STOPPED, and what STOPPED does.
    stop_after_ns: int = 200_000_000
    stop_action: StopAction = StopAction.HOLD
    # Leave STOPPED on the next valid command (with a ramp) instead of waiting for reset().
    auto_resume: bool = False
    estop_action: StopAction = StopAction.TORQUE_OFF
    alarm_reaction: AlarmReaction = AlarmReaction.HOLD
    slow_factor: float = 0.25
    safe_pose: Sequence[float] | None = None
    retreat_velocity: float | Sequence[float] | None = None  # None: ramp velocity
    # The only source accepted (None: any); a teleop handover switches it to teleop_source.
    accepted_source: str | None = None
    teleop_source: str = "teleop"
    event_history: int = 100

    def __post_init__(self) -> None:
        self.stop_action = _enum_field(StopAction, self.stop_action, "SafetyConfig.stop_action")
        self.estop_action = _enum_field(StopAction, self.estop_action, "SafetyConfig.estop_action")
        self.alarm_reaction = _enum_field(AlarmReaction, self.alarm_reaction, "SafetyConfig.alarm_reaction")
        if self.out_of_range not in ("clamp", "reject"):
            raise ValueError(f"SafetyConfig.out_of_range must be 'clamp' or 'reject', got {self.out_of_range!r}")
        lower = np.asarray(self.position_lower, dtype=np.float64)
        upper = np.asarray(self.position_upper, dtype=np.float64)
        if lower.ndim != 1 or lower.shape != upper.shape or lower.size == 0:
            raise ValueError(f"SafetyConfig.position_lower/upper must be 1-D of the same length, "
                             f"got shapes {lower.shape} and {upper.shape}")
        if not np.all(np.isfinite(lower)) or not np.all(np.isfinite(upper)) or np.any(lower >= upper):
            raise ValueError("SafetyConfig.position_lower must be finite and below position_upper "
                             f"on every joint, got {lower.tolist()} and {upper.tolist()}")
        for name in ("max_velocity", "max_acceleration", "max_jump", "ramp_velocity", "retreat_velocity"):
            value = getattr(self, name)
            if value is not None:
                arr = _per_joint(value, lower.size, f"SafetyConfig.{name}")
                if not np.all(arr > 0) or not np.all(np.isfinite(arr)):
                    raise ValueError(f"SafetyConfig.{name} must be finite and > 0, got {value!r}")
        for name in ("servo_period_ns", "stop_after_ns"):
            if getattr(self, name) <= 0:
                raise ValueError(f"SafetyConfig.{name} must be > 0, got {getattr(self, name)}")
        if self.max_step_periods < 1:
            raise ValueError(f"SafetyConfig.max_step_periods must be >= 1, got {self.max_step_periods}")
        if self.gap_threshold_ns < 0:
            raise ValueError(f"SafetyConfig.gap_threshold_ns must be >= 0, got {self.gap_threshold_ns}")
        if not 0 < self.slow_factor <= 1:
            raise ValueError(f"SafetyConfig.slow_factor must be in (0, 1], got {self.slow_factor}")
        if (self.workspace_lower is None) != (self.workspace_upper is None):
            raise ValueError("SafetyConfig.workspace_lower and workspace_upper must be given together")
        if self.workspace_lower is not None:
            wl = np.asarray(self.workspace_lower, dtype=np.float64)
            wu = np.asarray(self.workspace_upper, dtype=np.float64)
            if wl.shape != (3,) or wu.shape != (3,) or np.any(wl >= wu):
                raise ValueError("SafetyConfig.workspace_lower/upper must be 3 values each, lower < upper")
        if self.safe_pose is not None:
            pose = _per_joint(self.safe_pose, lower.size, "SafetyConfig.safe_pose")
            if pose.ndim != 1 or np.any(pose < lower) or np.any(pose > upper):
                raise ValueError(f"SafetyConfig.safe_pose must lie within the position limits, got {pose.tolist()}")
        if self.alarm_reaction is AlarmReaction.RETREAT and self.safe_pose is None:
            raise ValueError("SafetyConfig.alarm_reaction='retreat' needs a safe_pose")
        if self.event_history < 1:
            raise ValueError(f"SafetyConfig.event_history must be >= 1, got {self.event_history}")

    @property
    def n_joints(self) -> int:
        return len(self.position_lower)


def _per_joint(value: float | Sequence[float], n: int, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        return np.full(n, float(arr))
    if arr.shape != (n,):
        raise ValueError(f"{name} must be a scalar or {n} values, got shape {arr.shape}")
    return arr.copy()


@dataclass(frozen=True)
class SafeCommand:
    """What to write to the bus this tick: ``positions`` (None when torque is off)."""

    positions: np.ndarray | None
    torque_enabled: bool
    state: SafetyState
    reasons: tuple[str, ...]
    stamp_ns: int


@dataclass(frozen=True)
class SafetyEvent:
    stamp_ns: int
    reason: str
    detail: str = ""


class SafetyLayer:
    """Enforces :class:`SafetyConfig` on a command stream; see the module docstring for the rules."""

    def __init__(self, config: SafetyConfig, forward_kinematics: ForwardKinematics | None = None) -> None:
        if config.workspace_lower is not None and forward_kinematics is None:
            raise ValueError("a workspace box needs a forward_kinematics callable")
        self.config = config
        self._fk = forward_kinematics
        n = config.n_joints
        self._n = n
        self._lower = np.asarray(config.position_lower, dtype=np.float64)
        self._upper = np.asarray(config.position_upper, dtype=np.float64)
        self._vmax = _per_joint(config.max_velocity, n, "max_velocity")
        self._amax = (None if config.max_acceleration is None
                      else _per_joint(config.max_acceleration, n, "max_acceleration"))
        self._max_jump = None if config.max_jump is None else _per_joint(config.max_jump, n, "max_jump")
        self._ramp_v = (0.25 * self._vmax if config.ramp_velocity is None
                        else _per_joint(config.ramp_velocity, n, "ramp_velocity"))
        self._retreat_v = (self._ramp_v if config.retreat_velocity is None
                           else _per_joint(config.retreat_velocity, n, "retreat_velocity"))
        self._safe_pose = None if config.safe_pose is None else _per_joint(config.safe_pose, n, "safe_pose")
        if config.workspace_lower is not None:
            self._ws_lower = np.asarray(config.workspace_lower, dtype=np.float64)
            self._ws_upper = np.asarray(config.workspace_upper, dtype=np.float64)
        self._period_s = config.servo_period_ns / 1e9
        self._dt = self._period_s  # this step's rate-limit interval, see _begin_step
        self._last_step_ns: int | None = None
        self.stats: Counter = Counter()
        self.events: deque[SafetyEvent] = deque(maxlen=config.event_history)
        self._state = SafetyState.IDLE
        self._torque_off = False
        self._last_sent: np.ndarray | None = None
        self._velocity = np.zeros(n)
        self._last_valid_ns: int | None = None
        self._watchdog_from_ns: int | None = None  # last valid command, or the last reset
        self._prev_target: np.ndarray | None = None
        self._estopped = False
        self._alarm: AlarmReaction | None = None
        self._source = config.accepted_source
        self._force_ramp = False
        self._prev_reasons: frozenset[str] = frozenset()

    # -- inputs besides the command stream ---------------------------------------------------

    @property
    def state(self) -> SafetyState:
        return self._state

    @property
    def accepted_source(self) -> str | None:
        return self._source

    @property
    def alarm(self) -> AlarmReaction | None:
        """The reaction in force, or None when no alarm is raised."""
        return self._alarm

    @property
    def last_sent(self) -> np.ndarray | None:
        return None if self._last_sent is None else self._last_sent.copy()

    def trigger_estop(self, now_ns: int, detail: str = "") -> None:
        """Latch the e-stop; only :meth:`reset` releases it."""
        if not self._estopped:
            self._event(now_ns, "estop_triggered", detail)
        self._estopped = True

    def reset(self, now_ns: int) -> None:
        """Operator reset: release the e-stop and a watchdog stop. The next command ramps from the
        measured position. Alarms are cleared separately (:meth:`clear_alarm`)."""
        if self._estopped or self._state in (SafetyState.STOPPED, SafetyState.ESTOPPED):
            self._event(now_ns, "reset")
        self._estopped = False
        if self._torque_off:
            # The arm may have moved while its torque was off (gravity, a hand): holding the last
            # *sent* position would snap it back at full speed. Start again from the measured one.
            self._last_sent = None
            self._state = SafetyState.IDLE
        elif self._state in (SafetyState.STOPPED, SafetyState.ESTOPPED):
            self._state = SafetyState.HOLDING if self._last_sent is not None else SafetyState.IDLE
        self._last_valid_ns = None
        self._watchdog_from_ns = now_ns if self._state is not SafetyState.IDLE else None
        self._force_ramp = True

    def raise_alarm(self, now_ns: int, detail: str = "") -> None:
        """A failure alarm (e.g. from failure prediction): react per ``alarm_reaction``."""
        reaction = self.config.alarm_reaction
        if self._alarm is None:
            self._event(now_ns, f"alarm_{reaction.value}", detail)
        self._alarm = reaction
        if reaction is AlarmReaction.TELEOP and self._source != self.config.teleop_source:
            self._source = self.config.teleop_source
            self._force_ramp = True

    def clear_alarm(self, now_ns: int) -> None:
        """End the alarm reaction; the next accepted command ramps from the measured position."""
        if self._alarm is None:
            return
        self._event(now_ns, "alarm_cleared")
        self._alarm = None
        self._source = self.config.accepted_source
        self._force_ramp = True
        if self._state in (SafetyState.ALARM_HOLD, SafetyState.RETREATING):
            self._state = SafetyState.HOLDING
            self._watchdog_from_ns = now_ns

    def set_source(self, source: str | None, now_ns: int) -> None:
        """Accept commands only from ``source`` (None: any); the switch ramps like a gap."""
        if source != self._source:
            self._event(now_ns, "source_changed", f"{self._source} -> {source}")
            self._source = source
            self._force_ramp = True

    # -- the servo tick ----------------------------------------------------------------------

    def step(self, now_ns: int, command: np.ndarray | None, measured: np.ndarray,
             source: str = "policy") -> SafeCommand:
        """Turn this tick's ``command`` (None: nothing covers now) into what to send."""
        measured = np.asarray(measured, dtype=np.float64)
        if measured.shape != (self._n,):
            raise ValueError(f"measured positions must have shape ({self._n},), got {measured.shape}")
        if self._last_step_ns is None:
            self._dt = self._period_s
        else:
            elapsed = (now_ns - self._last_step_ns) / 1e9
            self._dt = min(max(elapsed, 1e-6), self.config.max_step_periods * self._period_s)
        self._last_step_ns = now_ns
        reasons: list[str] = []
        if not np.all(np.isfinite(measured)):
            reasons.append("measured_non_finite")
            if self._last_sent is None:
                # Nothing known about where the arm is: commanding any position could move it.
                return self._emit(now_ns, None, self._state, reasons, torque=False)
            measured = self._last_sent
        if self._last_sent is None:
            # Hold where the arm is (even outside the limits: clamping would move it unbounded)
            # until a valid command arrives.
            self._last_sent = measured.copy()

        if self._estopped:
            reasons.append("estop")
            return self._stop(now_ns, SafetyState.ESTOPPED, self.config.estop_action, reasons)

        after_gap = self._force_ramp or self._last_valid_ns is None or \
            now_ns - self._last_valid_ns > self.config.gap_threshold_ns
        target = self._validate(command, source, reasons, check_jump=not after_gap)
        if target is not None:
            self._last_valid_ns = now_ns
            self._watchdog_from_ns = now_ns
            if after_gap:
                self._force_ramp = True

        if self._alarm in (AlarmReaction.HOLD, AlarmReaction.RETREAT):
            if target is not None:
                reasons.append("alarm_hold")
            if self._alarm is AlarmReaction.RETREAT and self._state is not SafetyState.ALARM_HOLD:
                return self._retreat(now_ns, reasons)
            return self._hold(now_ns, SafetyState.ALARM_HOLD, reasons)

        if target is None:
            if self._state is SafetyState.IDLE:
                return self._emit(now_ns, self._last_sent, SafetyState.IDLE, reasons)
            if self._state is SafetyState.STOPPED:
                return self._stop(now_ns, SafetyState.STOPPED, self.config.stop_action, reasons)
            since = self._watchdog_from_ns
            if since is not None and now_ns - since >= self.config.stop_after_ns:
                reasons.append("watchdog_stop")
                return self._stop(now_ns, SafetyState.STOPPED, self.config.stop_action, reasons)
            reasons.append("no_command")
            return self._hold(now_ns, SafetyState.HOLDING, reasons)

        if self._state is SafetyState.STOPPED:
            if not self.config.auto_resume:
                reasons.append("stopped_needs_reset")
                return self._stop(now_ns, SafetyState.STOPPED, self.config.stop_action, reasons)
            self._force_ramp = True

        scale = self.config.slow_factor if self._alarm is AlarmReaction.SLOW else 1.0
        if self._force_ramp or self._state is SafetyState.IDLE:
            self._force_ramp = False
            self._state = SafetyState.RAMPING
            self._last_sent = measured.copy()
            self._velocity = np.zeros(self._n)
            self._prev_target = None
            self._event(now_ns, "ramp_start")
        if self._state is SafetyState.RAMPING:
            # Approach the (possibly moving) target at ramp velocity relative to its own motion,
            # so the ramp always catches up, never faster than the velocity limit.
            target_speed = self._target_speed(target)
            vlim = np.minimum(self._vmax, self._ramp_v + target_speed) * scale
            out, limited = self._rate_limit(target, vlim, scale, reasons, "ramp_limit")
            state = SafetyState.RAMPING if limited else SafetyState.ACTIVE
        else:
            out, _ = self._rate_limit(target, self._vmax * scale, scale, reasons, "velocity_limit")
            state = SafetyState.ACTIVE
        return self._send(now_ns, out, state, reasons)

    # -- rules -------------------------------------------------------------------------------

    def _target_speed(self, target: np.ndarray) -> np.ndarray:
        if self._prev_target is None:
            return np.zeros(self._n)
        return np.abs(target - self._prev_target) / self._dt

    def _validate(self, command: np.ndarray | None, source: str, reasons: list[str],
                  check_jump: bool) -> np.ndarray | None:
        if command is None:
            return None
        if self._source is not None and source != self._source:
            reasons.append("source_rejected")
            return None
        cmd = np.asarray(command, dtype=np.float64)
        if cmd.shape != (self._n,):
            reasons.append("bad_shape")
            return None
        if not np.all(np.isfinite(cmd)):
            reasons.append("non_finite")
            return None
        # A jump is judged against a continuing stream only; after a gap the ramp bounds it.
        if check_jump and self._max_jump is not None and self._last_sent is not None and \
                self._state in (SafetyState.ACTIVE, SafetyState.RAMPING, SafetyState.HOLDING):
            reference = self._prev_target if self._prev_target is not None else self._last_sent
            if np.any(np.abs(cmd - reference) > self._max_jump):
                reasons.append("jump")
                return None
        outside = (cmd < self._lower) | (cmd > self._upper)
        if np.any(outside):
            if self.config.out_of_range == "reject":
                reasons.append("out_of_range")
                return None
            reasons.append("position_limit")
            cmd = np.clip(cmd, self._lower, self._upper)
        if self._fk is not None and self.config.workspace_lower is not None:
            points = np.asarray(self._fk(cmd), dtype=np.float64).reshape(-1, 3)
            if not np.all(np.isfinite(points)) or np.any(points < self._ws_lower) or np.any(points > self._ws_upper):
                reasons.append("workspace")
                return None
        return cmd

    def _rate_limit(self, target: np.ndarray, vmax: np.ndarray, scale: float, reasons: list[str],
                    velocity_reason: str) -> tuple[np.ndarray, bool]:
        """One servo period toward ``target`` from the last sent position within the velocity and
        acceleration limits. Returns the position and whether any limit changed it."""
        dt = self._dt
        base = self._last_sent
        error = target - base
        v_wanted = error / dt
        v = v_wanted
        if self._amax is not None:
            # Cap the speed toward the target at what can still brake in time, on top of the
            # target's own speed, so a jump is approached without overshoot while a feasible
            # trajectory passes through untouched.
            brake = np.sqrt(2.0 * self._amax * scale * np.abs(error)) + self._target_speed(target)
            v = np.clip(v, -brake, brake)
        v_capped = np.clip(v, -vmax, vmax)
        if np.any(v_capped != v):
            reasons.append(velocity_reason)
        v = v_capped
        if self._amax is not None:
            dv = self._amax * scale * dt
            v_acc = np.clip(v, self._velocity - dv, self._velocity + dv)
            if np.any(v_acc != v):
                reasons.append("acceleration_limit")
            # After a slow-down the previous velocity may exceed the new limit: the limit wins.
            v = np.clip(v_acc, -vmax, vmax)
        limited = bool(np.any(np.abs(v - v_wanted) > 1e-9 * (1.0 + np.abs(v_wanted))))
        v_lim = v
        self._prev_target = target
        return base + v_lim * dt, limited

    def _retreat(self, now_ns: int, reasons: list[str]) -> SafeCommand:
        assert self._safe_pose is not None
        self._prev_target = None
        base = self._last_sent
        step = np.clip(self._safe_pose - base, -self._retreat_v * self._dt, self._retreat_v * self._dt)
        out = base + step
        reached = bool(np.allclose(out, self._safe_pose, atol=1e-12, rtol=0.0))
        if reached:
            out = self._safe_pose.copy()
            self._event(now_ns, "retreat_done")
        reasons.append("retreat")
        return self._send(now_ns, out, SafetyState.ALARM_HOLD if reached else SafetyState.RETREATING, reasons)

    # -- outputs -----------------------------------------------------------------------------

    def _hold(self, now_ns: int, state: SafetyState, reasons: list[str]) -> SafeCommand:
        self._velocity = np.zeros(self._n)
        self._prev_target = None
        self._state = state
        return self._emit(now_ns, self._last_sent, state, reasons)

    def _stop(self, now_ns: int, state: SafetyState, action: StopAction, reasons: list[str]) -> SafeCommand:
        self._velocity = np.zeros(self._n)
        self._prev_target = None
        self._state = state
        self._force_ramp = True
        if action is StopAction.TORQUE_OFF:
            return self._emit(now_ns, None, state, reasons, torque=False)
        return self._emit(now_ns, self._last_sent, state, reasons)

    def _send(self, now_ns: int, out: np.ndarray, state: SafetyState, reasons: list[str]) -> SafeCommand:
        # Limits widened to the last sent position: an arm found outside its range moves back in
        # at bounded velocity instead of being snapped to the limit.
        clipped = np.clip(out, np.minimum(self._lower, self._last_sent), np.maximum(self._upper, self._last_sent))
        if np.any(clipped != out):
            reasons.append("position_limit")
        self._velocity = (clipped - self._last_sent) / self._dt
        self._last_sent = clipped
        self._state = state
        return self._emit(now_ns, clipped, state, reasons)

    def _emit(self, now_ns: int, positions: np.ndarray | None, state: SafetyState, reasons: list[str],
              torque: bool = True) -> SafeCommand:
        current = frozenset(reasons)
        for reason in reasons:
            self.stats[reason] += 1
            if reason not in self._prev_reasons:
                self._event(now_ns, reason)
        self._prev_reasons = current
        self._torque_off = not torque
        return SafeCommand(positions=None if positions is None else positions.copy(),
                           torque_enabled=torque, state=state, reasons=tuple(dict.fromkeys(reasons)),
                           stamp_ns=now_ns)

    def _event(self, now_ns: int, reason: str, detail: str = "") -> None:
        self.events.append(SafetyEvent(now_ns, reason, detail))


__all__ = [
    "AlarmReaction",
    "ForwardKinematics",
    "SafeCommand",
    "SafetyConfig",
    "SafetyEvent",
    "SafetyLayer",
    "SafetyState",
    "StopAction",
]
