"""Nodes that misbehave on purpose, for supervisor tests (imported by node processes via
PYTHONPATH)."""

from dataclasses import dataclass

from robostack.node import Node


@dataclass
class CrashParams:
    rate_hz: float = 50.0
    crash_after: int = 5


class CrashAfter(Node):
    """Raises after ``crash_after`` steps: a node with a bug."""

    Params = CrashParams

    def setup(self):
        self.n = 0

    def step(self):
        self.n += 1
        if self.n >= self.params.crash_after:
            raise RuntimeError("deliberate failure")
