"""Action executor: turns timestamped action chunks into a command stream at the servo rate.

The executor is pure: every call takes the current time (``now_ns``, the clock the chunks are
stamped on), so it runs the same against a wall clock, sim time or a test's synthetic clock, and
owns no thread. The arm driver calls :meth:`ActionExecutor.command` once per servo tick and sends
the result through the safety layer; ``None`` means no valid action covers now and the caller
holds.

Three modes (:class:`ExecutionMode`):

* ``receding_horizon``: execute the first ``execute_steps`` actions of each chunk, then ask for the
  next one (synchronous: the arm holds while the next chunk is computed, unless ``request_lead_ns``
  asks early).
* ``temporal_ensemble`` (ACT): every chunk that covers a time contributes, weighted by
  ``exp(-m * i)`` with ``i = 0`` for the oldest chunk.
* ``async``: ask for the next chunk while the current one runs, early enough for the measured
  latency; the new chunk takes over at ``now + drop_margin`` (its actions before that are already
  in the past and dropped) and is blended in over ``blend_ns`` so the switch is smooth. With
  ``blend_ns = 0`` this is naive chunk switching.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from enum import Enum
from typing import Callable

import numpy as np

from robostack.params import enum_field as _enum_field

from robostack.chunks import ActionChunk


class ExecutionMode(str, Enum):
    RECEDING_HORIZON = "receding_horizon"
    TEMPORAL_ENSEMBLE = "temporal_ensemble"
    ASYNC = "async"


class Interpolation(str, Enum):
    """How the command between two waypoints of a chunk is computed."""

    LINEAR = "linear"
    CUBIC = "cubic"  # C1 cubic Hermite, knot velocities by central differences
    MINIMUM_JERK = "minimum_jerk"  # C2 quintic per segment: knot velocities as CUBIC, zero knot accelerations


@dataclass
class ExecutorConfig:
    """Settings of an :class:`ActionExecutor`; times in nanoseconds."""

    mode: ExecutionMode = ExecutionMode.ASYNC
    interpolation: Interpolation = Interpolation.CUBIC
    # Actions stamped at or before now + drop_margin_ns when a chunk arrives are in the past.
    drop_margin_ns: int = 10_000_000
    # Receding horizon: actions executed per chunk (counted from the first one not in the past).
    execute_steps: int = 8
    # Receding horizon: ask for the next chunk this long before the executed part ends (0: synchronous).
    request_lead_ns: int = 0
    # Temporal ensembling weight decay; i = 0 is the oldest chunk.
    ensemble_m: float = 0.01
    # Temporal ensembling: ask for a chunk this often (None: the latest chunk's dt).
    query_period_ns: int | None = None
    # Async and receding horizon: cross-fade from the old plan to the new chunk over this window.
    blend_ns: int = 100_000_000
    # Async: latency assumed until one has been measured.
    initial_latency_ns: int = 200_000_000
    # Async: the latency estimate is the largest of the last this-many measurements.
    latency_window: int = 10
    # Async: extra slack on top of latency + drop margin + blend when deciding to ask.
    request_slack_ns: int = 20_000_000
    # Async: also ask once the current chunk has run this long (None: only by the coverage rule).
    replan_every_ns: int | None = None
    # A request with no chunk after this long is given up, so wants_chunk() may ask again.
    request_timeout_ns: int = 2_000_000_000
    # Number of chunk ages / boundary jumps kept for stats.
    stats_window: int = 1000

    def __post_init__(self) -> None:
        self.mode = _enum_field(ExecutionMode, self.mode, "ExecutorConfig.mode")
        self.interpolation = _enum_field(Interpolation, self.interpolation, "ExecutorConfig.interpolation")
        for name in ("drop_margin_ns", "request_lead_ns", "blend_ns", "initial_latency_ns",
                     "request_slack_ns"):
            if getattr(self, name) < 0:
                raise ValueError(f"ExecutorConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.execute_steps < 1:
            raise ValueError(f"ExecutorConfig.execute_steps must be >= 1, got {self.execute_steps}")
        if self.ensemble_m < 0:
            raise ValueError(f"ExecutorConfig.ensemble_m must be >= 0, got {self.ensemble_m}")
        for name in ("query_period_ns", "replan_every_ns"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"ExecutorConfig.{name} must be > 0 or None, got {value}")
        if self.request_timeout_ns <= 0:
            raise ValueError(f"ExecutorConfig.request_timeout_ns must be > 0, got {self.request_timeout_ns}")
        if self.latency_window < 1 or self.stats_window < 1:
            raise ValueError("ExecutorConfig.latency_window and stats_window must be >= 1")


def minimum_jerk_ramp(s: float) -> float:
    """0 → 1 on s in [0, 1] with zero velocity and acceleration at both ends."""
    if s <= 0.0:
        return 0.0
    if s >= 1.0:
        return 1.0
    return s * s * s * (10.0 + s * (-15.0 + 6.0 * s))


class ChunkTrajectory:
    """One chunk as a continuous trajectory: waypoints interpolated, clamped outside its span."""

    def __init__(self, chunk: ActionChunk, interpolation: Interpolation) -> None:
        self.chunk = chunk
        self.points = np.asarray(chunk.actions, dtype=np.float64)
        self.start_ns = int(chunk.start_ns)
        self.dt_ns = int(chunk.dt_ns)
        self.end_ns = int(chunk.end_ns)
        self.interpolation = Interpolation(interpolation)
        p = self.points
        # Knot velocities in units per step (the segment length is one step).
        if p.shape[0] >= 3:
            v = np.empty_like(p)
            v[1:-1] = (p[2:] - p[:-2]) / 2.0
            v[0] = p[1] - p[0]
            v[-1] = p[-1] - p[-2]
        elif p.shape[0] == 2:
            v = np.repeat(p[1:] - p[:1], 2, axis=0)
        else:
            v = np.zeros_like(p)
        self.knot_velocity = v

    def sample(self, t_ns: int) -> np.ndarray:
        """Position at ``t_ns`` (first/last waypoint before/after the chunk's span)."""
        if t_ns <= self.start_ns:
            return self.points[0].copy()
        if t_ns >= self.end_ns:
            return self.points[-1].copy()
        rel = t_ns - self.start_ns
        i = rel // self.dt_ns
        s = (rel - i * self.dt_ns) / self.dt_ns
        p0, p1 = self.points[i], self.points[i + 1]
        if self.interpolation is Interpolation.LINEAR:
            return p0 + s * (p1 - p0)
        m0, m1 = self.knot_velocity[i], self.knot_velocity[i + 1]
        s2 = s * s
        s3 = s2 * s
        if self.interpolation is Interpolation.CUBIC:
            return ((2 * s3 - 3 * s2 + 1) * p0 + (s3 - 2 * s2 + s) * m0
                    + (-2 * s3 + 3 * s2) * p1 + (s3 - s2) * m1)
        s4 = s3 * s
        s5 = s4 * s
        return ((1 - 10 * s3 + 15 * s4 - 6 * s5) * p0 + (s - 6 * s3 + 8 * s4 - 3 * s5) * m0
                + (10 * s3 - 15 * s4 + 6 * s5) * p1 + (-4 * s3 + 7 * s4 - 3 * s5) * m1)


class _Track:
    """An accepted chunk in a switching mode: used from ``switch_ns`` to ``until_ns``, fading in
    over ``blend_ns`` from ``prev`` (the plan it replaced)."""

    def __init__(self, traj: ChunkTrajectory, switch_ns: int, until_ns: int,
                 prev: "_Track | None", blend_ns: int) -> None:
        self.traj = traj
        self.switch_ns = switch_ns
        self.until_ns = until_ns
        self.prev = prev
        self.blend_ns = blend_ns

    def value(self, t_ns: int) -> np.ndarray | None:
        """The planned command at ``t_ns``, or None when nothing covers it."""
        if t_ns < self.switch_ns:
            return self.prev.value_or_hold(t_ns) if self.prev is not None else None
        if t_ns > self.until_ns:
            return None
        v = self.traj.sample(t_ns)
        if self.prev is not None and self.blend_ns > 0 and t_ns < self.switch_ns + self.blend_ns:
            old = self.prev.value_or_hold(t_ns)
            if old is not None:
                w = minimum_jerk_ramp((t_ns - self.switch_ns) / self.blend_ns)
                v = (1.0 - w) * old + w * v
        return v

    def value_or_hold(self, t_ns: int) -> np.ndarray | None:
        """As :meth:`value`, but after ``until_ns`` the last planned position (what the arm holds)."""
        return self.value(min(t_ns, self.until_ns))


@dataclass
class _BoundaryWatch:
    """Measures the command jump a switch adds: per tick, the command's step minus the step the
    replaced plan would have made, over the switch window."""

    switch_ns: int
    end_ns: int
    reference: Callable[[int], np.ndarray | None]
    worst: float = 0.0
    seen: bool = False


@dataclass
class ExecutorStats:
    """Counters and recent samples of an :class:`ActionExecutor`."""

    ticks: int = 0
    gap_ticks: int = 0  # ticks with no command after the first command was produced
    pauses: int = 0  # runs of consecutive gap ticks
    chunks_accepted: int = 0
    chunks_rejected: Counter = field(default_factory=Counter)  # reason -> count
    chunk_age_ns: deque = field(default_factory=deque)  # arrival time minus observation stamp
    boundary_jumps: deque = field(default_factory=deque)  # per switch, max |added step| (inf-norm)

    def summary(self) -> dict[str, object]:
        ages = np.asarray(self.chunk_age_ns, dtype=np.float64)
        jumps = np.asarray(self.boundary_jumps, dtype=np.float64)
        return {
            "ticks": self.ticks,
            "gap_ticks": self.gap_ticks,
            "pauses": self.pauses,
            "chunks_accepted": self.chunks_accepted,
            "chunks_rejected": dict(self.chunks_rejected),
            "chunk_age_ms": _describe(ages / 1e6),
            "boundary_jump": _describe(jumps),
        }


def _describe(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {"n": 0}
    return {"n": int(values.size), "mean": float(values.mean()),
            "p50": float(np.percentile(values, 50)), "max": float(values.max())}


class ActionExecutor:
    """Chunks in (:meth:`submit`), one command per servo tick out (:meth:`command`).

    Call :meth:`wants_chunk` each tick and, when it says so, send an observation to the policy
    and call :meth:`note_request`; :meth:`frozen_prefix` gives the actions that will execute while
    that request is being served (for prefix-conditioned sampling on the server).
    """

    def __init__(self, config: ExecutorConfig | None = None) -> None:
        self.config = config or ExecutorConfig()
        self.stats = ExecutorStats(chunk_age_ns=deque(maxlen=self.config.stats_window),
                                   boundary_jumps=deque(maxlen=self.config.stats_window))
        self._action_dim: int | None = None
        self._latencies: deque[int] = deque(maxlen=self.config.latency_window)
        self.reset()

    # -- state -------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every chunk and pending request (episode start, e-stop, reconnect). Stats stay."""
        self._current: _Track | None = None  # switching modes
        self._ensemble: list[tuple[int, _Track]] = []  # temporal ensembling: (arrival seq, track)
        self._seq = 0
        self._latest_obs_ns: int | None = None
        self._latest_dt_ns: int | None = None
        self._requested_at: int | None = None
        self._last_request_ns: int | None = None
        self._last_cmd: np.ndarray | None = None
        self._last_cmd_ns: int | None = None
        self._last_now_ns: int | None = None
        self._in_gap = False
        self._ever_commanded = False
        self._watches: list[_BoundaryWatch] = []

    @property
    def action_dim(self) -> int | None:
        return self._action_dim

    @property
    def latency_estimate_ns(self) -> int:
        """Request-to-arrival latency the executor plans with: the largest recent measurement."""
        return max(self._latencies) if self._latencies else self.config.initial_latency_ns

    # -- chunks in ---------------------------------------------------------------------------

    def submit(self, chunk: ActionChunk, now_ns: int) -> bool:
        """Offer a chunk that arrived at ``now_ns``. Returns False (and counts the reason in
        ``stats.chunks_rejected``) for a chunk that is entirely in the past (``late``), holds a
        non-finite action (``non_finite``) or was computed from an older observation than one
        already accepted (``stale``)."""
        if not isinstance(chunk, ActionChunk):
            raise TypeError(f"submit() expects an ActionChunk, got {type(chunk).__name__}")
        if self._action_dim is None:
            self._action_dim = chunk.action_dim
        elif chunk.action_dim != self._action_dim:
            raise ValueError(f"chunk action dimension {chunk.action_dim} differs from the "
                             f"executor's {self._action_dim}")
        cfg = self.config
        if self._requested_at is not None:
            self._latencies.append(now_ns - self._requested_at)
            self._requested_at = None
        else:
            # No request noted: the observation stamp stands for the request time.
            self._latencies.append(now_ns - chunk.obs_stamp_ns)
        if not np.all(np.isfinite(chunk.actions)):
            return self._reject("non_finite")
        if self._latest_obs_ns is not None and chunk.obs_stamp_ns < self._latest_obs_ns:
            return self._reject("stale")
        switch_ns = max(now_ns + cfg.drop_margin_ns + 1, chunk.start_ns)
        if chunk.end_ns < switch_ns:
            return self._reject("late")

        self.stats.chunks_accepted += 1
        self.stats.chunk_age_ns.append(now_ns - chunk.obs_stamp_ns)
        self._latest_obs_ns = chunk.obs_stamp_ns
        self._latest_dt_ns = chunk.dt_ns
        traj = ChunkTrajectory(chunk, cfg.interpolation)
        self._seq += 1

        if cfg.mode is ExecutionMode.TEMPORAL_ENSEMBLE:
            self._prune_ensemble(now_ns)
            old = list(self._ensemble)
            track = _Track(traj, switch_ns, chunk.end_ns, None, 0)
            self._ensemble.append((self._seq, track))
            if old:
                self._watch(switch_ns, switch_ns, lambda t, old=old: self._ensemble_value(t, old))
            return True

        until_ns = chunk.end_ns
        if cfg.mode is ExecutionMode.RECEDING_HORIZON:
            first = -(-(switch_ns - chunk.start_ns) // chunk.dt_ns)  # first action at or after switch
            last = min(chunk.horizon - 1, first + cfg.execute_steps - 1)
            until_ns = chunk.start_ns + last * chunk.dt_ns
        prev = self._current
        if prev is not None and now_ns >= prev.until_ns and self._last_cmd is not None:
            # The old plan is over; blend from the position the arm is holding.
            prev = _Track(_hold_trajectory(self._last_cmd, now_ns), now_ns, now_ns, None, 0)
        self._current = _Track(traj, switch_ns, until_ns, prev, cfg.blend_ns)
        if prev is not None:
            self._watch(switch_ns, switch_ns + cfg.blend_ns, prev.value_or_hold)
        return True

    def _reject(self, reason: str) -> bool:
        self.stats.chunks_rejected[reason] += 1
        return False

    def _watch(self, switch_ns: int, end_ns: int, reference: Callable[[int], np.ndarray | None]) -> None:
        self._watches.append(_BoundaryWatch(switch_ns, end_ns, reference))

    # -- requests ----------------------------------------------------------------------------

    def note_request(self, now_ns: int) -> None:
        """The caller sent an observation to the policy at ``now_ns``."""
        self._requested_at = now_ns
        self._last_request_ns = now_ns

    def wants_chunk(self, now_ns: int, latency_ns: int | None = None) -> bool:
        """Whether to request the next chunk now. ``latency_ns`` overrides the measured
        request-to-arrival latency (async mode)."""
        cfg = self.config
        if self._requested_at is not None and now_ns - self._requested_at < cfg.request_timeout_ns:
            return False
        if cfg.mode is ExecutionMode.TEMPORAL_ENSEMBLE:
            period = cfg.query_period_ns or self._latest_dt_ns
            return (self._last_request_ns is None or period is None
                    or now_ns - self._last_request_ns >= period)
        if self._current is None:
            return True
        remaining = self._current.until_ns - now_ns
        if cfg.mode is ExecutionMode.RECEDING_HORIZON:
            return remaining <= cfg.request_lead_ns
        latency = self.latency_estimate_ns if latency_ns is None else latency_ns
        if remaining <= latency + cfg.drop_margin_ns + cfg.blend_ns + cfg.request_slack_ns:
            return True
        return cfg.replan_every_ns is not None and now_ns - self._current.switch_ns >= cfg.replan_every_ns

    # -- commands out ------------------------------------------------------------------------

    def planned(self, t_ns: int) -> np.ndarray | None:
        """What the current plan commands at ``t_ns`` if no new chunk arrives (None: nothing)."""
        if self.config.mode is ExecutionMode.TEMPORAL_ENSEMBLE:
            return self._ensemble_value(t_ns, self._ensemble)
        return self._current.value(t_ns) if self._current is not None else None

    def command(self, now_ns: int) -> np.ndarray | None:
        """The command for this servo tick, or None when no valid action covers ``now_ns``
        (the caller holds). Call once per tick: gaps and boundary jumps are counted per call."""
        if self._last_now_ns is not None and now_ns < self._last_now_ns:
            raise ValueError(f"command() time went backwards: {now_ns} < {self._last_now_ns}")
        self._last_now_ns = now_ns
        self.stats.ticks += 1
        if self.config.mode is ExecutionMode.TEMPORAL_ENSEMBLE:
            self._prune_ensemble(now_ns)
        elif self._last_cmd_ns is not None:
            # Free replaced plans whose blend was over by the previous tick (the boundary watch
            # may still look one tick back).
            node = self._current
            while node is not None and node.prev is not None:
                if self._last_cmd_ns >= node.switch_ns + node.blend_ns:
                    node.prev = None
                    break
                node = node.prev
        cmd = self.planned(now_ns)
        self._update_boundary_watches(now_ns, cmd)
        if cmd is None:
            if self._ever_commanded:
                self.stats.gap_ticks += 1
                if not self._in_gap:
                    self.stats.pauses += 1
                self._in_gap = True
            return None
        self._in_gap = False
        self._ever_commanded = True
        self._last_cmd, self._last_cmd_ns = cmd, now_ns
        return cmd

    def frozen_prefix(self, now_ns: int, latency_ns: int, dt_ns: int | None = None) -> np.ndarray:
        """Actions that will execute while a request sent at ``now_ns`` is served: the current
        plan on the new chunk's grid ``now + i * dt`` for every ``i`` with
        ``i * dt <= latency + drop_margin`` (those actions will be in the past when it arrives).
        Shape ``(d, D)``; where the plan has ended, the held position. ``dt_ns`` defaults to the
        latest chunk's step."""
        if latency_ns < 0:
            raise ValueError(f"frozen_prefix latency_ns must be >= 0, got {latency_ns}")
        dt = dt_ns if dt_ns is not None else self._latest_dt_ns
        dim = self._action_dim or 0
        if dt is None or dt <= 0:
            return np.zeros((0, dim))
        d = (latency_ns + self.config.drop_margin_ns) // dt + 1
        rows = []
        for i in range(int(d)):
            v = self._plan_or_hold(now_ns + i * dt)
            if v is None:
                break
            rows.append(v)
        return np.asarray(rows).reshape(len(rows), dim)

    # -- internals ---------------------------------------------------------------------------

    def _plan_or_hold(self, t_ns: int) -> np.ndarray | None:
        v = self.planned(t_ns)
        if v is not None:
            return v
        if self.config.mode is not ExecutionMode.TEMPORAL_ENSEMBLE and self._current is not None \
                and t_ns > self._current.until_ns:
            return self._current.value_or_hold(t_ns)
        return None if self._last_cmd is None else self._last_cmd.copy()

    def _ensemble_value(self, t_ns: int, tracks: list[tuple[int, _Track]]) -> np.ndarray | None:
        covering = [tr for _, tr in tracks if tr.switch_ns <= t_ns <= tr.until_ns]
        if not covering:
            return None
        # Tracks are kept in arrival order, so covering[0] is the oldest (i = 0).
        w = np.exp(-self.config.ensemble_m * np.arange(len(covering)))
        values = np.stack([tr.traj.sample(t_ns) for tr in covering])
        return (w[:, None] * values).sum(axis=0) / w.sum()

    def _prune_ensemble(self, now_ns: int) -> None:
        self._ensemble = [(s, tr) for s, tr in self._ensemble if tr.until_ns >= now_ns]

    def _update_boundary_watches(self, now_ns: int, cmd: np.ndarray | None) -> None:
        if not self._watches:
            return
        keep = []
        prev_cmd, prev_ns = self._last_cmd, self._last_cmd_ns
        for w in self._watches:
            if now_ns >= w.switch_ns and cmd is not None and prev_cmd is not None and prev_ns is not None:
                step = cmd - prev_cmd
                ref_now, ref_prev = w.reference(now_ns), w.reference(prev_ns)
                if ref_now is not None and ref_prev is not None:
                    step = step - (ref_now - ref_prev)
                w.worst = max(w.worst, float(np.max(np.abs(step))))
                w.seen = True
            # Closed at the first measured tick at or after the window's end, so a switch with no
            # blend window is still measured on the tick that crosses it.
            if w.seen and now_ns >= w.end_ns:
                self.stats.boundary_jumps.append(w.worst)
            else:
                keep.append(w)
        # Bounded even if commands never resume (a stream of switches during a long gap).
        self._watches = keep[-64:]


def _hold_trajectory(position: np.ndarray, at_ns: int) -> ChunkTrajectory:
    """A one-waypoint trajectory standing still at ``position``."""
    chunk = ActionChunk(actions=np.asarray(position, dtype=np.float64)[None, :], start_ns=at_ns,
                        dt_ns=1, obs_stamp_ns=at_ns)
    return ChunkTrajectory(chunk, Interpolation.LINEAR)


__all__ = [
    "ActionExecutor",
    "ChunkTrajectory",
    "ExecutionMode",
    "ExecutorConfig",
    "ExecutorStats",
    "Interpolation",
    "minimum_jerk_ramp",
]
