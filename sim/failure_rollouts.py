"""Twin rollouts of a policy package for failure prediction (lockstep, in this process): with the
failure monitor in the loop (B sampled chunks per step, per-step scores, for calibration and the
benchmark), or recording the policy's embeddings and actions (successful rollouts as RND fit data).
"""

from __future__ import annotations

import multiprocessing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from robostack.chunks import ActionChunk, Observation
from robostack.policies.failure.monitor import FailureMonitor
from robostack.policies.failure.monitored_policy import MonitoredPolicy
from robostack.policies.failure.trace import EpisodeTrace
from robostack.policies.onnx_policy import OnnxPolicy
from robostack.sim.engines import make_env
from robostack.sim.episode import EpisodeResult, run_episode


@dataclass(frozen=True)
class RolloutConfig:
    """Where and how the rollouts run; ``execute_steps`` (default half the horizon) actions of each
    chunk run before the policy is asked again."""

    package: str
    task: str = "pick_place"
    engine: str = "mujoco"
    arm: str = "panda"
    control_hz: float = 20.0
    num_samples: int = 32
    execute_steps: int | None = None
    threads: int | None = None
    """ONNX Runtime intra-op threads per process (None: its default, all cores)."""


@dataclass
class RecordedRollout:
    """One rollout's outcome with the policy's embedding and sampled chunk at every step."""

    result: EpisodeResult
    embeddings: list[np.ndarray] = field(default_factory=list)
    actions: list[np.ndarray] = field(default_factory=list)


def _env(config: RolloutConfig, policy: OnnxPolicy) -> Any:
    return make_env(config.engine, config.task, config.arm, config.control_hz, policy.camera_requests() or None)


class TwinForwardKinematics:
    """The arm's tool-point positions ``(N, 3)`` for joint-target actions ``(N, A)`` (MuJoCo
    kinematics of the twin's arm model; the gripper value is ignored): ACE's ``fk`` projection."""

    def __init__(self, arm: str = "panda") -> None:
        import mujoco

        from robostack.sim.scene import build_scene

        scene = build_scene(arm)
        self._mujoco = mujoco
        self.model, self.arm = scene.model, scene.arm
        self.data = mujoco.MjData(self.model)
        self._qpos = np.array([self.model.joint(j).qposadr[0] for j in self.arm.arm_joints])
        self._site = self.model.site(self.arm.tcp_site).id

    def __call__(self, actions: np.ndarray) -> np.ndarray:
        q = np.asarray(actions, np.float64)[:, : len(self._qpos)]
        out = np.empty((len(q), 3))
        for i, row in enumerate(q):
            self.data.qpos[self._qpos] = row
            self._mujoco.mj_kinematics(self.model, self.data)
            out[i] = self.data.site_xpos[self._site]
        return out


def package_monitor(package: Any, arm: str = "panda", require_calibration: bool = True) -> FailureMonitor:
    """The package's monitor, with the twin arm's forward kinematics when its ACE uses ``fk``."""
    from robostack.policies.failure.config import read_block

    block = read_block(package.spec)
    fk = TwinForwardKinematics(arm) if block is not None and block.ace is not None and block.ace.projection == "fk" else None
    return FailureMonitor.from_package(package, fk=fk, require_calibration=require_calibration)


class _MonitoredRunner:
    """One process's policy, monitor and twin, reused across its rollouts."""

    def __init__(self, config: RolloutConfig, monitor: FailureMonitor | None = None) -> None:
        self.config = config
        policy = OnnxPolicy(config.package, threads=config.threads)
        monitor = monitor or package_monitor(policy.package, config.arm, require_calibration=False)
        self.policy = MonitoredPolicy(policy, monitor, config.num_samples, config.execute_steps)
        self.env = _env(config, policy)

    def run(self, seed: int) -> tuple[EpisodeResult, EpisodeTrace]:
        result = run_episode(self.env, self.policy, seed)
        trace = self.policy.trace
        trace.success = bool(result.success) and result.error is None
        trace.meta.update(task=self.config.task, sim_time_s=result.sim_time_s, time_limit_s=self.env.time_limit_s,
                          num_samples=self.config.num_samples, execute_steps=self.policy.execute_steps)
        return result, trace

    def close(self) -> None:
        self.env.close()


_runner: _MonitoredRunner | None = None


def _init_runner(config: RolloutConfig) -> None:
    global _runner
    _runner = _MonitoredRunner(config)


def _run_seed(seed: int) -> tuple[EpisodeResult, EpisodeTrace]:
    assert _runner is not None
    return _runner.run(seed)


def monitored_rollouts(
    config: RolloutConfig, seeds: Sequence[int], monitor: FailureMonitor | None = None, workers: int = 1
) -> Iterator[tuple[EpisodeResult, EpisodeTrace]]:
    """For each seed, in order, the episode result and its trace of raw per-step scores (success
    filled in). ``monitor`` defaults to the package's, calibrated or not. With ``workers`` > 1 the
    rollouts run in that many spawned processes (the package's own monitor; ONNX Runtime on one
    thread each unless ``config.threads`` says otherwise): a rollout depends only on its seed, so
    the traces are those of one process with the same thread count."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if workers == 1:
        runner = _MonitoredRunner(config, monitor)
        try:
            for seed in seeds:
                yield runner.run(seed)
        finally:
            runner.close()
        return
    if monitor is not None:
        raise ValueError("a monitor object cannot be sent to worker processes; use workers=1 with it")
    if config.threads is None:
        config = replace(config, threads=1)
    # Fails here, once, on a package or monitor that cannot load: a pool would respawn a worker
    # whose initializer raises forever.
    package_monitor(OnnxPolicy(config.package, threads=1).package, config.arm, require_calibration=False)
    pool = multiprocessing.get_context("spawn").Pool(workers, initializer=_init_runner, initargs=(config,))
    try:
        yield from pool.imap(_run_seed, seeds)
    finally:
        pool.close()
        pool.join()


class _Recorder:
    """A policy that runs ``execute_steps`` of each chunk and keeps the embeddings and chunks."""

    def __init__(self, policy: OnnxPolicy, execute_steps: int) -> None:
        self.policy = policy
        self.execute_steps = execute_steps
        self.embeddings: list[np.ndarray] = []
        self.actions: list[np.ndarray] = []

    def reset(self, seed: int | None = None) -> None:
        self.policy.reset(seed)
        self.embeddings, self.actions = [], []

    def observe(self, obs: Observation, stamp_ns: int) -> None:
        self.policy.observe(obs, stamp_ns)

    def act(self, obs: Observation, stamp_ns: int) -> ActionChunk:
        chunk = self.policy.act(obs, stamp_ns)
        if self.policy.last_embedding is not None:
            self.embeddings.append(np.array(self.policy.last_embedding))
        self.actions.append(np.asarray(chunk.actions))
        return ActionChunk(chunk.actions[: self.execute_steps], chunk.start_ns, chunk.dt_ns, chunk.obs_stamp_ns, chunk.meta)


def recorded_rollouts(config: RolloutConfig, seeds: Sequence[int]) -> Iterator[RecordedRollout]:
    """Plain rollouts (one chunk per step) that keep each step's embedding and chunk."""
    policy = OnnxPolicy(config.package)
    recorder = _Recorder(policy, config.execute_steps or max(1, policy.spec.action_horizon // 2))
    env = _env(config, policy)
    try:
        for seed in seeds:
            result = run_episode(env, recorder, seed)
            yield RecordedRollout(result, list(recorder.embeddings), list(recorder.actions))
    finally:
        env.close()


def with_progress(items: Iterator[Any], total: int, desc: str, enabled: bool, postfix: Callable[[Any], dict] | None = None) -> Iterator[Any]:
    """``items`` under a tqdm bar (when ``enabled``)."""
    if not enabled:
        yield from items
        return
    from tqdm import tqdm

    with tqdm(total=total, desc=desc, unit="ep") as bar:
        for item in items:
            bar.update(1)
            if postfix is not None:
                bar.set_postfix(postfix(item))
            yield item


def trace_file(path: str | Path, traces: Sequence[EpisodeTrace]) -> Path:
    """Write traces as JSON lines (one episode a line)."""
    import json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(t.to_dict()) + "\n" for t in traces))
    return path
