"""The node base class: declared inputs, outputs and typed parameters, and a
``setup / step / close`` lifecycle run by :mod:`robostack.runtime`.

A node is periodic when its params have ``rate_hz`` (``step`` runs on a drift-free schedule),
free-running when it sets ``free_running = True`` (``step`` runs back to back and blocks on its
device, e.g. a camera that paces itself), and event-driven otherwise (``step`` runs when a sample
arrives on an input declared ``trigger=True``).
Example::

    @dataclass
    class DoublerParams:
        gain: float = 2.0

    class Doubler(Node):
        '''Multiplies every ``x`` it gets.'''
        inputs = {"x": Input(trigger=True)}
        outputs = {"y": Output()}
        Params = DoublerParams

        def step(self) -> None:
            msg = self.read("x")
            if msg is not None:
                self.publish("y", {"x": msg["x"] * self.params.gain}, stamp_ns=msg.stamp_ns)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Mapping

import numpy as np

from robostack import params as params_mod
from robostack.clock import now_ns, wall_ns
from robostack.metrics import RateMeter, Window
from robostack.transport import CurveConfig, DeliveryMode, Message, Publisher, Subscriber

LatencyClock = Literal["monotonic", "wall"]


@dataclass(frozen=True)
class Input:
    """A declared input. ``trigger``: a sample runs ``step`` (event-driven nodes).
    ``required``: a launch file must wire it."""

    mode: DeliveryMode = "latest"
    queue_size: int = 100
    trigger: bool = False
    required: bool = True
    doc: str = ""


@dataclass(frozen=True)
class Output:
    """A declared output. ``codecs`` maps array names to ``jpeg``/``png`` for slow links."""

    doc: str = ""
    codecs: Mapping[str, str] = field(default_factory=dict)


@dataclass
class InputWiring:
    endpoints: list[str]
    topic: str
    mode: DeliveryMode = "latest"
    queue_size: int = 100
    clock: LatencyClock = "monotonic"
    curve: CurveConfig | None = None


@dataclass
class OutputWiring:
    endpoint: str
    curve: CurveConfig | None = None
    codecs: dict[str, str] = field(default_factory=dict)
    expected_subscribers: int = 0  # the node waits (bounded) for these before its first step
    hwm: int = 1000  # send queue per subscriber (messages)


@dataclass
class Wiring:
    """Where a node's inputs and outputs live; the launcher fills it from the launch file."""

    inputs: dict[str, InputWiring] = field(default_factory=dict)
    outputs: dict[str, OutputWiring] = field(default_factory=dict)
    stats_endpoint: str | None = None
    stats_period_s: float = 1.0


class _InputPort:
    def __init__(self, name: str, wiring: InputWiring) -> None:
        self.name = name
        self.wiring = wiring
        self.sub = Subscriber(
            wiring.endpoints, wiring.topic, mode=wiring.mode, queue_size=wiring.queue_size, curve=wiring.curve
        )
        self.latency_ms = Window(2000)
        self.rate = RateMeter()

    def note(self, msg: Message) -> None:
        t = now_ns()
        self.rate.tick(t)
        if self.wiring.clock == "monotonic":
            self.latency_ms.add((t - msg.stamp_ns) / 1e6)
        else:
            self.latency_ms.add((wall_ns() - msg.wall_ns) / 1e6)


class Node:
    """Base class of every graph node. Subclasses declare ``inputs``, ``outputs`` and a
    ``Params`` dataclass, and override :meth:`setup`, :meth:`step` and :meth:`close`."""

    inputs: ClassVar[dict[str, Input]] = {}
    outputs: ClassVar[dict[str, Output]] = {}
    Params: ClassVar[type] = params_mod.NoParams
    free_running: ClassVar[bool] = False

    def __init__(self, name: str, params: Any = None, wiring: Wiring | None = None) -> None:
        self.name = name
        if params is None or isinstance(params, Mapping):
            params = params_mod.build_params(self.Params, dict(params or {}))
        self.params = params
        self.wiring = wiring or Wiring()
        self.log = logging.getLogger(name)
        self._stop = False
        self._inputs: dict[str, _InputPort] = {}
        self._outputs: dict[str, Publisher] = {}
        self._output_rates: dict[str, RateMeter] = {}

    # ---- declarations
    @classmethod
    def rate_hz_of(cls, params: Any) -> float | None:
        """The step rate, or None for an event-driven or free-running node."""
        if cls.free_running:
            return None
        rate = getattr(params, "rate_hz", None)
        return float(rate) if rate else None

    # ---- lifecycle (override)
    def setup(self) -> None:
        """Open devices, allocate buffers. Runs once in the node's process before the loop."""

    def step(self) -> None:
        """One tick (periodic nodes) or one reaction to a trigger input (event nodes)."""

    def close(self) -> None:
        """Release what ``setup`` took. Runs on shutdown, also after an error."""

    # ---- API for subclasses
    def read(self, name: str) -> Message | None:
        """The next sample of input ``name`` (the newest in ``latest`` mode), or None."""
        port = self._port(name)
        msg = port.sub.receive()
        if msg is not None:
            port.note(msg)
        return msg

    def read_all(self, name: str) -> list[Message]:
        """Every waiting sample of input ``name``, oldest first."""
        port = self._port(name)
        msgs = port.sub.receive_all()
        for msg in msgs:
            port.note(msg)
        return msgs

    def input_alive(self, name: str) -> bool:
        """True while the publisher behind input ``name`` sends data or heartbeats."""
        return self._port(name).sub.publisher_alive()

    def publish(
        self,
        output: str,
        arrays: Mapping[str, np.ndarray],
        *,
        stamp_ns: int | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> Message:
        """Publish on ``output``; pass the capture ``stamp_ns`` of the data (defaults to now)."""
        pub = self._outputs.get(output)
        if pub is None:
            raise KeyError(f"node {self.name!r} has no wired output {output!r}; declared: {sorted(self.outputs)}")
        msg = pub.publish(arrays, stamp_ns=stamp_ns, meta=meta)
        self._output_rates[output].tick(now_ns())
        return msg

    def set_codec(self, output: str, array: str, codec: str) -> None:
        """Send ``array`` of ``output`` as ``codec`` (``jpeg``/``png``; ``raw`` clears it),
        e.g. from a node's ``codec`` param for slow links."""
        pub = self._outputs.get(output)
        if pub is None:
            raise KeyError(f"node {self.name!r} has no wired output {output!r}; declared: {sorted(self.outputs)}")
        if codec == "raw":
            pub.codecs.pop(array, None)
        else:
            pub.codecs[array] = codec

    def request_stop(self) -> None:
        """Ask the runtime to leave the loop after this step."""
        self._stop = True

    @property
    def stop_requested(self) -> bool:
        return self._stop

    def _port(self, name: str) -> _InputPort:
        port = self._inputs.get(name)
        if port is None:
            raise KeyError(f"node {self.name!r} has no wired input {name!r}; declared: {sorted(self.inputs)}")
        return port

    # ---- used by the runtime
    def open_ports(self) -> None:
        for name, w in self.wiring.outputs.items():
            if name not in self.outputs:
                raise KeyError(f"node {self.name!r}: wiring names unknown output {name!r}")
            codecs = {**self.outputs[name].codecs, **w.codecs}
            self._outputs[name] = Publisher(
                w.endpoint, f"{self.name}/{name}", src=self.name, curve=w.curve, codecs=codecs, hwm=w.hwm
            )
            self._output_rates[name] = RateMeter()
        for name, w in self.wiring.inputs.items():
            if name not in self.inputs:
                raise KeyError(f"node {self.name!r}: wiring names unknown input {name!r}")
            self._inputs[name] = _InputPort(name, w)

    def wait_for_subscribers(self, timeout_s: float) -> list[str]:
        """Wait until every output has the subscribers the graph wired to it; returns the
        outputs still missing some after ``timeout_s``."""
        deadline = now_ns() + int(timeout_s * 1e9)
        missing = []
        for name, pub in self._outputs.items():
            want = self.wiring.outputs[name].expected_subscribers
            left = max(0.0, (deadline - now_ns()) / 1e9)
            if want and not pub.wait_for_subscribers(want, left):
                missing.append(f"{name} ({pub.subscribers}/{want})")
        return missing

    def close_ports(self) -> None:
        for pub in self._outputs.values():
            pub.close()
        for port in self._inputs.values():
            port.sub.close()

    def tick_outputs(self, t_ns: int) -> None:
        for pub in self._outputs.values():
            pub.tick(t_ns)

    def trigger_sockets(self) -> list:
        return [p.sub.socket for n, p in self._inputs.items() if self.inputs[n].trigger]

    def has_triggered_input(self) -> bool:
        return any(self._inputs[n].sub.ready() for n in self._inputs if self.inputs[n].trigger)

    def port_stats(self, t_ns: int) -> dict[str, Any]:
        ins = {}
        for name, port in self._inputs.items():
            lat = port.latency_ms.summary()
            ins[name] = {
                "rate_hz": round(port.rate.rate(t_ns), 3),
                "latency_ms_p50": lat["p50"],
                "latency_ms_p99": lat["p99"],
                "latency_ms_max": lat["max"],
                "alive": port.sub.publisher_alive(t_ns),
                **port.sub.stats.as_dict(),
            }
        outs = {
            name: {"sent": pub.stats.sent, "rate_hz": round(self._output_rates[name].rate(t_ns), 3)}
            for name, pub in self._outputs.items()
        }
        return {"inputs": ins, "outputs": outs}
