"""Failure prediction at run time, after FIPER (Römer et al., NeurIPS 2025); see
``docs/failure-prediction.md``.

API in one paragraph. Per step of an episode the policy samples B chunks ``(B, H, A)`` for one
observation and exposes its observation embedding ``(E,)``. :class:`FailureScorer` turns them
into raw per-step scores ``{"rnd", "ace", "stac"}`` (``FailureScorer.from_package(pkg)`` after
``robostack failure fit``; ``stac`` compares with the previous step's chunks, shifted by the
steps executed in between). :class:`FailureMonitor` is the stateful per-episode wrapper:
``reset()``, then ``update(embedding, chunks, shift) -> MonitorStep`` with ``raw``,
``windowed`` (sum over the last ``window`` steps), ``normalized`` (windowed / threshold),
``alarms`` per method (``fiper`` = rnd AND ace, each score alone, and ``rnd_or_stac`` with
thresholds at δ/2) and ``alarm`` (its ``alarm_method``, FIPER by default, latched until
``reset``); its ``trace`` is an :class:`EpisodeTrace` (per-step raw scores, seed,
success) that serializes to JSON. Offline, :func:`thresholds_from_traces` (conformal quantile of
the per-rollout max windowed score over successful traces) and :func:`first_alarm` recompute
thresholds and detection steps from stored traces for any window/δ, so a benchmark can tune on
one suite and report on another. :class:`MonitoredPolicy` wraps an in-process
:class:`~robostack.policies.onnx_policy.OnnxPolicy` (or a served policy) as an ordinary
``Policy`` whose ``act`` samples B chunks, executes one, updates the monitor and keeps the trace.
:class:`FailureCalibration` is what ``robostack failure calibrate`` stores in ``policy.json``
(``failure_prediction.calibration``); :func:`alarm_message` builds the ``alarm`` message the arm
driver's ``alarm`` input takes.

Module map: ``rnd`` (RND-OE scorer on the exported graph), ``rnd_training`` (torch: fit and
export), ``ace`` (action-chunk entropy, PCA/FK projection), ``stac`` (chunk consistency),
``trace`` (per-episode scores), ``conformal`` (windows, thresholds, alarms over traces),
``metrics`` (TPR/TNR, balanced accuracy, TWA, lead time), ``config`` (the
``failure_prediction`` block of ``policy.json``), ``scorer``, ``monitor``, ``monitored_policy``,
``embeddings`` (encoder over dataset frames), ``fit`` and ``calibration`` (what ``failure fit`` /
``failure calibrate`` store), ``node`` (graph node). The commands and the twin rollouts are in
``robostack.sim.failure_cli`` / ``robostack.sim.failure_rollouts`` (they run the twin, a layer
above). Only numpy and onnxruntime at run time; torch only in ``rnd_training`` and ``fit``.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "FailureScorer": "scorer",
    "FailureMonitor": "monitor",
    "MonitorStep": "monitor",
    "alarm_message": "monitor",
    "ALARM_TOPIC": "monitor",
    "MonitoredPolicy": "monitored_policy",
    "EpisodeTrace": "trace",
    "FailureCalibration": "config",
    "FailureBlock": "config",
    "FailureConfigError": "config",
    "SCORES": "config",
    "METHODS": "config",
    "AlarmMethod": "config",
    "check_seeds_disjoint": "config",
    "read_block": "config",
    "thresholds_from_traces": "conformal",
    "first_alarm": "conformal",
    "alarm_steps": "conformal",
    "windowed": "conformal",
    "conformal_quantile": "conformal",
    "CalibrationError": "conformal",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    # Lazy, so the package loader can validate a policy.json block without importing the monitor.
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
