"""Leader arm: a second, unpowered arm that a person moves; its joint angles are the follower's
targets.

The leader's bus is opened with torque off (the joints stay free), read at ``rate_hz`` through the
leader's own calibration, and published as ``action`` (``position`` (D,) float32, meta
``joints`` and ``source: leader``), stamped with the read. Wire it to an arm driver's ``command``
input: the follower's executor and safety layer (velocity/acceleration limits, jump rejection,
command hold time, watchdog) apply to it like to any other source.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from robostack.clock import now_ns
from robostack.drivers.arm.servo_arm import ServoBusParams, open_calibrated_arm
from robostack.drivers.servo.bus import CommunicationError
from robostack.node import Node, Output


@dataclass
class LeaderArmParams(ServoBusParams):
    rate_hz: float = 100.0
    comm_failure_stop_ms: float = 1000.0  # reads failing this long stop the node with an error

    def __post_init__(self) -> None:
        self.check_bus()
        if self.rate_hz <= 0:
            raise ValueError(f"param 'rate_hz' must be > 0, got {self.rate_hz}")


class LeaderArmNode(Node):
    """Publishes a leader arm's joint angles as ``action`` targets (torque off)."""

    outputs = {"action": Output(doc="position (D,) float32 joint targets; meta joints, source")}
    Params = LeaderArmParams

    def setup(self) -> None:
        self.arm = open_calibrated_arm(self.params)
        self.arm.set_torque(False)  # a leader is moved by hand
        self.joint_names = list(self.arm.calibration.names)
        self._failing_since: int | None = None
        self.read_failures = 0
        self.log.info("leader arm: %d joints %s, torque off", len(self.joint_names), self.joint_names)

    def step(self) -> None:
        try:
            positions, stamp = self.arm.read_joint_positions()
        except CommunicationError as exc:
            self.read_failures += 1
            t = now_ns()
            if self._failing_since is None:
                self._failing_since = t
                self.log.warning("leader read failed (%s); the follower holds after its command hold time", exc)
            if (t - self._failing_since) / 1e6 >= self.params.comm_failure_stop_ms:
                raise RuntimeError(f"leader arm {self.name!r}: reads have failed for "
                                   f"{self.params.comm_failure_stop_ms:.0f} ms; last error: {exc}") from exc
            return
        self._failing_since = None
        self.publish("action", {"position": np.asarray(positions, dtype=np.float32)}, stamp_ns=stamp,
                     meta={"joints": self.joint_names, "source": "leader"})

    def close(self) -> None:
        arm = getattr(self, "arm", None)
        if arm is not None:
            arm.close()

    def extra_stats(self) -> dict[str, Any]:
        arm = getattr(self, "arm", None)
        if arm is None:
            return {}
        return {"read_failures": self.read_failures, "bus": arm.bus.stats.as_dict()}
