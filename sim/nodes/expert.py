"""The scripted operator: :class:`~robostack.sim.experts.ScriptedExpert` as a graph node.

:class:`SimExpertNode` reads the arm's ``state`` and the sim arm's ``world`` (privileged object
poses, and the episode index, seed, phase and instruction, which arrive with the very state they
belong to) and publishes what a teleop device publishes: ``action`` (array ``position`` (D,)
float32, meta ``source``, ``joints``), plus, when wired, the expert's whole ``chunk`` (as a
policy client publishes it). It starts over with every episode and commands the arm's home pose
outside the ``running`` phase.

- ``mode: realtime``: runs at ``rate_hz`` on ``CLOCK_MONOTONIC``; the action is the expert's
  target for now.
- ``mode: lockstep``: acts once per new sim-arm state (meta ``tick``) and stamps the action with
  that state's sim-time stamp, which makes the sim arm advance one control period: a
  deterministic ping-pong that runs as fast as the two processes can go.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from robostack.clock import now_ns
from robostack.node import Input, Node, Output
from robostack.sim.nodes.world import WorldSample, world_from_message


@dataclass
class SimExpertParams:
    task: str = "pick_place"
    arm: str = "panda"
    mode: Literal["realtime", "lockstep"] = "realtime"
    rate_hz: float = 50.0  # realtime: actions per second
    chunk_hz: float = 20.0  # the expert's chunk step
    horizon: int = 10
    world_timeout_ms: float = 1000.0  # lockstep: wait this long for the world of a state

    def __post_init__(self) -> None:
        if self.rate_hz <= 0 or self.chunk_hz <= 0:
            raise ValueError("params 'rate_hz' and 'chunk_hz' must be > 0")
        if self.horizon < 1:
            raise ValueError(f"param 'horizon' must be >= 1, got {self.horizon}")


class SimExpertNode(Node):
    """Privileged scripted operator for the twin (see the module docstring)."""

    inputs: ClassVar[dict[str, Input]] = {
        "state": Input(mode="latest", trigger=True, doc="arm state (position)"),
        "world": Input(mode="latest", doc="the sim arm's world (object poses, episode)"),
    }
    outputs: ClassVar[dict[str, Output]] = {
        "action": Output(doc="position (D,) float32 target; meta source, joints"),
        "chunk": Output(doc="actions (H, D); meta start_ns, dt_ns, obs_stamp_ns"),
    }
    Params = SimExpertParams

    @classmethod
    def rate_hz_of(cls, params: Any) -> float | None:
        if params is None or getattr(params, "mode", "realtime") == "lockstep":
            return None
        return float(params.rate_hz)

    def setup(self) -> None:
        from robostack.sim.experts import ScriptedExpert

        p = self.params
        self.expert = ScriptedExpert(p.task, p.arm, control_hz=p.chunk_hz, horizon=p.horizon)
        self.home = self.expert.ik.arm.home_array()
        self.state_msg = None
        self.world: WorldSample | None = None
        self.episode: int | None = None
        self.last_tick: int | None = None
        self.actions = 0
        self.episodes = 0
        self.plan_ms_max = 0.0

    def step(self) -> None:
        msg = self.read("state")
        if msg is not None:
            self.state_msg = msg
        if self.params.mode == "lockstep":
            self._lockstep()
            return
        world_msg = self.read("world")
        if world_msg is not None:
            self.world = self._decode(world_msg) or self.world
        if self.state_msg is None or self.world is None:
            return
        self._act(now_ns())

    def _lockstep(self) -> None:
        state = self.state_msg
        if state is None:
            return
        tick = state.meta.get("tick")
        if type(tick) is not int:
            raise ValueError("lockstep expert: the arm's state has no integer meta 'tick'; "
                             "is the sim arm in lockstep mode?")
        if self.last_tick is not None and tick <= self.last_tick:
            return  # a re-sent state: already answered
        deadline = now_ns() + int(self.params.world_timeout_ms * 1e6)
        while self.world is None or self.world.ack != tick:
            msg = self._port("world").sub.receive(timeout_ms=10)
            if msg is not None:
                self._port("world").note(msg)
                self.world = self._decode(msg) or self.world
            if now_ns() > deadline:
                self.log.warning("no world for tick %d within %.0f ms", tick, self.params.world_timeout_ms)
                return
        self.last_tick = tick
        if self.world.phase == "done":
            return
        self._act(state.stamp_ns)

    def _decode(self, msg: Any) -> WorldSample | None:
        try:
            return world_from_message(msg.arrays, msg.meta, msg.stamp_ns)
        except ValueError as exc:
            self.log.warning("ignored a world message: %s", exc)
            return None

    def _act(self, stamp_ns: int) -> None:
        world, state = self.world, self.state_msg
        assert world is not None and state is not None
        if world.episode != self.episode:
            self.expert.reset(world.seed)
            self.episode = world.episode
            self.episodes += 1
        chunk = None
        if world.phase == "running":
            obs = {"state": np.asarray(state["position"], dtype=np.float64),
                   "instruction": np.array(world.instruction), **world.priv_observation()}
            t0 = now_ns()
            chunk = self.expert.act(obs, stamp_ns)
            self.plan_ms_max = max(self.plan_ms_max, (now_ns() - t0) / 1e6)
            target = chunk.actions[0]
        else:
            target = self.home  # the twin puts the arm home between episodes
        meta = {"source": "expert", "episode": world.episode}
        joints = state.meta.get("joints")
        if isinstance(joints, list):
            meta["joints"] = joints
        if "action" in self._outputs:
            self.publish("action", {"position": np.asarray(target, dtype=np.float32)}, stamp_ns=stamp_ns, meta=meta)
        if chunk is not None and "chunk" in self._outputs:
            from robostack.chunks import chunk_to_message_parts

            arrays, chunk_meta = chunk_to_message_parts(chunk)
            self.publish("chunk", arrays, stamp_ns=chunk.obs_stamp_ns, meta=chunk_meta)
        self.actions += 1

    def extra_stats(self) -> dict[str, Any]:
        return {"actions": getattr(self, "actions", 0), "episodes": getattr(self, "episodes", 0),
                "plan_ms_max": round(getattr(self, "plan_ms_max", 0.0), 2)}


__all__ = ["SimExpertNode", "SimExpertParams"]
