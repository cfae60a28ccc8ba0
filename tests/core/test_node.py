import threading
import time
from dataclasses import dataclass

import numpy as np
import pytest

from robostack.node import Input, InputWiring, Node, Output, OutputWiring, Wiring
from robostack.params import ParamError
from robostack.runtime import NodeRunner
from robostack.transport import Publisher, Subscriber, ipc_endpoint


@dataclass
class CounterParams:
    rate_hz: float = 200.0
    stop_after: int = 100


class Counter(Node):
    outputs = {"n": Output()}
    Params = CounterParams

    def setup(self):
        self.i = 0
        self.closed = False

    def step(self):
        self.publish("n", {"i": np.array([self.i])})
        self.i += 1
        if self.i >= self.params.stop_after:
            self.request_stop()

    def close(self):
        self.closed = True


@dataclass
class GainParams:
    gain: float = 2.0


class Gain(Node):
    inputs = {"x": Input(trigger=True, mode="queue")}
    outputs = {"y": Output()}
    Params = GainParams

    def step(self):
        for msg in self.read_all("x"):
            self.publish("y", {"x": msg["x"] * self.params.gain}, stamp_ns=msg.stamp_ns)


def test_periodic_node_steps_at_its_rate_and_closes(tmp_path):
    node = Counter("c", {"rate_hz": 200, "stop_after": 100},
                   Wiring(outputs={"n": OutputWiring(ipc_endpoint(tmp_path, "n"))}))
    runner = NodeRunner(node)
    t0 = time.monotonic()
    runner.run()
    elapsed = time.monotonic() - t0
    assert node.i == 100 and node.closed
    assert 0.45 < elapsed < 1.5  # 100 steps at 200 Hz
    assert runner.stats(time.monotonic_ns())["steps"] == 100


def test_event_node_steps_on_each_input_and_keeps_capture_stamps(tmp_path):
    src = Publisher(ipc_endpoint(tmp_path, "x"), "src/x", src="src")
    out_ep = ipc_endpoint(tmp_path, "y")
    node = Gain("gain", {"gain": 3.0}, Wiring(
        inputs={"x": InputWiring([src.endpoint], "src/x", mode="queue")},
        outputs={"y": OutputWiring(out_ep)},
    ))
    runner = NodeRunner(node)
    thread = threading.Thread(target=runner.run)
    thread.start()
    sink = Subscriber(out_ep, "gain/y", mode="queue")
    got = []
    deadline = time.monotonic() + 5
    i = 0
    while len(got) < 5 and time.monotonic() < deadline:
        src.publish({"x": np.array([float(i)])}, stamp_ns=1000 + i)
        i += 1
        time.sleep(0.02)
        got += sink.receive_all()
    node.request_stop()
    thread.join(2)
    assert not thread.is_alive()
    assert len(got) >= 5
    for m in got:
        assert m["x"][0] == 3.0 * (m.stamp_ns - 1000)  # value and its own stamp travel together
    stats = runner.stats(time.monotonic_ns())
    assert stats["inputs"]["x"]["delivered"] >= 5 and stats["steps"] >= 1


def test_node_stats_are_published_on_the_stats_endpoint(tmp_path):
    stats_ep = ipc_endpoint(tmp_path, "stats")
    sub = Subscriber(stats_ep, "c/_stats", mode="queue")
    node = Counter("c", {"rate_hz": 100, "stop_after": 150},
                   Wiring(outputs={"n": OutputWiring(ipc_endpoint(tmp_path, "n"))}, stats_endpoint=stats_ep,
                          stats_period_s=0.2))
    NodeRunner(node).run()
    msgs = []
    deadline = time.monotonic() + 3
    while not (msgs and msgs[-1].meta["steps"] == 150) and time.monotonic() < deadline:
        msgs += sub.receive_all()
        time.sleep(0.01)
    assert len(msgs) >= 2, "stats should be published periodically, not only at the end"
    last = msgs[-1].meta
    assert last["node"] == "c" and last["steps"] == 150 and last["outputs"]["n"]["sent"] == 150
    assert last["period_error_us"]["n"] > 0


def test_params_are_typed_and_validated():
    with pytest.raises(ParamError, match="rate_hz"):
        Counter("c", {"rate_hz": "fast"})
    with pytest.raises(ParamError, match="unknown param"):
        Counter("c", {"speed": 1})


def test_publishing_to_an_undeclared_output_names_the_declared_ones():
    node = Counter("c")
    with pytest.raises(KeyError, match="'n'"):
        node.publish("m", {})
