"""Runs one node class in its own process (``python -m robostack.runtime SPEC``) with the test
owning the other ends of its ports, as the launcher would wire them."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from robostack.node import InputWiring, OutputWiring, Wiring
from robostack.runtime import NodeSpec
from robostack.transport import Publisher, Subscriber


def short_dir() -> Path:
    """A directory short enough for ipc socket paths (pytest's tmp_path can be too long)."""
    return Path(tempfile.mkdtemp(prefix="rs-sim-", dir="/tmp"))


def endpoint(run_dir: Path, name: str) -> str:
    return f"ipc://{run_dir}/{name}.sock"


class NodeProcess:
    """A node process. ``inputs``: port -> (endpoint, topic, mode); ``outputs``: port -> how many
    subscribers the node waits for (as the launcher tells it) before its first step.
    ``subscribe`` opens a test-side subscriber on one of its outputs."""

    def __init__(self, name: str, class_path: str, params: dict, run_dir: Path,
                 inputs: dict[str, tuple[str, str, str]] | None = None, outputs: dict[str, int] | None = None) -> None:
        self.name = name
        self.run_dir = run_dir
        outputs = outputs or {}
        self.output_endpoints = {o: endpoint(run_dir, f"{name}.{o}") for o in outputs}
        self.stats_endpoint = endpoint(run_dir, f"{name}._stats")
        wiring = Wiring(
            inputs={k: InputWiring([ep], topic, mode=mode) for k, (ep, topic, mode) in (inputs or {}).items()},
            outputs={k: OutputWiring(ep, expected_subscribers=outputs[k]) for k, ep in self.output_endpoints.items()},
            stats_endpoint=self.stats_endpoint, stats_period_s=0.2,
        )
        self.stats_sub = Subscriber(self.stats_endpoint, f"{name}/_stats", mode="latest")
        spec = NodeSpec(name, class_path, params, wiring)
        self.log_path = run_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "robostack.runtime", spec.to_json()],
                                     stdout=self._log, stderr=subprocess.STDOUT, env=dict(os.environ))

    def subscribe(self, output: str, mode: str = "queue", queue_size: int = 10000) -> Subscriber:
        return Subscriber(self.output_endpoints[output], f"{self.name}/{output}", mode=mode, queue_size=queue_size)

    def wait(self, sub: Subscriber, timeout: float = 20.0):
        """The next message on ``sub``; fails with the node's log if none comes in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = sub.receive(timeout_ms=5)
            if msg is not None:
                return msg
            if self.proc.poll() is not None:
                raise AssertionError(f"node exited with {self.proc.returncode}:\n{self.log}")
        raise AssertionError(f"no message in {timeout} s; node log:\n{self.log}")

    def stats(self, timeout: float = 5.0) -> dict:
        """A stats message published after this call (``extra`` holds the node's own numbers)."""
        asked = time.monotonic_ns()
        while True:
            msg = self.wait(self.stats_sub, timeout)
            if msg.stamp_ns >= asked:
                return msg.meta

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        rc = self.proc.wait(timeout=timeout)
        self._log.close()
        self.stats_sub.close()
        return rc

    @property
    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")


def make_publisher(run_dir: Path, name: str, src: str = "test") -> tuple[Publisher, str, str]:
    """A publisher the node's input connects to: (publisher, endpoint, topic)."""
    ep = endpoint(run_dir, name)
    topic = f"{src}/{name}"
    return Publisher(ep, topic, src=src), ep, topic
