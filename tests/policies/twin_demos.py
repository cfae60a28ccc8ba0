"""Scripted-expert demonstrations recorded from the MuJoCo twin into a real dataset, for the
end-to-end policy tests (the collect flow's graph does the same through nodes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def record_expert_demos(root: Path, seeds: list[int], task: str = "pick_place", image_size=(48, 64), control_hz: int = 20) -> int:
    """One episode per seed (expert until success or the time limit); returns frames written."""
    from robostack.dataset import CameraSpec, DatasetSpec
    from robostack.dataset.journal import Sample
    from robostack.dataset.writer import DatasetWriter
    from robostack.sim.env import TwinConfig, TwinEnv
    from robostack.sim.episode import action_at
    from robostack.sim.experts import ScriptedExpert

    env = TwinEnv(TwinConfig(task=task, obs_cameras=("front",), image_size=image_size, control_hz=control_hz))
    expert = ScriptedExpert(task, control_hz=control_hz)
    names = tuple(f"q{i}" for i in range(8))
    spec = DatasetSpec(fps=control_hz, cameras=(CameraSpec("front", *image_size),), state_names=names, action_names=names)
    writer = DatasetWriter(root, spec)
    frames = 0
    try:
        for seed in seeds:
            obs = env.reset(seed)
            expert.reset(seed)
            episode = writer.begin_episode(env.instruction)
            chunk = None
            k = 0
            while env.time_ns < env.time_limit_s * 1e9 and not env.is_success():
                if chunk is None or env.time_ns > chunk.end_ns:
                    chunk = expert.act(obs, env.time_ns)
                target = action_at(chunk, env.time_ns)
                stamp = env.time_ns
                samples = {key: Sample(stamp_ns=stamp, seq=k) for key in spec.stream_keys}
                episode.add_frame(stamp, obs["state"], np.asarray(target, np.float32), {"observation.images.front": obs["image/front"]}, samples)
                env.set_joint_targets(target)
                env.step_control()
                obs = env.observation()
                k += 1
            episode.save()
            frames += k
    finally:
        env.close()
    return frames
