"""Runs one node in its own process: the step loop, stats, signals and the process entry point
that the launcher starts (``python -m robostack.runtime SPEC_JSON``)."""

from __future__ import annotations

import dataclasses
import gc
import importlib
import json
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import zmq

from robostack.clock import Rate, now_ns
from robostack.metrics import Window
from robostack.node import InputWiring, Node, OutputWiring, Wiring
from robostack.params import ParamError
from robostack.transport import CurveConfig, Publisher

STATS_OUTPUT = "_stats"
EXIT_CONFIG_ERROR = 2


class NodeClassError(ValueError):
    """A ``module:Class`` path that does not name a Node subclass."""


def load_node_class(path: str) -> type[Node]:
    """Import ``package.module:ClassName`` and check it is a :class:`Node` subclass."""
    module_name, sep, class_name = path.partition(":")
    if not sep or not module_name or not class_name:
        raise NodeClassError(f"class {path!r} must look like 'package.module:ClassName'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise NodeClassError(f"class {path!r}: cannot import module {module_name!r}: {exc}") from exc
    cls = getattr(module, class_name, None)
    if cls is None:
        raise NodeClassError(f"class {path!r}: module {module_name!r} has no {class_name!r}")
    if not (isinstance(cls, type) and issubclass(cls, Node)):
        raise NodeClassError(f"class {path!r} is not a robostack Node")
    return cls


@dataclass
class NodeSpec:
    """Everything a node process needs: what to run, its params and its wiring."""

    name: str
    class_path: str
    params: dict[str, Any] = field(default_factory=dict)
    wiring: Wiring = field(default_factory=Wiring)
    log_level: str = "INFO"
    rt_priority: int | None = None  # SCHED_FIFO priority (1-99) for servo-rate loops

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "NodeSpec":
        raw = json.loads(text)

        def curve(d: dict | None) -> CurveConfig | None:
            return CurveConfig(**d) if d else None

        w = raw["wiring"]
        wiring = Wiring(
            inputs={k: InputWiring(**{**v, "curve": curve(v.get("curve"))}) for k, v in w["inputs"].items()},
            outputs={k: OutputWiring(**{**v, "curve": curve(v.get("curve"))}) for k, v in w["outputs"].items()},
            stats_endpoint=w.get("stats_endpoint"),
            stats_period_s=w.get("stats_period_s", 1.0),
        )
        return cls(
            raw["name"], raw["class_path"], raw.get("params", {}), wiring, raw.get("log_level", "INFO"),
            raw.get("rt_priority"),
        )


class NodeRunner:
    """Drives a node: ports, ``setup``, the loop, stats publishing, ``close``."""

    def __init__(self, node: Node, *, period_window: int = 5000, spin_s: float = 0.001) -> None:
        self.node = node
        self.rate_hz = node.rate_hz_of(node.params)
        self.spin_s = spin_s
        self.subscriber_wait_s = 3.0
        self.period_error_us = Window(period_window)
        self.step_ms = Window(2000)
        self.steps = 0
        self.overruns = 0
        self.started_ns = now_ns()
        self._stats_pub: Publisher | None = None
        self._next_stats_ns = 0

    def stop(self, *_: Any) -> None:
        self.node.request_stop()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGINT, self.stop)
        signal.signal(signal.SIGTERM, self.stop)

    def run(self) -> None:
        node = self.node
        node.open_ports()
        w = node.wiring
        if w.stats_endpoint:
            self._stats_pub = Publisher(w.stats_endpoint, f"{node.name}/{STATS_OUTPUT}", src=node.name)
        try:
            # Before setup: a device opened in setup (a camera, a video file) starts its clock,
            # and frames would fall due while we wait.
            missing = node.wait_for_subscribers(self.subscriber_wait_s)
            if missing:
                node.log.warning("starting without all subscribers of: %s", ", ".join(missing))
            node.setup()
            # Objects made during setup live for the whole run: keep them out of the cyclic
            # collector's scans so its pauses stay short in the loop.
            gc.freeze()
            self.publish_stats(now_ns())  # first stats message = "ready"
            if self.rate_hz:
                self._run_periodic(self.rate_hz)
            elif node.free_running:
                while not node.stop_requested:
                    self._do_step()
            else:
                self._run_events()
        finally:
            try:
                node.close()
            finally:
                self.publish_stats(now_ns())
                node.close_ports()
                if self._stats_pub is not None:
                    self._stats_pub.close()

    def _do_step(self) -> None:
        t0 = now_ns()
        self.node.step()
        t1 = now_ns()
        self.steps += 1
        self.step_ms.add((t1 - t0) / 1e6)
        self.node.tick_outputs(t1)
        if t1 >= self._next_stats_ns:
            self.publish_stats(t1)

    def _run_periodic(self, hz: float) -> None:
        rate = Rate(hz, spin_s=self.spin_s)
        coarse_ns = 50_000_000  # sleep in slices so a stop request is seen quickly at low rates
        while not self.node.stop_requested:
            while rate.remaining_ns() > coarse_ns + rate.spin_ns and not self.node.stop_requested:
                time.sleep(coarse_ns / 1e9)
                self.node.tick_outputs(now_ns())
            if self.node.stop_requested:
                break
            lateness = rate.sleep()
            self.period_error_us.add(lateness / 1e3)
            self._do_step()
            self.overruns = rate.stats.overruns

    def _run_events(self) -> None:
        poller = zmq.Poller()
        for sock in self.node.trigger_sockets():
            poller.register(sock, zmq.POLLIN)
        while not self.node.stop_requested:
            if self.node.has_triggered_input():
                self._do_step()
                continue
            t = now_ns()
            self.node.tick_outputs(t)
            if t >= self._next_stats_ns:
                self.publish_stats(t)
            timeout_ms = max(1, min(100, (self._next_stats_ns - t) // 1_000_000))
            if poller.sockets:
                poller.poll(timeout_ms)
            else:
                time.sleep(timeout_ms / 1e3)

    def stats(self, t_ns: int) -> dict[str, Any]:
        node = self.node
        uptime = (t_ns - self.started_ns) / 1e9
        return {
            "node": node.name,
            "class": f"{type(node).__module__}:{type(node).__name__}",
            "pid": os.getpid(),
            "uptime_s": round(uptime, 3),
            "rate_hz_target": self.rate_hz,
            "steps": self.steps,
            "step_rate_hz": round(self.steps / uptime, 3) if uptime > 0 else 0.0,
            "step_ms": self.step_ms.summary(),
            "period_error_us": self.period_error_us.summary(),
            "overruns": self.overruns,
            **node.port_stats(t_ns),
            "extra": node.extra_stats() if hasattr(node, "extra_stats") else {},
        }

    def publish_stats(self, t_ns: int) -> None:
        self._next_stats_ns = t_ns + int(self.node.wiring.stats_period_s * 1e9)
        if self._stats_pub is not None:
            self._stats_pub.publish({}, stamp_ns=t_ns, meta=_json_safe(self.stats(t_ns)))


def _json_safe(value: Any) -> Any:
    """NaN/inf are not JSON: send them as null."""
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item"):  # numpy scalar
        return _json_safe(value.item())
    return value


def set_realtime_priority(priority: int) -> str | None:
    """Run this process under SCHED_FIFO at ``priority``; returns why not, or None on success.

    A servo loop at 500 Hz keeps sub-millisecond timing on a busy machine only with a real-time
    priority (needs root or CAP_SYS_NICE / an rtprio limit)."""
    if not 1 <= priority <= 99:
        return f"rt_priority must be 1..99, got {priority}"
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (PermissionError, OSError, AttributeError) as exc:
        return f"cannot set SCHED_FIFO {priority}: {exc}"
    return None


def _die_with_parent() -> None:
    """Linux: get SIGTERM when the launcher dies, so no node outlives its graph."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    spec = NodeSpec.from_json(argv[0] if argv else os.environ["ROBOSTACK_NODE_SPEC"])
    parent = os.environ.get("ROBOSTACK_LAUNCHER_PID")
    _die_with_parent()
    if parent and os.getppid() != int(parent):  # launcher died before prctl took effect
        return 1
    logging.basicConfig(level=spec.log_level, format="%(levelname)s %(message)s", stream=sys.stderr)
    log = logging.getLogger(spec.name)
    try:
        cls = load_node_class(spec.class_path)
        node = cls(spec.name, spec.params, spec.wiring)
    except (NodeClassError, ParamError) as exc:
        log.error("config error: %s", exc)
        return EXIT_CONFIG_ERROR
    if spec.rt_priority is not None:
        problem = set_realtime_priority(spec.rt_priority)
        if problem:
            log.warning("%s; running with normal scheduling", problem)
    runner = NodeRunner(node)
    runner.install_signal_handlers()
    try:
        runner.run()
    except Exception:
        log.exception("node %s failed", spec.name)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
