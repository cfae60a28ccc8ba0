"""The sim arm: the twin's whole scene behind the real arm driver's ports.

:class:`SimArmNode` is an :class:`~robostack.drivers.arm.base.ArmDriverNode` whose hardware hooks
read and write a MuJoCo :class:`~robostack.sim.env.TwinEnv`, so it has exactly the real arm's
ports (``state``, ``applied``; ``chunk``, ``command``, ``estop``, ``alarm``) and the same
executor and safety layer. It also publishes ``world`` (what sim cameras render, see
:mod:`robostack.sim.nodes.world`) and ``episode`` (seeded episodes with phases), and takes an
optional ``control`` input (``reset``, ``next``, and ``step`` in lockstep mode).

Two clocks (param ``mode``):

- ``realtime``: physics follows ``CLOCK_MONOTONIC`` (:class:`~robostack.sim.realtime.RealTimeStepper`)
  and stamps are monotonic, so recorders, executors and policy clients treat it as a real arm.
- ``lockstep``: sim time moves only when a consumer asks; every request (a ``command``, a
  ``chunk``, or ``control`` ``{"command": "step", "steps": n}``) advances whole control periods
  (``1/rate_hz``), and stamps are sim time. The protocol is in ``docs/sim.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from robostack.arm_control import ArmController, applied_meta
from robostack.clock import now_ns
from robostack.drivers.arm.base import ArmDescription, ArmDriverNode, ArmDriverParams
from robostack.node import Input, Output
from robostack.sim.nodes.episodes import EpisodeEvent, EpisodePlan, EpisodeSequencer
from robostack.sim.nodes.world import task_bodies, world_message_parts

PHYSICS_TIMESTEP_S = 0.002
CONTROL_COMMANDS = ("reset", "next", "step")


@dataclass
class SimArmParams(ArmDriverParams):
    """The arm driver's params plus the twin's: scene, episodes and clock mode."""

    task: str = "pick_place"
    arm: str = "panda"
    mode: Literal["realtime", "lockstep"] = "realtime"
    seed_start: int = 0
    episodes: int = 0  # 0: endless
    episode_time_s: float | None = None  # None: the task's own time limit
    reset_time_s: float = 1.0  # realtime: arm at home, objects placed, before each episode runs
    startup_s: float = 2.0  # realtime: the first reset phase (lets cameras/recorder come up)
    success_hold_s: float = 0.3  # success must hold this long to end an episode
    world_every: int = 1  # publish ``world`` every N control ticks (realtime)
    max_catchup_ms: float = 100.0  # realtime: a longer stall is skipped, not replayed as a burst
    republish_ms: float = 500.0  # lockstep: re-send the last state when no request comes
    exit_when_done: bool = False  # end the node (exit 0) after the last episode

    def __post_init__(self) -> None:
        super().__post_init__()
        from robostack.sim.arms import ARM_BUILDERS
        from robostack.sim.tasks import task_names

        if self.arm not in ARM_BUILDERS:
            raise ValueError(f"param 'arm': unknown arm {self.arm!r}; known: {sorted(ARM_BUILDERS)}")
        if self.task not in task_names():
            raise ValueError(f"param 'task': unknown task {self.task!r}; known: {task_names()}")
        substeps = 1.0 / (self.rate_hz * PHYSICS_TIMESTEP_S)
        if abs(substeps - round(substeps)) > 1e-6:
            raise ValueError(f"param 'rate_hz': the control period 1/{self.rate_hz} s must be a whole number of "
                             f"{PHYSICS_TIMESTEP_S} s physics steps (e.g. 50, 100, 125, 250, 500)")
        if self.episodes < 0:
            raise ValueError(f"param 'episodes' must be >= 0 (0: endless), got {self.episodes}")
        if self.episode_time_s is not None and self.episode_time_s <= 0:
            raise ValueError(f"param 'episode_time_s' must be > 0, got {self.episode_time_s}")
        for name in ("reset_time_s", "startup_s", "success_hold_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"param {name!r} must be >= 0, got {getattr(self, name)}")
        if self.world_every < 1:
            raise ValueError(f"param 'world_every' must be >= 1, got {self.world_every}")
        if self.republish_ms <= 0 or self.max_catchup_ms <= 0:
            raise ValueError("params 'republish_ms' and 'max_catchup_ms' must be > 0")


class SimArmNode(ArmDriverNode):
    """A MuJoCo twin behind the arm driver interface (see the module docstring)."""

    inputs: ClassVar[dict[str, Input]] = {
        **ArmDriverNode.inputs,
        "control": Input(mode="queue", required=False,
                         doc="meta command: reset (this episode again) | next (end it) | step (lockstep; meta steps)"),
    }
    outputs: ClassVar[dict[str, Output]] = {
        **ArmDriverNode.outputs,
        "world": Output(doc="qpos, mocap_pos, mocap_quat, object_poses; "
                            "meta arm, task, sim_time_ns, episode, phase, objects"),
        "episode": Output(doc="no arrays; meta seed, task, instruction, episode, "
                              "phase (reset/running/success/timeout/done)"),
    }
    Params = SimArmParams

    def __init__(self, name: str, params: Any = None, wiring: Any = None) -> None:
        super().__init__(name, params, wiring)
        # Lockstep: the node blocks on its request inputs itself, like a camera on its device.
        self.free_running = self.params.mode == "lockstep"

    @classmethod
    def rate_hz_of(cls, params: Any) -> float | None:
        if params is not None and getattr(params, "mode", "realtime") == "lockstep":
            return None
        return super().rate_hz_of(params)

    # ---- hardware hooks --------------------------------------------------------------------
    def open_arm(self) -> ArmDescription:
        from robostack.sim.env import TwinConfig, TwinEnv
        from robostack.sim.realtime import RealTimeStepper

        p = self.params
        self.env = TwinEnv(TwinConfig(task=p.task, arm=p.arm, timestep=PHYSICS_TIMESTEP_S, control_hz=p.rate_hz))
        self.env.reset(p.seed_start)
        self.stepper = RealTimeStepper(self.env, PHYSICS_TIMESTEP_S, clock_ns=now_ns,
                                       max_catchup_s=p.max_catchup_ms / 1e3)
        self._clock_offset_ns = 0
        self._tick = 0
        self._read_stamp: int | None = None
        model = self.env.model
        self._objects = task_bodies(model, self.env.task)
        names = [*self.env.arm.arm_joints, self.env.arm.gripper_joint]
        ranges = np.array([model.joint(j).range for j in names])
        time_limit = p.episode_time_s if p.episode_time_s is not None else self.env.time_limit_s
        lockstep = p.mode == "lockstep"
        self.sequencer = EpisodeSequencer(EpisodePlan(
            seed_start=p.seed_start, episodes=p.episodes, time_limit_ns=int(time_limit * 1e9),
            reset_ns=0 if lockstep else int(p.reset_time_s * 1e9),
            first_reset_ns=0 if lockstep else int(p.startup_s * 1e9),
            success_hold_ns=int(p.success_hold_s * 1e9),
        ))
        self._started = False
        self._last_episode_pub = 0
        self._last_publish_ns = 0
        self._last_applied: tuple[np.ndarray, dict[str, Any], int] | None = None
        self._first_request_ns: int | None = None  # lockstep throughput: wall time of stepping
        self._last_request_ns: int | None = None
        self._stepped_ticks = 0
        return ArmDescription(names, ranges[:, 0], ranges[:, 1])

    def read_joints(self) -> tuple[np.ndarray, np.ndarray | None, int]:
        self.stepper.sync()
        state = self.env.joint_state()
        self._read_stamp = now_ns()
        return state.position, state.velocity, self._read_stamp

    def write_goals(self, positions: np.ndarray) -> None:
        self.env.set_joint_targets(positions)

    def set_torque(self, on: bool) -> None:
        import mujoco

        flag = int(mujoco.mjtDisableBit.mjDSBL_ACTUATION)
        if on:
            self.env.model.opt.disableflags &= ~flag
        else:
            self.env.model.opt.disableflags |= flag

    def close_arm(self) -> None:
        env = getattr(self, "env", None)
        if env is not None:
            env.close()

    def hardware_stats(self) -> dict[str, Any]:
        if not hasattr(self, "sequencer"):
            return {}
        outcomes = self.sequencer.outcomes
        return {
            "mode": self.params.mode,
            "episode": self.sequencer.index,
            "phase": self.sequencer.phase,
            "successes": outcomes.count("success"),
            "timeouts": outcomes.count("timeout"),
            "control_ticks": self._tick,
            "sim_time_s": round(self.sim_now_ns() / 1e9, 4),
            "realtime_dropped_s": round(self.stepper.stats.dropped_s, 4),
            "realtime_max_lag_s": round(self.stepper.stats.max_lag_s, 4),
            "lockstep_ticks_per_s": self._lockstep_rate(),
        }

    def _lockstep_rate(self) -> float | None:
        """Control periods per wall-clock second while consumers were stepping (lockstep)."""
        if self._first_request_ns is None or self._last_request_ns is None or self._stepped_ticks < 2:
            return None
        span = (self._last_request_ns - self._first_request_ns) / 1e9
        return round(self._stepped_ticks / span, 1) if span > 0 else None

    # ---- the loop --------------------------------------------------------------------------
    def sim_now_ns(self) -> int:
        """Sim time since the node started, continuous across episode resets."""
        return self._clock_offset_ns + self.env.time_ns

    def step(self) -> None:
        if self.params.mode == "lockstep":
            self._lockstep_step()
        else:
            self._realtime_step()

    def _realtime_step(self) -> None:
        t = now_ns()
        if not self._started:
            self._started = True
            self.stepper.start()
            self._handle_events(self.sequencer.start(t), t)
        self._handle_control(t)
        self._read_stamp = None
        super().step()  # physics up to now, state, executor + safety, goals, applied
        stamp = self._read_stamp
        if stamp is None:
            return
        self._tick += 1
        if self._tick % self.params.world_every == 0:
            self._publish_world(stamp)
        events = self.sequencer.update(stamp, self._success_now())
        self._handle_events(events, stamp)
        if not events and stamp - self._last_episode_pub >= 500_000_000:
            self._publish_episode(self._current_event(stamp), stamp)  # late joiners learn the phase

    def _lockstep_step(self) -> None:
        if not self._started:
            self._started = True
            t = self.sim_now_ns()
            self._handle_events(self.sequencer.start(t), t)
            self._publish_observation(t)
            return
        steps = self._wait_for_requests(int(self.params.republish_ms))
        t = self.sim_now_ns()
        if steps is None:
            self._publish_observation(t)  # nobody asked: re-send, the unchanged tick says "no news"
            return
        if self._first_request_ns is None:
            self._first_request_ns = now_ns()
        self._drain_inputs(t)
        for _ in range(steps):
            if self.sequencer.phase == "done":
                break
            state = self.env.joint_state()
            out = self.controller.tick(t, state.position)
            sent = self._apply(out, state.position)
            self._last_applied = (sent, applied_meta(out, self.controller.last_source), t)
            self.env.step(self.env.steps_per_control)
            self._tick += 1
            self._stepped_ticks += 1
            t = self.sim_now_ns()
            events = self.sequencer.update(t, self._success_now())
            if events:
                self._handle_events(events, t)
                break  # a request never runs on into the next episode
        self._last_request_ns = now_ns()
        self._publish_observation(t)

    def _wait_for_requests(self, timeout_ms: int) -> int | None:
        """Block until a request arrives; the number of control periods it asks for (0 for a
        reset/next that moves no time), or None after ``timeout_ms`` without one."""
        import zmq

        ports = [n for n in ("command", "chunk", "control") if n in self._inputs]
        if not ports:
            raise RuntimeError(f"sim arm {self.name!r} in lockstep mode needs one of its inputs command, chunk "
                               "or control wired: sim time only advances when asked")
        poller = zmq.Poller()
        for name in ports:
            poller.register(self._port(name).sub.socket, zmq.POLLIN)
        ready = [n for n in ports if self._port(n).sub.ready()]
        if not ready and poller.poll(timeout_ms):
            ready = [n for n in ports if self._port(n).sub.ready()]
        if not ready:
            return None
        steps = 1 if ("command" in ready or "chunk" in ready) else 0
        if "control" in ready:
            steps += self._handle_control(self.sim_now_ns())
        return steps

    def _handle_control(self, t: int) -> int:
        """Apply ``control`` messages; returns the control periods that ``step`` requests ask for."""
        if "control" not in self._inputs:
            return 0
        steps = 0
        for msg in self.read_all("control"):
            command = msg.meta.get("command")
            if command not in CONTROL_COMMANDS:
                self._bad_input("control", f"meta 'command' must be one of {list(CONTROL_COMMANDS)}, got {command!r}")
                continue
            if command == "step":
                n = msg.meta.get("steps", 1)
                if type(n) is not int or n < 1:
                    self._bad_input("control", f"meta 'steps' must be an integer >= 1, got {n!r}")
                    continue
                if self.params.mode != "lockstep":
                    self._bad_input("control", "'step' only applies in lockstep mode (real time moves by itself)")
                    continue
                steps += n
            elif command == "reset":
                self.log.info("control: episode %d starts over", self.sequencer.index)
                self._handle_events(self.sequencer.restart(t), t)
            else:
                self.log.info("control: ending episode %d", self.sequencer.index)
                self._handle_events(self.sequencer.end_now(t), t)
        return steps

    # ---- episodes --------------------------------------------------------------------------
    def _success_now(self) -> bool:
        return self.sequencer.phase == "running" and self.env.is_success()

    def _handle_events(self, events: list[EpisodeEvent], t: int) -> None:
        for event in events:
            if event.phase == "reset":
                self._reset_episode(event.seed)
            if event.phase in ("success", "timeout"):
                self.log.info("episode %d (seed %d): %s after %.2f s%s", event.index, event.seed, event.phase,
                              event.elapsed_s, f" ({event.reason})" if event.reason else "")
            elif event.phase == "done":
                outcomes = self.sequencer.outcomes
                self.log.info("all %d episodes done: %d successes", len(outcomes), outcomes.count("success"))
            self._publish_episode(event, t)
            if event.phase == "done" and self.params.exit_when_done:
                self.request_stop()

    def _reset_episode(self, seed: int) -> None:
        self._clock_offset_ns += self.env.time_ns
        self.env.reset(seed)
        self.stepper.start()
        # The arm was moved by hand, so to speak: a fresh controller ramps from where it is now
        # instead of holding the last goal of the previous episode.
        self.controller = ArmController(self.control_config(self.description))
        if self._torque_on:
            self.set_torque(True)
        self.log.info("episode %d: seed %d, %r", self.sequencer.index, seed, self.env.instruction)

    def _current_event(self, t: int) -> EpisodeEvent:
        seq = self.sequencer
        return EpisodeEvent(seq.phase, seq.index, seq.seed, t, elapsed_s=seq.elapsed_s(t))

    def _publish_episode(self, event: EpisodeEvent, t: int) -> None:
        self._last_episode_pub = t
        if "episode" not in self._outputs:
            return
        meta = {
            "phase": event.phase, "episode": event.index, "seed": event.seed, "task": self.params.task,
            "instruction": self.env.instruction, "episodes": self.params.episodes,
            "elapsed_s": round(event.elapsed_s, 4), "mode": self.params.mode,
        }
        if event.reason:
            meta["reason"] = event.reason
        self.publish("episode", {}, stamp_ns=t, meta=meta)

    # ---- publishing ------------------------------------------------------------------------
    def _publish_world(self, stamp: int) -> None:
        if "world" not in self._outputs:
            return
        seq = self.sequencer
        arrays, meta = world_message_parts(
            self.env.model, self.env.data, arm=self.params.arm, task=self.params.task, objects=self._objects,
            episode=seq.index, seed=seq.seed, phase=seq.phase, instruction=self.env.instruction,
            ack=self._tick if self.params.mode == "lockstep" else None,
        )
        self.publish("world", arrays, stamp_ns=stamp, meta=meta)

    def _publish_observation(self, t: int) -> None:
        """Lockstep: world first, then state (a consumer woken by the state finds the world)."""
        self._publish_world(t)
        state = self.env.joint_state()
        arrays = {"position": state.position.astype(np.float32), "velocity": state.velocity.astype(np.float32)}
        self.publish("state", arrays, stamp_ns=t, meta={"joints": self.joint_names, "tick": self._tick})
        if self._last_applied is not None and "applied" in self._outputs:
            sent, meta, stamp = self._last_applied
            self.publish("applied", {"position": np.asarray(sent, dtype=np.float32)}, stamp_ns=stamp, meta=meta)
            self._last_applied = None
        self._log_safety_events()


__all__ = ["SimArmNode", "SimArmParams"]
