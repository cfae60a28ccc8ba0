"""The per-episode failure monitor, and the ``alarm`` message it publishes to the arm driver.

Any holder of a policy's B sampled chunks and its observation embedding drives it: the
in-process :class:`~robostack.policies.failure.monitored_policy.MonitoredPolicy`, the
:class:`~robostack.policies.failure.node.FailureMonitorNode` in a graph, or a policy-client
node calling :meth:`FailureMonitor.update` itself and publishing :func:`alarm_message`::

    monitor = FailureMonitor.from_package(package_dir)
    monitor.reset()
    step = monitor.update(embedding, chunks, shift=executed_steps, t_ns=obs_stamp)
    publish("alarm", alarm_message(step, obs_stamp))   # meta {"alarm": bool, "scores": {...}}

The alarm is latched: once FIPER's rule fires (both normalized scores above 1 at one step) it
stays raised until :meth:`FailureMonitor.reset`, so the arm never resumes on a flickering score.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from robostack import messages
from robostack.policies.failure.ace import ForwardKinematics
from robostack.policies.failure.config import METHODS, SCORES, FailureCalibration, FailureConfigError, method_thresholds, read_block
from robostack.policies.failure.conformal import windowed
from robostack.policies.failure.scorer import FailureScorer
from robostack.policies.failure.trace import EpisodeTrace
from robostack.policies.package import PolicyPackage, load_package

ALARM_TOPIC = "alarm"


@dataclass(frozen=True)
class MonitorStep:
    """One step's scores. ``normalized`` and ``alarms`` are empty without a calibration;
    ``alarms[method]`` is this step's rule, ``alarm`` the monitor's latched alarm."""

    step: int
    raw: Mapping[str, float]
    windowed: Mapping[str, float]
    normalized: Mapping[str, float] = field(default_factory=dict)
    alarms: Mapping[str, bool] = field(default_factory=dict)
    alarm: bool = False

    def to_meta(self) -> dict[str, Any]:
        """JSON-ready summary (NaN as None)."""

        def clean(d: Mapping[str, float]) -> dict[str, float | None]:
            return {k: (None if v != v else round(float(v), 6)) for k, v in d.items()}

        return {"step": self.step, "raw": clean(self.raw), "windowed": clean(self.windowed),
                "normalized": clean(self.normalized), "alarms": dict(self.alarms)}


class FailureMonitor:
    """Stateful per episode: windows each raw score over the calibration's ``window`` steps and
    applies the thresholds; ``alarm_method`` (default FIPER) is the rule whose first alarm
    latches. Without a calibration (``window`` from the argument, default 1) it only records raw
    scores."""

    def __init__(self, scorer: FailureScorer, calibration: FailureCalibration | None = None, window: int | None = None,
                 alarm_method: str = "fiper") -> None:
        if alarm_method not in METHODS:
            raise ValueError(f"unknown alarm method {alarm_method!r}; use one of {sorted(METHODS)}")
        if calibration is not None and method_thresholds(alarm_method, calibration.thresholds) is None:
            raise FailureConfigError(f"the calibration has no thresholds for alarm method {alarm_method!r} "
                                     f"(it has {sorted(calibration.thresholds)}): calibrated before the method existed, or on too few "
                                     f"successes for its level")
        self.scorer = scorer
        self.calibration = calibration
        self.window = window or (calibration.window if calibration is not None else 1)
        self.alarm_method = alarm_method
        self.reset()

    @classmethod
    def from_package(cls, package: PolicyPackage | str | Path, fk: ForwardKinematics | None = None, require_calibration: bool = True,
                     alarm_method: str = "fiper") -> "FailureMonitor":
        pkg = package if isinstance(package, PolicyPackage) else load_package(package)
        block = read_block(pkg.spec)
        calibration = block.calibration if block is not None else None
        if require_calibration and calibration is None:
            raise FailureConfigError(f"{pkg.root}: failure prediction is not calibrated; run `robostack failure calibrate {pkg.root} ...` first")
        return cls(FailureScorer.from_package(pkg, fk), calibration, alarm_method=alarm_method)

    def reset(self, seed: int | None = None) -> None:
        """Start an episode: empty trace, no previous chunks, alarm cleared."""
        self.trace = EpisodeTrace(seed=seed)
        self._previous: np.ndarray | None = None
        self.alarm = False
        self.first_alarm_step: int | None = None

    def update(self, embedding: np.ndarray | None, chunks: np.ndarray, shift: int | None = None, t_ns: int = 0) -> MonitorStep:
        """Score one policy step: ``embedding`` ``(E,)``, ``chunks`` ``(B, H, A)`` raw actions for
        one observation, ``shift`` the actions executed since the previous step's chunks were
        sampled (for STAC; None: no comparison), ``t_ns`` the observation's stamp."""
        chunks = np.asarray(chunks)
        raw = self.scorer.score(embedding, chunks, self._previous, shift)
        self._previous = chunks
        self.trace.append(raw, t_ns)
        k = self.trace.steps - 1
        win = {name: float(windowed(self.trace.array(name)[-self.window :], self.window)[-1]) for name in SCORES}
        normalized: dict[str, float] = {}
        alarms: dict[str, bool] = {}
        if self.calibration is not None:
            th = self.calibration.thresholds
            normalized = {name: win[name] / th[name] for name in SCORES if name in th}
            for method, spec in METHODS.items():
                own = method_thresholds(method, th)
                if own is not None:
                    alarms[method] = bool(spec.combine([win[n] > own[n] for n in spec.scores]))
            if alarms.get(self.alarm_method) and not self.alarm:
                self.alarm, self.first_alarm_step = True, k
        return MonitorStep(k, raw, win, normalized, alarms, self.alarm)


def alarm_message(step: MonitorStep, stamp_ns: int, src: str = "failure_monitor") -> messages.Message:
    """The message for the arm driver's ``alarm`` input: meta ``alarm`` (bool, latched) and
    ``scores`` (normalized per score, plus raw/windowed values and the per-method rules)."""
    meta = step.to_meta()
    return messages.make(ALARM_TOPIC, stamp_ns=stamp_ns, src=src, meta={"alarm": bool(step.alarm), "scores": meta["normalized"] or meta["raw"], "detail": meta})
