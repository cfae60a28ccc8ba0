"""The policy client node: the arm side of the deploy graph (``launch/deploy.yaml``).

:class:`PolicyClientNode` turns camera frames and the arm's state into observations stamped with
their capture time, asks a policy server for action chunks (:class:`~robostack.policies.client.ServedPolicy`
in a worker thread, so the node's loop never waits on the network) and publishes each chunk for
the arm driver's ``chunk`` input. It decides *when* to ask with a shadow
:class:`~robostack.executor.ActionExecutor` configured like the arm's and fed the chunks it sent:
the shadow says when the plan runs short (``wants_chunk``) and gives the frozen prefix (the
planned actions that will execute while a request is served) for prefix-conditioned sampling.

- ``mode: realtime``: the node runs at ``rate_hz`` on ``CLOCK_MONOTONIC``; one request in
  flight; a request without an answer within ``timeout_ms`` is counted and the next may go. A
  server that falls silent means no chunks, so the arm's watchdog holds and then stops.
- ``mode: lockstep`` (the twin's lockstep clock): one answer per new sim-arm tick. On the ticks
  where the sim cameras render (their ``fps`` grid on sim time) the node observes, and asks when
  the shadow wants a chunk, waiting for the answer (up to ``lockstep_wait_ms``) — sim time stands
  still meanwhile; the chunk (or, without one, a ``control`` ``step`` message) advances the arm
  one period. Same seeds, same run.

With the twin's ``episode`` topic wired, the node starts over with every episode (history,
shadow executor, sampling seed ``sampling_seed + episode seed``), asks only while an episode is
``running`` and takes the instruction from it; otherwise it always runs, with ``instruction``.

With ``failure_package`` (the policy package on this host, calibrated by ``robostack failure
calibrate``) every request samples the calibrated ``B`` chunks; a
:class:`~robostack.policies.failure.FailureMonitor` scores them with the observation embedding
(RND + ACE, windowed, conformal thresholds) and the node publishes ``failure`` (scores and the
latched ``alarm``) for the arm driver's ``alarm`` input.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np

from robostack.chunks import ActionChunk, chunk_from_message, chunk_to_message_parts
from robostack.clock import now_ns
from robostack.executor import ActionExecutor, ExecutorConfig
from robostack.messages import Message
from robostack.metrics import Window
from robostack.node import Input, Node, Output

MAX_CAMERAS = 4
_LOG_EVERY_NS = 5_000_000_000


@dataclass
class PolicyClientParams:
    """Where the server is, which cameras feed which policy inputs, and how the arm executes."""

    server: str = "tcp://127.0.0.1:5555"  # the policy server's endpoint (its ``bind``)
    cameras: list[str] = field(default_factory=list)  # camera0.. feed policy inputs image/<name>
    mode: Literal["realtime", "lockstep"] = "realtime"
    rate_hz: float = 100.0  # realtime: loop rate (new observations, answers)
    timeout_ms: float = 1000.0  # a request unanswered this long is counted as a timeout
    connect_timeout_s: float = 120.0  # first contact: the server may still be warming up
    # The arm's executor, mirrored to decide when to ask and what the frozen prefix is.
    executor_mode: Literal["async", "receding_horizon", "temporal_ensemble"] = "async"
    drop_margin_ms: float = 10.0
    blend_ms: float = 100.0
    execute_steps: int = 8
    latency_ms: float | None = None  # planning latency (None: the shadow executor's measurement)
    prefix: bool = False  # send the frozen prefix with every request (prefix-conditioned sampling)
    failure_package: str = ""  # the package on this host, for failure prediction (its RND graph, calibration)
    failure_method: str = "fiper"  # the rule whose first alarm latches (fiper, rnd_or_stac, rnd, ace, stac)
    num_samples: int | None = None  # chunks sampled per request (None: the calibrated B, else 1)
    sampling_seed: int | None = None  # reproducible noise: per episode, this + the episode's seed
    instruction: str = ""  # the task text when no episode topic gives one
    camera_fps: float | None = None  # lockstep: the sim cameras' frame grid (None: the policy's fps)
    lockstep_wait_ms: float = 10000.0  # lockstep: longest wait for a frame, an episode message or an answer
    curve_secret: str | None = None  # CURVE to a tcp server: this client's secret key file
    server_public: str | None = None  # ... and the server's public key file

    def __post_init__(self) -> None:
        if len(self.cameras) > MAX_CAMERAS:
            raise ValueError(f"param 'cameras': at most {MAX_CAMERAS} cameras, got {len(self.cameras)}")
        for name in ("rate_hz", "timeout_ms", "connect_timeout_s", "lockstep_wait_ms"):
            if getattr(self, name) <= 0:
                raise ValueError(f"param {name!r} must be > 0, got {getattr(self, name)}")
        if self.drop_margin_ms < 0 or self.blend_ms < 0:
            raise ValueError("params 'drop_margin_ms' and 'blend_ms' must be >= 0")
        if self.execute_steps < 1:
            raise ValueError(f"param 'execute_steps' must be >= 1, got {self.execute_steps}")
        if self.num_samples is not None and self.num_samples < 1:
            raise ValueError(f"param 'num_samples' must be >= 1, got {self.num_samples}")
        if self.camera_fps is not None and self.camera_fps <= 0:
            raise ValueError(f"param 'camera_fps' must be > 0, got {self.camera_fps}")
        if (self.curve_secret is None) != (self.server_public is None):
            raise ValueError("params 'curve_secret' and 'server_public' go together (CURVE needs both)")


@dataclass
class _Job:
    """Work for the request thread, done in order: ``reset``, ``observe`` or ``act``."""

    kind: Literal["reset", "observe", "act"]
    episode: int = 0
    obs: dict[str, np.ndarray] | None = None
    stamp_ns: int = 0
    seed: int | None = None
    num_samples: int = 1
    prefix: np.ndarray | None = None


@dataclass
class _Answer:
    """What came back for an ``act`` job: a chunk, or the reason there is none."""

    episode: int
    obs_stamp_ns: int
    round_trip_ms: float
    chunk: ActionChunk | None = None
    samples: np.ndarray | None = None  # (B, H, A) when B > 1
    embedding: np.ndarray | None = None
    error: tuple[str, str] | None = None  # (kind, detail)


class _Stopping(Exception):
    """The node was asked to stop while it waited on the twin (lockstep)."""


class _RequestThread(threading.Thread):
    """Owns the :class:`ServedPolicy` (its socket and observation history): jobs in, answers out."""

    def __init__(self, params: PolicyClientParams, src: str) -> None:
        super().__init__(name="policy-requests", daemon=True)
        self.params = params
        self.src = src
        self.jobs: queue.Queue[_Job | None] = queue.Queue()
        self.answers: queue.Queue[_Answer] = queue.Queue()
        self.ready = threading.Event()
        self.info: dict[str, Any] = {}
        self.failure: BaseException | None = None

    def run(self) -> None:
        from robostack.policies.client import ServedPolicy, ServedPolicyError
        from robostack.transport import CurveConfig

        p = self.params
        curve = (CurveConfig(secret_key_file=p.curve_secret, server_public_key_file=p.server_public)
                 if p.curve_secret else None)
        try:
            policy = ServedPolicy(p.server, timeout_s=p.connect_timeout_s, curve=curve, src=self.src)
        except ServedPolicyError as exc:
            self.failure = exc
            self.ready.set()
            return
        # Lockstep: sim time stands still while the server works, so a slow answer costs nothing
        # and giving up on it would make the run depend on the machine's load.
        policy.timeout_s = (p.lockstep_wait_ms if p.mode == "lockstep" else p.timeout_ms) / 1e3
        self.info = policy.info
        self.ready.set()
        try:
            while (job := self.jobs.get()) is not None:
                if job.kind == "reset":
                    policy.reset(job.seed)
                elif job.kind == "observe":
                    policy.observe(job.obs, job.stamp_ns)
                else:
                    self.answers.put(self._act(policy, job, ServedPolicyError))
        except Exception as exc:  # noqa: BLE001 - the node raises it in its own loop
            self.failure = exc
        finally:
            policy.close()

    @staticmethod
    def _act(policy: Any, job: _Job, error_type: type[Exception]) -> _Answer:
        t0 = time.perf_counter()
        try:
            reply = policy.wait(policy.send(job.obs, job.stamp_ns, num_samples=job.num_samples, prefix=job.prefix))
        except error_type as exc:
            return _Answer(job.episode, job.stamp_ns, 1e3 * (time.perf_counter() - t0),
                           error=(getattr(exc, "kind", "error"), getattr(exc, "detail", str(exc))))
        except ValueError as exc:  # an observation the client could not even encode
            return _Answer(job.episode, job.stamp_ns, 1e3 * (time.perf_counter() - t0), error=("observation", str(exc)))
        round_trip = 1e3 * (time.perf_counter() - t0)
        actions = np.asarray(reply.arrays["actions"])
        samples = actions if actions.ndim == 3 else None
        chunk = chunk_from_message({"actions": actions[0] if samples is not None else actions}, reply.meta)
        return _Answer(job.episode, job.stamp_ns, round_trip, chunk=chunk, samples=samples,
                       embedding=policy.last_embedding)


class PolicyClientNode(Node):
    """Observations to a policy server, its chunks to the arm (see the module docstring)."""

    inputs: ClassVar[dict[str, Input]] = {
        "state": Input(mode="latest", doc="arm state: position (D,) feeds the policy input 'state'"),
        **{f"camera{i}": Input(mode="latest", required=False, doc="camera frames: image (H, W, 3) uint8")
           for i in range(MAX_CAMERAS)},
        "episode": Input(mode="queue", required=False, doc="the twin's episodes: phase, episode, seed, instruction"),
    }
    outputs: ClassVar[dict[str, Output]] = {
        "chunk": Output(doc="actions (H, D); meta start_ns, dt_ns, obs_stamp_ns, round_trip_ms, timing, episode"),
        "control": Output(doc="lockstep: meta command 'step', steps 1 when a tick passes without a chunk"),
        "failure": Output(doc="meta alarm (bool), scores; for the arm driver's alarm input"),
    }
    Params = PolicyClientParams

    def __init__(self, name: str, params: Any = None, wiring: Any = None) -> None:
        super().__init__(name, params, wiring)
        # Lockstep: the node blocks on the arm's state itself, like the sim arm on its requests.
        self.free_running = self.params.mode == "lockstep"

    @classmethod
    def rate_hz_of(cls, params: Any) -> float | None:
        if params is not None and getattr(params, "mode", "realtime") == "lockstep":
            return None
        return float(params.rate_hz) if params is not None else None

    # ---- lifecycle ---------------------------------------------------------------------------
    def setup(self) -> None:
        p = self.params
        self.camera_inputs = [f"camera{i}" for i in range(MAX_CAMERAS) if f"camera{i}" in self._inputs]
        if len(p.cameras) != len(self.camera_inputs):
            raise ValueError(f"param 'cameras' names {len(p.cameras)} cameras but {len(self.camera_inputs)} camera "
                             f"inputs are wired ({self.camera_inputs})")
        self.image_names = {inp: f"image/{cam}" for inp, cam in zip(self.camera_inputs, p.cameras)}
        self.requests = _RequestThread(p, src=self.name)
        self.requests.start()
        self.connected = False
        self.monitor = None
        self.num_samples = p.num_samples or 1
        self.episode_index = 0
        self.episode_seed: int | None = None
        self.episode_start_ns = 0
        self.instruction = p.instruction
        self.running = "episode" not in self._inputs  # without the twin's episodes: always on
        self.phase = ""
        self.episodes_seen: dict[int, dict[str, Any]] = {}
        self.shadow = ActionExecutor(self._executor_config())
        self.in_flight = False
        self.frames: dict[str, Message] = {}
        self.states: deque[Message] = deque(maxlen=64)
        self.last_obs_stamp: int | None = None
        self.last_tick: int | None = None
        self.frame_origin_ns: int | None = None
        self.next_frame_ns: int | None = None
        self.counts: Counter = Counter()
        self.errors: Counter = Counter()
        self.round_trip_ms = Window(2000)
        self.obs_to_chunk_ms = Window(2000)
        self._logged_ns: dict[str, int] = {}

    def _executor_config(self) -> ExecutorConfig:
        p = self.params
        ms = lambda v: int(round(v * 1e6))  # noqa: E731
        # The shadow gives up on a request when the request thread does, so the next one may go.
        return ExecutorConfig(mode=p.executor_mode, drop_margin_ns=ms(p.drop_margin_ms), blend_ns=ms(p.blend_ms),
                              execute_steps=p.execute_steps, request_timeout_ns=ms(p.timeout_ms))

    def close(self) -> None:
        requests = getattr(self, "requests", None)
        if requests is not None:
            requests.jobs.put(None)
            requests.join(timeout=2.0)

    def extra_stats(self) -> dict[str, Any]:
        if not hasattr(self, "counts"):
            return {}
        return {
            "connected": self.connected,
            "policy": self.requests.info.get("name"),
            "episode": self.episode_index,
            "running": self.running,
            "requests": self.counts["requests"],
            "chunks": self.counts["chunks"],
            "errors": dict(self.errors),
            "round_trip_ms": self.round_trip_ms.summary(),
            "obs_to_chunk_ms": self.obs_to_chunk_ms.summary(),
            "num_samples": self.num_samples,
            "failure_monitor": self.monitor is not None,
            "alarms": self.counts["alarms"],
        }

    # ---- the loop ----------------------------------------------------------------------------
    def step(self) -> None:
        if not self.connected and not self._connect():
            return
        if self.requests.failure is not None:
            raise RuntimeError(f"policy request thread failed: {self.requests.failure!r}")
        if self.params.mode == "lockstep":
            if self.last_tick is None:
                self._wait_for_the_arm()
            try:
                self._lockstep_step()
            except _Stopping:
                return
        else:
            self._realtime_step()

    def _wait_for_the_arm(self) -> None:
        """Lockstep: an answer sent before the arm subscribed is lost, and the arm would wait for
        it forever (its re-sent state is no new tick). The runtime's wait for subscribers is
        bounded; on a loaded machine the arm may still be starting."""
        for name in ("chunk", "control"):
            pub = self._outputs.get(name)
            if pub is not None and not pub.wait_for_subscribers(1, self.params.lockstep_wait_ms / 1e3):
                raise RuntimeError(f"lockstep: nobody subscribed to {name} within {self.params.lockstep_wait_ms:.0f} ms; "
                                   "wire it to the sim arm")

    def _connect(self) -> bool:
        """Once the request thread reached the server: check the policy's inputs against ours."""
        if not self.requests.ready.wait(0.1 if self.params.mode == "lockstep" else 0.0):
            return False
        if self.requests.failure is not None:
            raise RuntimeError(f"no policy server at {self.params.server}: {self.requests.failure}")
        info = self.requests.info
        inputs = {i["name"]: i for i in info["inputs"]}
        images = sorted(n for n, i in inputs.items() if i["kind"] == "image")
        missing = sorted(set(images) - set(self.image_names.values()))
        if missing:
            raise ValueError(f"the policy {info.get('name')!r} reads {images}, but no camera feeds {missing}: "
                             f"wire camera inputs and name them in param 'cameras' (now {self.params.cameras})")
        vectors = sorted(n for n, i in inputs.items() if i["kind"] == "vector" and n != "state")
        if vectors:
            raise ValueError(f"the policy {info.get('name')!r} reads vector inputs {vectors}; this node provides "
                             "only 'state' (the arm's joint positions)")
        self.dt_ns = int(round(1e9 / float(info["fps"])))
        self.horizon = int(info["action_horizon"])
        self.frame_ns = int(round(1e9 / (self.params.camera_fps or float(info["fps"]))))
        self._setup_failure_monitor()
        self.connected = True
        self.log.info("policy %r from %s: %s, %d-step chunks at %.0f Hz, %d sample(s) per request",
                      info.get("name"), self.params.server, images, self.horizon, float(info["fps"]), self.num_samples)
        return True

    def _setup_failure_monitor(self) -> None:
        """Failure prediction runs here, on the scores of the B chunks each request samples."""
        if not self.params.failure_package:
            return
        from robostack.policies.failure.monitor import FailureMonitor

        self.monitor = FailureMonitor.from_package(self.params.failure_package, alarm_method=self.params.failure_method)
        assert self.monitor.calibration is not None
        if self.params.num_samples is None:
            self.num_samples = self.monitor.calibration.num_samples
        self.last_scored_ns: int | None = None

    # ---- real time ---------------------------------------------------------------------------
    def _realtime_step(self) -> None:
        t = now_ns()
        self._episodes_realtime()
        self._take_answers(t)
        msg = self.read("state")
        if msg is not None:
            self.states.append(msg)
        for inp in self.camera_inputs:
            frame = self.read(inp)
            if frame is not None:
                self.frames[inp] = frame
        self.shadow.command(t)
        observation = self._new_observation()
        if observation is None or not self.running:
            return
        stamp, obs = observation
        if not self.in_flight and self.shadow.wants_chunk(t, self._latency_ns()):
            self._send(obs, stamp, t)
        else:
            self.requests.jobs.put(_Job("observe", self.episode_index, obs, stamp))

    def _episodes_realtime(self) -> None:
        if "episode" not in self._inputs:
            return
        for msg in self.read_all("episode"):
            meta = msg.meta
            index, phase = meta.get("episode"), meta.get("phase")
            if type(index) is not int or not isinstance(phase, str):
                self.counts["episode_malformed"] += 1
                continue
            # The twin repeats the phase twice a second; a new index or a re-entered reset
            # (the episode started over) is a new start.
            if index != self.episode_index or self.episode_seed is None or (phase == "reset" and self.phase != "reset"):
                self._start_episode(meta, msg.stamp_ns)
            self.phase = phase
            self.running = phase == "running"

    def _take_answers(self, t: int) -> None:
        while True:
            try:
                answer = self.requests.answers.get_nowait()
            except queue.Empty:
                return
            self._use_answer(answer, t)

    def _new_observation(self) -> tuple[int, dict[str, np.ndarray]] | None:
        """The newest complete observation (a frame from every camera, the state nearest the
        newest frame), if it is newer than the last one; frames from before the episode started
        do not count."""
        if len(self.frames) < len(self.camera_inputs) or not self.states:
            return None
        stamps = [self.frames[inp].stamp_ns for inp in self.camera_inputs]
        stamp = max(stamps) if stamps else self.states[-1].stamp_ns
        if min(stamps, default=stamp) < self.episode_start_ns:
            return None
        if self.last_obs_stamp is not None and stamp <= self.last_obs_stamp:
            return None
        state = min(self.states, key=lambda s: abs(s.stamp_ns - stamp))
        self.last_obs_stamp = stamp
        return stamp, self._observation(state, {inp: self.frames[inp] for inp in self.camera_inputs})

    def _latency_ns(self) -> int | None:
        return None if self.params.latency_ms is None else int(self.params.latency_ms * 1e6)

    # ---- lockstep ----------------------------------------------------------------------------
    def _lockstep_step(self) -> None:
        msg = self._port("state").sub.receive(timeout_ms=100)
        if msg is None:
            return
        self._port("state").note(msg)
        tick = msg.meta.get("tick")
        if type(tick) is not int:
            raise ValueError("lockstep policy client: the arm's state has no integer meta 'tick'; "
                             "is the sim arm in lockstep mode?")
        if self.last_tick is not None and tick <= self.last_tick:
            return  # a re-sent state: already answered
        self.last_tick = tick
        t = msg.stamp_ns
        published = False
        if self._frame_due(t):
            frames = self._lockstep_frames(t)
            if "episode" in self._inputs:
                # Sim frames name the episode of the world they show: exact, unlike the order in
                # which two topics arrive.
                index = next(iter(frames.values())).meta.get("episode") if frames else None
                index = index if type(index) is int else self.episode_index
                if self.episode_seed is None or index != self.episode_index:
                    self._lockstep_episode(index)
            if self.running:
                obs = self._observation(msg, frames)
                if not self.in_flight and self.shadow.wants_chunk(t, self._latency_ns()):
                    self._send(obs, t, t)
                    published = self._use_answer(self._lockstep_answer(), t)
                else:
                    self.requests.jobs.put(_Job("observe", self.episode_index, obs, t))
        self.shadow.command(t)
        if not published:
            self.publish("control", {}, stamp_ns=t, meta={"command": "step", "steps": 1})

    def _lockstep_answer(self) -> _Answer:
        """Wait for the answer: sim time stands still meanwhile, so latency costs no sim time."""
        deadline = now_ns() + int((self.params.lockstep_wait_ms + 5000.0) * 1e6)
        while True:
            try:
                return self.requests.answers.get(timeout=0.1)
            except queue.Empty:
                if self.requests.failure is not None or not self.requests.is_alive():
                    raise RuntimeError(f"policy request thread failed: {self.requests.failure!r}") from None
                if self.stop_requested:
                    raise _Stopping from None
                if now_ns() > deadline:
                    raise RuntimeError("lockstep: no answer from the request thread") from None

    def _frame_due(self, t: int) -> bool:
        """Whether the lockstep sim cameras render the world of sim time ``t``: the same rule as
        theirs (the first world, then the next point of their fps grid)."""
        if self.next_frame_ns is not None and t < self.next_frame_ns:
            return False
        if self.frame_origin_ns is None:
            self.frame_origin_ns = t
        k = (t - self.frame_origin_ns) // self.frame_ns + 1
        self.next_frame_ns = self.frame_origin_ns + k * self.frame_ns
        return True

    def _lockstep_frames(self, t: int) -> dict[str, Message]:
        frames: dict[str, Message] = {}
        deadline = now_ns() + int(self.params.lockstep_wait_ms * 1e6)
        for inp in self.camera_inputs:
            port = self._port(inp)
            while inp not in frames:
                frame = port.sub.receive(timeout_ms=10)
                if frame is not None:
                    port.note(frame)
                    if frame.stamp_ns == t:
                        frames[inp] = frame
                    elif frame.stamp_ns > t:
                        raise RuntimeError(f"lockstep: {inp} sent a frame of sim time {frame.stamp_ns} while waiting "
                                           f"for {t}; do the cameras' fps and param 'camera_fps' agree?")
                elif self.stop_requested:
                    raise _Stopping
                elif now_ns() > deadline:
                    raise RuntimeError(f"lockstep: no frame of sim time {t} from {inp} within "
                                       f"{self.params.lockstep_wait_ms:.0f} ms; wire the cameras' world input with "
                                       "mode queue and give them the fps of param 'camera_fps'")
        return frames

    def _lockstep_episode(self, index: int) -> None:
        """Wait for the episode message of ``index`` (it is sent before that episode's first world)."""
        deadline = now_ns() + int(self.params.lockstep_wait_ms * 1e6)
        port = self._port("episode")
        while index not in self.episodes_seen:
            msg = port.sub.receive(timeout_ms=10)
            if msg is not None:
                port.note(msg)
                if type(msg.meta.get("episode")) is int:
                    self.episodes_seen[msg.meta["episode"]] = dict(msg.meta)
                    if msg.meta.get("phase") == "done":
                        self.running = False
                        return
            elif self.stop_requested:
                raise _Stopping
            elif now_ns() > deadline:
                raise RuntimeError(f"lockstep: no episode message for episode {index}")
        meta = self.episodes_seen[index]
        self._start_episode(meta, 0)
        self.running = meta.get("phase") in ("reset", "running")

    # ---- shared ------------------------------------------------------------------------------
    def _start_episode(self, meta: dict[str, Any], stamp_ns: int) -> None:
        seed = meta.get("seed")
        self.episode_index = int(meta.get("episode", 0))
        self.episode_seed = seed if type(seed) is int else 0
        self.episode_start_ns = stamp_ns
        if isinstance(meta.get("instruction"), str) and meta["instruction"]:
            self.instruction = meta["instruction"]
        base = self.params.sampling_seed
        self.requests.jobs.put(_Job("reset", self.episode_index, seed=None if base is None else base + self.episode_seed))
        self.shadow.reset()
        self.in_flight = False
        self.frames.clear()
        self.last_obs_stamp = None
        if self.monitor is not None:
            self.monitor.reset(self.episode_seed)
            self.last_scored_ns = None
        self.counts["episodes"] += 1

    def _observation(self, state: Message, frames: dict[str, Message]) -> dict[str, np.ndarray]:
        obs = {self.image_names[inp]: frame["image"] for inp, frame in frames.items()}
        obs["state"] = np.asarray(state["position"], dtype=np.float32)
        obs["instruction"] = np.array(self.instruction)
        return obs

    def _send(self, obs: dict[str, np.ndarray], stamp: int, t: int) -> None:
        prefix = None
        if self.params.prefix:
            # The actions that run anyway before the chunk can take over, on its own time grid.
            latency = self._latency_ns()
            latency = self.shadow.latency_estimate_ns if latency is None else latency
            prefix = self.shadow.frozen_prefix(stamp, (t - stamp) + latency, self.dt_ns)
            prefix = prefix[: self.horizon - 1] if len(prefix) else None
        self.requests.jobs.put(_Job("act", self.episode_index, obs, stamp, num_samples=self.num_samples, prefix=prefix))
        self.shadow.note_request(t)
        self.in_flight = True
        self.counts["requests"] += 1

    def _use_answer(self, answer: _Answer, t: int) -> bool:
        """Count an answer and publish its chunk (and failure scores); True if a chunk went out."""
        self.in_flight = False
        if answer.episode != self.episode_index:
            self.counts["answers_after_episode"] += 1
            return False
        if answer.error is not None:
            kind, detail = answer.error
            self.errors[kind] += 1
            self._log_rate_limited(kind, f"no chunk: {kind}: {detail}")
            return False
        chunk = answer.chunk
        assert chunk is not None
        self.round_trip_ms.add(answer.round_trip_ms)
        if self.params.mode == "realtime":
            self.obs_to_chunk_ms.add((now_ns() - chunk.obs_stamp_ns) / 1e6)
        self.shadow.submit(chunk, t)
        arrays, meta = chunk_to_message_parts(chunk)
        meta.update(round_trip_ms=round(answer.round_trip_ms, 3), episode=self.episode_index,
                    request=self.counts["requests"])
        self.publish("chunk", arrays, stamp_ns=chunk.obs_stamp_ns, meta=meta)
        self.counts["chunks"] += 1
        if self.monitor is not None:
            self._publish_failure(answer, chunk)
        return True

    def _publish_failure(self, answer: _Answer, chunk: ActionChunk) -> None:
        from robostack.policies.failure.monitor import alarm_message

        samples = answer.samples if answer.samples is not None else chunk.actions[None]
        # STAC compares with the previous step's chunks, shifted by the policy steps in between.
        last = self.last_scored_ns
        shift = None if last is None else max(0, int(round((chunk.obs_stamp_ns - last) / self.dt_ns)))
        self.last_scored_ns = chunk.obs_stamp_ns
        was_raised = self.monitor.alarm
        step = self.monitor.update(answer.embedding, samples, shift, t_ns=chunk.obs_stamp_ns)
        if step.alarm and not was_raised:
            self.counts["alarms"] += 1
            self.log.warning("failure predicted at step %d: %s", step.step, step.to_meta()["normalized"])
        msg = alarm_message(step, chunk.obs_stamp_ns, src=self.name)
        self.publish("failure", {}, stamp_ns=chunk.obs_stamp_ns, meta={**msg.meta, "episode": self.episode_index})

    def _log_rate_limited(self, key: str, text: str) -> None:
        t = now_ns()
        if t - self._logged_ns.get(key, -_LOG_EVERY_NS) >= _LOG_EVERY_NS:
            self._logged_ns[key] = t
            self.log.warning("%s (%d so far)", text, self.errors[key])


__all__ = ["PolicyClientNode", "PolicyClientParams"]
