"""Windows, conformal thresholds and alarms over per-step scores.

Each raw score is summed over the last ``window`` steps. A score's threshold is the conformal
quantile at level ``1 − δ`` of the per-rollout maximum windowed score over M successful
calibration rollouts: the ``⌈(M+1)(1−δ)⌉``-th smallest. A test success exchangeable with the
calibration rollouts then crosses it with probability at most δ. A method alarms at a step when
every score it names exceeds its threshold there (FIPER: rnd AND ace), or, for an ``any``
method, when one does, its k thresholds taken at level δ/k.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping, Sequence

import numpy as np

from robostack.policies.failure.config import METHODS, SCORES, method_thresholds, threshold_key
from robostack.policies.failure.trace import EpisodeTrace

THRESHOLD_FLOOR = 1e-12
"""A score that never rose above 0 in calibration (e.g. identical samples) alarms on any rise."""


class CalibrationError(ValueError):
    """Too few successful rollouts, or traces that cannot be calibrated on."""


def windowed(scores: Sequence[float] | np.ndarray, window: int) -> np.ndarray:
    """Each step's sum of the raw scores over the last ``window`` steps (fewer at the start)."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    x = np.asarray(scores, dtype=np.float64)
    c = np.concatenate([[0.0], np.cumsum(x)])
    lo = np.maximum(np.arange(1, len(x) + 1) - window, 0)
    return c[1:] - c[lo]


def conformal_rank(m: int, delta: float) -> int:
    """``⌈(m+1)(1−δ)⌉``: which order statistic of m calibration values is the threshold."""
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta}")
    # round() first: (m+1)(1-δ) is often an integer that floating point puts a hair above it.
    return int(math.ceil(round((m + 1) * (1 - delta), 9)))


def min_rollouts(delta: float) -> int:
    """The fewest successful calibration rollouts for which the rank is at most M."""
    m = 1
    while conformal_rank(m, delta) > m:
        m += 1
    return m


def conformal_quantile(values: Sequence[float] | np.ndarray, delta: float) -> float:
    """The ``⌈(M+1)(1−δ)⌉``-th smallest of M values."""
    v = np.sort(np.asarray(values, dtype=np.float64))
    k = conformal_rank(len(v), delta)
    if k > len(v):
        raise CalibrationError(
            f"{len(v)} successful calibration rollout(s) cannot give a threshold at δ = {delta:g}: "
            f"it needs at least {min_rollouts(delta)}"
        )
    return float(v[k - 1])


def thresholds_from_traces(
    traces: Iterable[EpisodeTrace], window: int, delta: float, scores: Sequence[str] = SCORES
) -> tuple[dict[str, float], int]:
    """Thresholds per score from the successful traces (others are ignored) and the conformal
    rank; also those of every ``any`` method over ``scores`` at level δ/k (left out when the
    successes are too few for that level: the method is then unavailable)."""
    good = [t for t in traces if t.success is True and t.steps > 0]
    if not good:
        raise CalibrationError("no successful rollout with at least one step to calibrate on")
    maxima: dict[str, list[float]] = {}
    for name in scores:
        maxima[name] = [float(windowed(t.array(name), window).max()) for t in good]
        if not np.all(np.isfinite(maxima[name])):
            raise CalibrationError(f"score {name!r} is missing (NaN) in some calibration rollouts; was the embedding available?")
    out = {name: max(conformal_quantile(maxima[name], delta), THRESHOLD_FLOOR) for name in scores}
    for method, spec in METHODS.items():
        level = spec.level(delta)
        if spec.rule == "any" and all(s in scores for s in spec.scores) and conformal_rank(len(good), level) <= len(good):
            for s in spec.scores:
                out[threshold_key(method, s)] = max(conformal_quantile(maxima[s], level), THRESHOLD_FLOOR)
    return out, conformal_rank(len(good), delta)


def normalized_scores(trace: EpisodeTrace, thresholds: Mapping[str, float], window: int) -> dict[str, np.ndarray]:
    """Windowed score / threshold per step, for every score that has a threshold of its own."""
    return {name: windowed(trace.array(name), window) / thresholds[name] for name in thresholds if name in trace.scores}


def alarm_steps(trace: EpisodeTrace, thresholds: Mapping[str, float], window: int, method: str = "fiper") -> np.ndarray:
    """``(steps,)`` bool: where ``method`` alarms (all of its scores' windowed values above their
    thresholds, or one of them for an ``any`` method). Pass a
    :class:`~robostack.policies.failure.config.FailureCalibration`'s ``thresholds`` and
    ``window``, or ones from :func:`thresholds_from_traces`."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {sorted(METHODS)}")
    own = method_thresholds(method, thresholds)
    if own is None:
        missing = [threshold_key(method, s) for s in METHODS[method].scores if threshold_key(method, s) not in thresholds]
        raise ValueError(f"no threshold for {missing} (thresholds for {sorted(thresholds)})")
    norm = normalized_scores(trace, own, window)
    return np.asarray(METHODS[method].combine([norm[s] > 1.0 for s in METHODS[method].scores]), dtype=bool)


def first_alarm(trace: EpisodeTrace, thresholds: Mapping[str, float], window: int, method: str = "fiper") -> int | None:
    """The first step at which ``method`` alarms, or None."""
    hits = np.flatnonzero(alarm_steps(trace, thresholds, window, method))
    return int(hits[0]) if hits.size else None
