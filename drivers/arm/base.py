"""The arm driver node: standard ports, parameters and the servo tick, over abstract hardware hooks.

Every tick (at ``rate_hz``):

1. drain the inputs: ``estop`` and ``alarm`` events, ``chunk`` messages (queue), the newest
   ``command`` (latest);
2. read the joints (:meth:`ArmDriverNode.read_joints`) and publish ``state`` stamped with the read;
3. run the :class:`~robostack.arm_control.ArmController` tick (executor + safety layer);
4. write the goals, or turn the torque off when the safety layer says so;
5. publish ``applied``: what went to the motors, with ``mode`` and ``reasons`` in meta.

A bus error on a tick (one of :attr:`ArmDriverNode.communication_errors`) is counted and the
motors keep their last goal (they hold); e-stop still turns the torque off if the bus lets it.
When reads keep failing for ``comm_failure_stop_ms`` the node stops with an error naming the
arm and the last failure, and the launcher's restart policy takes over.

A hardware driver subclasses :class:`ArmDriverNode` and implements ``open_arm``, ``read_joints``,
``write_goals``, ``set_torque`` and ``close_arm``; the twin's sim arm does the same, so a launch
file swaps a real arm for the sim one by class only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np

from robostack.arm_control import ArmControlConfig, ArmController, applied_meta
from robostack.chunks import chunk_from_message
from robostack.clock import now_ns
from robostack.executor import ExecutorConfig
from robostack.node import Input, Node, Output
from robostack.safety import SafeCommand, SafetyConfig

FloatOrList = float | list[float]
_EVENT_LOG_INTERVAL_NS = 5_000_000_000


@dataclass(frozen=True)
class ArmDescription:
    """What :meth:`ArmDriverNode.open_arm` reports: joint names and position limits (the arm's
    units, radians for revolute joints)."""

    joint_names: list[str]
    position_lower: np.ndarray
    position_upper: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.joint_names)
        lo = np.asarray(self.position_lower, dtype=np.float64)
        hi = np.asarray(self.position_upper, dtype=np.float64)
        if n == 0 or lo.shape != (n,) or hi.shape != (n,):
            raise ValueError(f"arm description: {n} joint names but limits of shapes {lo.shape} and {hi.shape}")
        object.__setattr__(self, "position_lower", lo)
        object.__setattr__(self, "position_upper", hi)


@dataclass
class ArmDriverParams:
    """Parameters every arm driver has. Times in ms, positions in the arm's joint units."""

    rate_hz: float = 100.0
    joint_names: list[str] = field(default_factory=list)  # empty: the arm's own names
    # -- executor
    executor_mode: Literal["async", "receding_horizon", "temporal_ensemble"] = "async"
    interpolation: Literal["linear", "cubic", "minimum_jerk"] = "cubic"
    blend_ms: float = 100.0
    drop_margin_ms: float = 10.0
    execute_steps: int = 8
    # -- single commands (teleop)
    command_hold_ms: float = 100.0
    max_command_age_ms: float | None = 500.0
    on_invalid_chunk: Literal["hold", "ignore"] = "hold"
    max_chunk_jump: FloatOrList | None = 0.3  # a chunk jumping further (inside, or from the plan) is refused
    # -- safety
    max_velocity: FloatOrList = 3.0
    max_acceleration: FloatOrList | None = 60.0
    max_jump: FloatOrList | None = 0.25  # per tick; larger steps of a command are corrupt, not fast
    position_lower: list[float] | None = None  # narrower limits than the arm's own (the tighter wins)
    position_upper: list[float] | None = None
    out_of_range: Literal["clamp", "reject"] = "clamp"
    gap_threshold_ms: float = 50.0
    ramp_velocity: FloatOrList | None = None
    stop_after_ms: float = 200.0
    stop_action: Literal["hold", "torque_off"] = "hold"
    auto_resume: bool = False
    estop_action: Literal["torque_off", "hold"] = "torque_off"
    alarm_reaction: Literal["hold", "slow", "retreat", "teleop"] = "hold"
    slow_factor: float = 0.25
    safe_pose: list[float] | None = None
    # -- hardware
    torque_on_start: bool = True
    torque_off_on_close: bool = False  # False: the motors keep holding their last goal
    comm_failure_stop_ms: float = 1000.0  # reads failing this long stop the node with an error

    def __post_init__(self) -> None:
        if self.rate_hz <= 0:
            raise ValueError(f"param 'rate_hz' must be > 0, got {self.rate_hz}")
        for name in ("blend_ms", "drop_margin_ms", "gap_threshold_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"param {name!r} must be >= 0, got {getattr(self, name)}")
        for name in ("command_hold_ms", "stop_after_ms", "comm_failure_stop_ms"):
            if getattr(self, name) <= 0:
                raise ValueError(f"param {name!r} must be > 0, got {getattr(self, name)}")
        if (self.position_lower is None) != (self.position_upper is None):
            raise ValueError("params 'position_lower' and 'position_upper' must be given together")


def _ns(ms: float) -> int:
    return int(round(ms * 1e6))


class ArmCommunicationLost(RuntimeError):
    """The bus stayed unusable for longer than ``comm_failure_stop_ms``."""


class ArmDriverNode(Node):
    """Base class of arm drivers (real and simulated); see the module docstring."""

    inputs = {
        "chunk": Input(mode="queue", queue_size=16, required=False,
                       doc="action chunks: actions (H, D); meta start_ns, dt_ns, obs_stamp_ns"),
        "command": Input(mode="latest", required=False, doc="one target: position (D,) (teleop)"),
        "estop": Input(mode="queue", required=False, doc="meta engaged (bool), optional reset (bool)"),
        "alarm": Input(mode="queue", required=False, doc="meta alarm (bool), scores"),
    }
    outputs = {
        "state": Output(doc="position, velocity (D,) float32; meta joints; stamp = bus read"),
        "applied": Output(doc="position (D,) float32 sent this tick; meta mode, reasons, torque, source"),
    }
    Params = ArmDriverParams
    # Exceptions of the hardware hooks that mean "this tick's bus transaction failed".
    communication_errors: ClassVar[tuple[type[BaseException], ...]] = ()

    # ---- hardware hooks (override)
    def open_arm(self) -> ArmDescription:
        """Connect to the arm; return its joints and limits."""
        raise NotImplementedError

    def read_joints(self) -> tuple[np.ndarray, np.ndarray | None, int]:
        """Positions, velocities (None: the node differentiates positions) and the read stamp."""
        raise NotImplementedError

    def write_goals(self, positions: np.ndarray) -> None:
        """Send goal positions (joint order of :meth:`open_arm`)."""
        raise NotImplementedError

    def set_torque(self, on: bool) -> None:
        raise NotImplementedError

    def close_arm(self) -> None:
        """Disconnect (always called, also after a failed setup)."""

    def hardware_stats(self) -> dict[str, Any]:
        """Driver counters for the node's stats (bus retries, clamps, ...)."""
        return {}

    # ---- lifecycle
    def setup(self) -> None:
        p = self.params
        self._opened = False
        self.description = self.open_arm()
        self._opened = True
        names = list(p.joint_names) or list(self.description.joint_names)
        if len(names) != len(self.description.joint_names):
            raise ValueError(f"param 'joint_names' has {len(names)} names but the arm has "
                             f"{len(self.description.joint_names)} joints {self.description.joint_names}")
        self.joint_names = names
        self.controller = ArmController(self.control_config(self.description))
        self._torque_on = False
        if p.torque_on_start:
            self.set_torque(True)
            self._torque_on = True
        self._last_positions: np.ndarray | None = None
        self._last_read_ns: int | None = None
        self._last_goal: np.ndarray | None = None
        self._failing_since: int | None = None
        self._consecutive_failures = 0
        self.comm = {"read_failures": 0, "write_failures": 0, "torque_failures": 0, "last_error": ""}
        self._last_event = None
        self._event_logged_ns: dict[str, int] = {}
        self._event_suppressed: dict[str, int] = {}
        self._bad_inputs_warned: set[str] = set()
        self.log.info("arm ready: %d joints %s at %.0f Hz", len(names), names, p.rate_hz)

    def control_config(self, arm: ArmDescription) -> ArmControlConfig:
        """The executor/safety configuration from the params and the arm's limits."""
        p = self.params
        n = len(arm.joint_names)
        lower, upper = arm.position_lower.copy(), arm.position_upper.copy()
        if p.position_lower is not None:
            plo = np.asarray(p.position_lower, dtype=np.float64)
            phi = np.asarray(p.position_upper, dtype=np.float64)
            if plo.shape != (n,) or phi.shape != (n,):
                raise ValueError(f"params 'position_lower'/'position_upper' need {n} values (one per joint)")
            lower, upper = np.maximum(lower, plo), np.minimum(upper, phi)
        period_ns = int(round(1e9 / p.rate_hz))
        safety = SafetyConfig(
            position_lower=lower.tolist(), position_upper=upper.tolist(),
            max_velocity=p.max_velocity, max_acceleration=p.max_acceleration, max_jump=p.max_jump,
            servo_period_ns=period_ns, out_of_range=p.out_of_range,
            gap_threshold_ns=_ns(p.gap_threshold_ms), ramp_velocity=p.ramp_velocity,
            stop_after_ns=_ns(p.stop_after_ms), stop_action=p.stop_action, auto_resume=p.auto_resume,
            estop_action=p.estop_action, alarm_reaction=p.alarm_reaction, slow_factor=p.slow_factor,
            safe_pose=p.safe_pose,
        )
        executor = ExecutorConfig(mode=p.executor_mode, interpolation=p.interpolation, blend_ns=_ns(p.blend_ms),
                                  drop_margin_ns=_ns(p.drop_margin_ms), execute_steps=p.execute_steps)
        return ArmControlConfig(
            safety=safety, executor=executor, command_hold_ns=_ns(p.command_hold_ms),
            max_command_age_ns=None if p.max_command_age_ms is None else _ns(p.max_command_age_ms),
            on_invalid_chunk=p.on_invalid_chunk, max_chunk_jump=p.max_chunk_jump,
        )

    def step(self) -> None:
        self._drain_inputs(now_ns())
        try:
            positions, velocities, stamp = self.read_joints()
        except self.communication_errors as exc:
            self._comm_failure("read", exc)
            return
        self._failing_since = None
        self._consecutive_failures = 0
        positions = np.asarray(positions, dtype=np.float64)
        velocities = self._velocities(positions, velocities, stamp)
        self._publish("state", {"position": positions.astype(np.float32), "velocity": velocities.astype(np.float32)},
                     stamp_ns=stamp, meta={"joints": self.joint_names})
        now = now_ns()
        out = self.controller.tick(now, positions)
        sent = self._apply(out, positions)
        self._publish("applied", {"position": sent.astype(np.float32)}, stamp_ns=now,
                     meta=applied_meta(out, self.controller.last_source))
        self._log_safety_events()

    def close(self) -> None:
        if not getattr(self, "_opened", False):
            return
        try:
            if self.params.torque_off_on_close and self._torque_on:
                self.set_torque(False)
        except self.communication_errors as exc:
            self.log.warning("could not turn the torque off on close: %s", exc)
        finally:
            self.close_arm()

    def extra_stats(self) -> dict[str, Any]:
        if not hasattr(self, "controller"):
            return {}
        return {**self.controller.summary(), "comm": dict(self.comm), "hardware": self.hardware_stats()}

    # ---- internals
    def _publish(self, output: str, arrays: dict[str, np.ndarray], stamp_ns: int, meta: dict[str, Any]) -> None:
        if output in self._outputs:  # an output nobody wired (e.g. in a test) is skipped
            self.publish(output, arrays, stamp_ns=stamp_ns, meta=meta)

    def _drain_inputs(self, now: int) -> None:
        ctl = self.controller
        if "estop" in self._inputs:
            for msg in self.read_all("estop"):
                engaged = msg.meta.get("engaged")
                if not isinstance(engaged, bool):
                    self._bad_input("estop", f"meta 'engaged' must be true/false, got {engaged!r}")
                    continue
                if engaged and not ctl.estop_engaged:
                    self.log.warning("E-STOP engaged (from %s)", msg.src or "?")
                elif not engaged and ctl.estop_engaged:
                    self.log.warning("e-stop released (from %s): reset", msg.src or "?")
                ctl.set_estop(engaged, now, reset=bool(msg.meta.get("reset", False)))
        if "alarm" in self._inputs:
            for msg in self.read_all("alarm"):
                active = msg.meta.get("alarm")
                if not isinstance(active, bool):
                    self._bad_input("alarm", f"meta 'alarm' must be true/false, got {active!r}")
                    continue
                ctl.set_alarm(active, now, detail=str(msg.meta.get("scores", ""))[:200])
        if "chunk" in self._inputs:
            for msg in self.read_all("chunk"):
                try:
                    chunk = chunk_from_message(msg.arrays, msg.meta)
                except ValueError as exc:
                    ctl.counts["chunk_malformed"] += 1
                    self._bad_input("chunk", str(exc))
                    continue
                ctl.submit_chunk(chunk, now)
        if "command" in self._inputs:
            msg = self.read("command")
            if msg is not None:
                joints = msg.meta.get("joints")
                if "position" not in msg.arrays:
                    ctl.counts["command_malformed"] += 1
                    self._bad_input("command", "message has no 'position' array")
                elif isinstance(joints, list) and joints != self.joint_names:
                    ctl.counts["command_joint_mismatch"] += 1
                    self._bad_input("command", f"joints {joints} do not match this arm's {self.joint_names}")
                else:
                    ctl.submit_command(msg["position"], now, stamp_ns=msg.stamp_ns)

    def _bad_input(self, port: str, why: str) -> None:
        if port not in self._bad_inputs_warned:  # once per port: a broken sender must not flood the log
            self._bad_inputs_warned.add(port)
            self.log.warning("refused a %s message: %s (further ones are only counted)", port, why)

    def _velocities(self, positions: np.ndarray, velocities: np.ndarray | None, stamp: int) -> np.ndarray:
        if velocities is None:
            if self._last_positions is None or self._last_read_ns is None or stamp <= self._last_read_ns:
                velocities = np.zeros_like(positions)
            else:
                velocities = (positions - self._last_positions) / ((stamp - self._last_read_ns) / 1e9)
        self._last_positions, self._last_read_ns = positions, stamp
        return np.asarray(velocities, dtype=np.float64)

    def _apply(self, out: SafeCommand, measured: np.ndarray) -> np.ndarray:
        """Write ``out`` to the arm; returns what the motors were told (measured when torque is off)."""
        try:
            if not out.torque_enabled:
                if self._torque_on:
                    self.set_torque(False)
                    self._torque_on = False
                    self.log.warning("torque OFF (%s)", ", ".join(out.reasons) or out.state.value)
                return measured
            assert out.positions is not None
            if not self._torque_on:
                self.set_torque(True)
                self._torque_on = True
                self.log.info("torque on")
            self.write_goals(out.positions)
            self._last_goal = out.positions
            return out.positions
        except self.communication_errors as exc:
            self.comm["write_failures"] += 1
            self.comm["last_error"] = str(exc)
            self.log.warning("bus write failed (%s); the motors keep their last goal", exc)
            return self._last_goal if self._last_goal is not None else measured

    def _comm_failure(self, what: str, exc: BaseException) -> None:
        t = now_ns()
        self.comm[f"{what}_failures"] += 1
        self.comm["last_error"] = str(exc)
        self._consecutive_failures += 1
        if self._failing_since is None:
            self._failing_since = t
            self.log.warning("bus %s failed (%s); holding the last goal", what, exc)
        if self.controller.estop_engaged and self._torque_on:
            try:  # the e-stop must act even while reads fail
                self.set_torque(False)
                self._torque_on = False
            except self.communication_errors:
                self.comm["torque_failures"] += 1
        if self._last_goal is not None:
            self._publish("applied", {"position": self._last_goal.astype(np.float32)}, stamp_ns=t,
                         meta={"mode": "hold", "state": "comm_error", "reasons": [f"bus_{what}_failed"],
                               "torque": self._torque_on})
        limit_ms = self.params.comm_failure_stop_ms
        if (t - self._failing_since) / 1e6 >= limit_ms:
            raise ArmCommunicationLost(
                f"arm {self.name!r}: bus {what}s have failed for {limit_ms:.0f} ms "
                f"({self._consecutive_failures} ticks in a row); last error: {exc}. Check the cable, "
                f"power and port; the motors hold their last goal")

    def _log_safety_events(self) -> None:
        events = self.controller.safety.events
        if not events or events[-1] is self._last_event:
            return
        new = []
        for event in reversed(events):
            if event is self._last_event:
                break
            new.append(event)
        self._last_event = events[-1]
        # Each reason at most once per interval: a teleop stream can trip a limit every tick,
        # and every event is counted in the stats anyway.
        for event in reversed(new):
            last = self._event_logged_ns.get(event.reason)
            if last is not None and event.stamp_ns - last < _EVENT_LOG_INTERVAL_NS:
                self._event_suppressed[event.reason] = self._event_suppressed.get(event.reason, 0) + 1
                continue
            self._event_logged_ns[event.reason] = event.stamp_ns
            more = self._event_suppressed.pop(event.reason, 0)
            self.log.info("safety: %s%s%s", event.reason, f" ({event.detail})" if event.detail else "",
                          f" (+{more} more since the last report)" if more else "")
