"""The failure monitor as a graph node: it reads the B sampled chunks (and the embedding) of each
policy step, as the policy server replies them, and publishes the arm driver's ``alarm`` message
every step (``docs/failure-prediction.md``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from robostack.node import Input, Node, Output


@dataclass
class FailureMonitorParams:
    package: str = ""  # the policy package (fitted and calibrated)
    method: str = "fiper"  # the alarm rule whose first alarm latches (fiper, rnd_or_stac, rnd, ace, stac)


class FailureMonitorNode(Node):
    """``samples``: one message per policy step with ``actions`` ``(B, H, A)`` (B >= 2), the
    optional ``embedding`` ``(E,)`` and the chunk times in meta (``start_ns``, ``dt_ns``), e.g. the
    policy server's reply to an act request with ``num_samples = B``. ``reset``: any message starts
    a new episode (clears the latched alarm). ``alarm``: meta ``alarm`` (bool) and ``scores``,
    stamped with the step's observation stamp. Malformed samples are counted and dropped."""

    inputs = {
        "samples": Input(mode="queue", trigger=True, doc="actions (B, H, A), embedding (E,); meta start_ns, dt_ns"),
        "reset": Input(mode="queue", trigger=True, required=False, doc="any message: new episode"),
    }
    outputs = {"alarm": Output(doc="meta alarm (bool, latched per episode), scores")}
    Params = FailureMonitorParams

    def setup(self) -> None:
        from robostack.policies.failure.monitor import FailureMonitor

        if not self.params.package:
            raise ValueError(f"node {self.name!r}: param 'package' (a fitted and calibrated policy package) is required")
        self.monitor = FailureMonitor.from_package(self.params.package, alarm_method=self.params.method)
        self._last_start_ns: int | None = None
        self.counts = {"steps": 0, "alarms": 0, "malformed": 0, "resets": 0}

    def step(self) -> None:
        from robostack.policies.failure.monitor import alarm_message

        if "reset" in self._inputs and self.read_all("reset"):
            self.monitor.reset()
            self._last_start_ns = None
            self.counts["resets"] += 1
        for msg in self.read_all("samples"):
            parsed = self._parse(msg)
            if parsed is None:
                continue
            chunks, embedding, start_ns, dt_ns = parsed
            shift = None if self._last_start_ns is None else int(round((start_ns - self._last_start_ns) / dt_ns))
            if shift is not None and shift < 0:
                self._malformed(f"chunk start {start_ns} is older than the previous one")
                continue
            self._last_start_ns = start_ns
            was = self.monitor.alarm
            step = self.monitor.update(embedding, chunks, shift=shift, t_ns=msg.stamp_ns)
            self.counts["steps"] += 1
            if step.alarm and not was:
                self.counts["alarms"] += 1
                self.log.warning("failure predicted at step %d: %s", step.step, step.to_meta()["normalized"])
            out = alarm_message(step, msg.stamp_ns, src=self.name)
            self.publish("alarm", {}, stamp_ns=msg.stamp_ns, meta=out.meta)

    def _parse(self, msg: Any) -> tuple[np.ndarray, np.ndarray | None, int, int] | None:
        actions = msg.arrays.get("actions")
        if actions is None or actions.ndim != 3 or actions.shape[0] < 2 or not np.all(np.isfinite(actions)):
            self._malformed(f"'actions' must be finite (B >= 2, H, A) sampled chunks, got {None if actions is None else actions.shape}")
            return None
        embedding = msg.arrays.get("embedding")
        start_ns, dt_ns = msg.meta.get("start_ns", msg.stamp_ns), msg.meta.get("dt_ns")
        if type(start_ns) is not int or type(dt_ns) is not int or dt_ns <= 0:
            self._malformed(f"meta 'start_ns' and 'dt_ns' must be integers (dt_ns > 0), got {start_ns!r}, {dt_ns!r}")
            return None
        return actions, embedding, start_ns, dt_ns

    def _malformed(self, why: str) -> None:
        self.counts["malformed"] += 1
        if self.counts["malformed"] == 1 or self.counts["malformed"] % 100 == 0:
            self.log.warning("dropped a malformed sample (%d so far): %s", self.counts["malformed"], why)

    def extra_stats(self) -> dict:
        return {**self.counts, "alarm": self.monitor.alarm}
