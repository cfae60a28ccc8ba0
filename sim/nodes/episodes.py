"""Phases of consecutive seeded episodes, on one clock (the wall clock in real-time mode, sim time
in lockstep mode). Pure logic: the sim arm node resets its physics when a ``reset`` event comes.

    reset --(reset time over)--> running --(success held)--> success --> reset (next seed) ...
                                          \\--(time limit)--> timeout --> reset (next seed) ...
    after the last episode: done
"""

from __future__ import annotations

from dataclasses import dataclass

PHASES = ("reset", "running", "success", "timeout", "done")


@dataclass(frozen=True)
class EpisodePlan:
    """How many episodes from which seed, and how long each phase lasts (nanoseconds)."""

    seed_start: int = 0
    episodes: int = 0  # 0: endless
    time_limit_ns: int = 15_000_000_000
    reset_ns: int = 1_000_000_000
    first_reset_ns: int = 1_000_000_000  # the first reset also waits for the rest of the graph
    success_hold_ns: int = 300_000_000

    def __post_init__(self) -> None:
        if self.episodes < 0:
            raise ValueError(f"episodes must be >= 0 (0: endless), got {self.episodes}")
        if self.time_limit_ns <= 0:
            raise ValueError(f"the episode time limit must be > 0, got {self.time_limit_ns} ns")
        if min(self.reset_ns, self.first_reset_ns, self.success_hold_ns) < 0:
            raise ValueError("reset and success-hold times must be >= 0")


@dataclass(frozen=True)
class EpisodeEvent:
    """A phase entered by episode ``index`` (seed ``seed``) at ``t_ns``; ``reason`` says why an
    episode ended early (``next``: ended by a control command)."""

    phase: str
    index: int
    seed: int
    t_ns: int
    reason: str = ""
    elapsed_s: float = 0.0  # how long the episode had been running


class EpisodeSequencer:
    """Tracks the phase of the current episode; :meth:`update` returns the phases entered."""

    def __init__(self, plan: EpisodePlan) -> None:
        self.plan = plan
        self.index = 0
        self.phase = "idle"
        self.phase_since_ns = 0
        self.running_since_ns: int | None = None
        self._success_since_ns: int | None = None
        self.outcomes: list[str] = []  # success/timeout per finished episode

    @property
    def seed(self) -> int:
        return self.plan.seed_start + self.index

    def elapsed_s(self, now_ns: int) -> float:
        """Time since the current episode started running (0 before)."""
        return 0.0 if self.running_since_ns is None else (now_ns - self.running_since_ns) / 1e9

    def start(self, now_ns: int) -> list[EpisodeEvent]:
        """Enter the reset phase of the first episode."""
        self.index = 0
        return [self._enter("reset", now_ns)] + self.update(now_ns, False)

    def update(self, now_ns: int, success: bool) -> list[EpisodeEvent]:
        """Advance on the clock; ``success`` is the task's success check at ``now_ns``."""
        events: list[EpisodeEvent] = []
        while True:
            event = self._next(now_ns, success)
            if event is None:
                return events
            events.append(event)
            success = False  # a new phase starts without a success streak

    def end_now(self, now_ns: int) -> list[EpisodeEvent]:
        """End the current episode as unsuccessful (a ``next`` command) and move on."""
        if self.phase != "running" and self.phase != "reset":
            return []
        events = [self._finish("timeout", now_ns, reason="next")]
        return events + self.update(now_ns, False)

    def restart(self, now_ns: int) -> list[EpisodeEvent]:
        """Start the current episode over from its seed (a ``reset`` command)."""
        if self.phase == "done":
            return []
        return [self._enter("reset", now_ns)] + self.update(now_ns, False)

    def _next(self, now_ns: int, success: bool) -> EpisodeEvent | None:
        plan = self.plan
        if self.phase == "reset":
            wait = plan.first_reset_ns if self.index == 0 and not self.outcomes else plan.reset_ns
            if now_ns - self.phase_since_ns >= wait:
                self.running_since_ns = now_ns
                self._success_since_ns = None
                return self._enter("running", now_ns)
            return None
        if self.phase == "running":
            if success:
                if self._success_since_ns is None:
                    self._success_since_ns = now_ns
                if now_ns - self._success_since_ns >= plan.success_hold_ns:
                    return self._finish("success", now_ns)
            else:
                self._success_since_ns = None
            assert self.running_since_ns is not None
            if now_ns - self.running_since_ns >= plan.time_limit_ns:
                return self._finish("timeout", now_ns)
            return None
        if self.phase in ("success", "timeout"):
            if plan.episodes and self.index + 1 >= plan.episodes:
                return self._enter("done", now_ns)
            self.index += 1
            return self._enter("reset", now_ns)
        return None

    def _finish(self, phase: str, now_ns: int, reason: str = "") -> EpisodeEvent:
        self.outcomes.append(phase)
        return self._enter(phase, now_ns, reason)

    def _enter(self, phase: str, now_ns: int, reason: str = "") -> EpisodeEvent:
        elapsed = self.elapsed_s(now_ns)
        self.phase = phase
        self.phase_since_ns = now_ns
        if phase == "reset":
            self.running_since_ns = None
        return EpisodeEvent(phase, self.index, self.seed, now_ns, reason, elapsed)


__all__ = ["PHASES", "EpisodeEvent", "EpisodePlan", "EpisodeSequencer"]
