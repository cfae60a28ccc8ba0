"""Reproduce the shipped ``pick_place`` policy packages (diffusion and VLA-style).

::

    python -m robostack.policies.pretrained.make_pick_place --out DIR [--policy diffusion|vla]
        [--demos 200] [--demo-noise 0.04] [--steps N] [--stop-at STEP]
        [--layout-views N [--layout-targets PATTERNS] [--layout-condition [--layout-condition-cameras wrist]]]
        [--package-dir DIR/pick_place_<policy>]
        [--eval-episodes 100] [--workers 2] [--threads 2]

The shipped diffusion package (87/100 held-out) is ``--steps 18000 --layout-views 5000
--layout-targets 'instructed0.x,instructed0.y,bin.x,bin.y' --layout-condition
--layout-condition-cameras wrist`` (docs/policies.md); the shipped VLA package (90/100) is
``--policy vla --steps 13000`` with the same layout options.

Four stages, each kept in ``DIR`` so an interrupted run picks up where it stopped:

1. ``DIR/demos_noise<std>`` (``DIR/demos`` without noise): ``demos`` successful episodes of
   the scripted expert in the MuJoCo twin from seeds 0, 1, …, front and wrist cameras recorded
   at 96×128 (the model sees 48×64; frames are area-downscaled from the recorded size in
   training and at run time alike, which also averages away the video's chroma subsampling),
   20 Hz, joint-target actions. The arm executes the expert's targets plus DART noise
   (:mod:`robostack.sim.demo_noise`) while the clean targets are recorded, so the demos show
   the way back from the drift a cloned policy produces; episodes the noise spoils are dropped.
2. ``DIR/run_<policy>``: ``robostack train`` of the policy, small enough for a package of a few
   MB (see :data:`MODEL_OVERRIDES`), conditioned on the instruction (the diffusion policy as a bag
   of words, the VLA policy as a token sequence): the task names the cube to move, so without it
   no image policy can beat ~50 %. Resumes from the last checkpoint if the run exists. Both
   policies train on the same demos.
3. ``--package-dir``: ``robostack export`` of the EMA weights.
4. ``DIR/eval_<policy>``: ``robostack eval`` (lockstep) on held-out seeds ``10000 …``; the success rate,
   its Wilson interval, the mean chunk latency, the dataset size and the training time are
   written into the package's ``provenance``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from robostack.params import comma_list
from robostack.sim.demo_noise import ExecutionNoise

TASK = "pick_place"
CONTROL_HZ = 20
EVAL_SEED_START = 10000
CAMERAS = ("front", "wrist")
RECORD_SIZE = (96, 128)
MODEL_IMAGE_SIZE = (48, 64)
POLICY_KINDS = ("diffusion", "vla")
OBS_HORIZON = 1
"""One observation per sample: half the encoder work of two, so twice the epochs in the same
CPU time (the scripted expert's phase is readable from one frame and the gripper state)."""
LAYOUT_SEED_START = 100_000
"""Rendered layout views use seeds from here: apart from the demos' and the evaluation's."""
NOISE_SEED_OFFSET = 1_000_003
"""The execution noise of demo seed ``s`` is drawn from seed ``s + NOISE_SEED_OFFSET``."""
EXECUTE_STEPS = 8
"""Receding horizon: 8 of the 16 predicted actions run before the policy is asked again."""
MODEL_OVERRIDES: dict[str, dict[str, Any]] = {
    # The default architecture with a quarter of its UNet width and half of its encoder width:
    # 1.6 M parameters (≈ 7 MB of float32 graphs) instead of 6.4 M. No random-shift augmentation:
    # the twin's cameras never move, and at 48×64 a ±4 px shift is ±6 cm of table, which hides
    # exactly where the cube is (with it, 12k steps went to the middle between the cubes: 1/100).
    "diffusion": {"image_channels": [16, 32, 64], "unet_channels": [32, 64, 128], "time_embed_dim": 64, "image_shift": 0},
    # The default VLA width (dim 128) with 2 + 2 blocks instead of 4 + 4 (and a 2-block localizer
    # with --layout-condition): 0.25 s per step here instead of 0.46, so ~14k steps fit in an
    # hour. No shift augmentation either.
    "vla": {"image_shift": 0, "prefix_layers": 2, "expert_layers": 2},
}


@dataclass(frozen=True)
class RecipeConfig:
    out: Path
    package_dir: Path
    policy: str = "diffusion"
    demos: int = 200
    steps: int = 8000
    stop_at: int | None = None
    """End training at this step (a time-boxed run); the LR schedule still spans ``steps``."""
    layout_views: int = 0
    """Render this many extra twin layouts (seeds from :data:`LAYOUT_SEED_START`, the arm at
    poses drawn from the demos) whose object poses the policy also learns to predict
    (:mod:`robostack.sim.layout_rendering`); 0: none."""
    layout_target_names: tuple[str, ...] | None = None
    """With ``layout_views``: the targets to learn (shell patterns, e.g. ``("*.x", "*.y")``); default all."""
    layout_condition: bool = False
    """With ``layout_views``: the action head is conditioned on the object poses the policy
    locates (``DiffusionConfig`` / ``VlaConfig.layout_condition``) instead of on the cameras'
    features."""
    layout_condition_cameras: tuple[str, ...] = ()
    """With ``layout_condition``: cameras of :data:`CAMERAS` whose features the action head still
    sees beside the poses (``layout_condition_cameras`` of the model config)."""
    batch_size: int = 64
    lr: float = 3e-4
    warmup_steps: int = 300
    demo_noise_rad: float = 0.04
    """DART execution noise on the demos' arm joints (std, rad); 0 records the clean expert.
    With it the same training went from 2/100 to 28/100 (see docs/policies.md)."""
    obs_horizon: int = OBS_HORIZON
    execute_steps: int = EXECUTE_STEPS
    eval_episodes: int = 100
    workers: int = 2
    threads: int | None = 2
    progress: bool = True

    def __post_init__(self) -> None:
        if self.policy not in POLICY_KINDS:
            raise ValueError(f"policy must be one of {POLICY_KINDS}, got {self.policy!r}")
        for name in ("demos", "steps", "batch_size", "eval_episodes", "workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.stop_at is not None and not 1 <= self.stop_at <= self.steps:
            raise ValueError(f"stop_at must be between 1 and steps ({self.steps}), got {self.stop_at}")
        if not self.demo_noise_rad >= 0:
            raise ValueError(f"demo_noise_rad must be >= 0, got {self.demo_noise_rad}")
        if self.layout_views < 0:
            raise ValueError(f"layout_views must be >= 0, got {self.layout_views}")
        if self.layout_target_names is not None and not self.layout_views:
            raise ValueError("layout_target_names selects targets of the layout views: give layout_views > 0")
        if self.layout_condition and not self.layout_views:
            raise ValueError("layout_condition needs layout_views > 0: the poses it conditions on are learnt from them")
        unknown = sorted(set(self.layout_condition_cameras) - set(CAMERAS))
        if unknown:
            raise ValueError(f"layout_condition_cameras {unknown} are not cameras of the recipe {list(CAMERAS)}")
        if self.layout_condition_cameras and not self.layout_condition:
            raise ValueError("layout_condition_cameras keeps cameras beside the poses of layout_condition: set it too")
        if self.demos >= EVAL_SEED_START:
            raise ValueError(f"demos must stay below the held-out evaluation seeds ({EVAL_SEED_START}), got {self.demos}")

    @property
    def dataset_dir(self) -> Path:
        return self.out / ("demos" if self.demo_noise_rad == 0 else f"demos_noise{self.demo_noise_rad:g}")

    @property
    def noise(self) -> ExecutionNoise | None:
        return None if self.demo_noise_rad == 0 else ExecutionNoise(std_rad=self.demo_noise_rad)

    @property
    def layout_views_path(self) -> Path | None:
        return self.out / f"layout_views_{self.layout_views}.npz" if self.layout_views else None

    @property
    def model_overrides(self) -> dict[str, Any]:
        overrides = dict(MODEL_OVERRIDES[self.policy])
        if self.layout_condition:
            overrides["layout_condition"] = True
        if self.layout_condition_cameras:
            overrides["layout_condition_cameras"] = [f"image/{c}" for c in self.layout_condition_cameras]
        return overrides

    @property
    def run_dir(self) -> Path:
        return self.out / f"run_{self.policy}"

    @property
    def eval_dir(self) -> Path:
        return self.out / f"eval_{self.policy}"


@dataclass(frozen=True)
class RecordedDemos:
    frames: int
    seeds: list[int]
    """The seeds kept, in order."""
    dropped_seeds: list[int]
    """Seeds whose (noisy) expert episode did not succeed within the time limit: not written."""


def record_expert_demos(
    root: Path,
    episodes: int,
    cameras: tuple[str, ...] = CAMERAS,
    image_size: tuple[int, int] = RECORD_SIZE,
    noise: ExecutionNoise | None = None,
    progress: Callable[[int], None] | None = None,
) -> RecordedDemos:
    """``episodes`` successful scripted-expert episodes of ``pick_place`` from seeds 0, 1, …
    (below the held-out evaluation seeds), each recorded until success, into a LeRobot v3
    dataset at ``root``. With ``noise`` the arm executes the expert's targets plus DART offsets
    while the clean targets are the recorded actions; an episode that then fails is dropped."""
    from robostack.dataset import CameraSpec, DatasetSpec
    from robostack.dataset.journal import Sample
    from robostack.dataset.writer import DatasetWriter
    from robostack.sim.demo_noise import NoisyExecution
    from robostack.sim.env import TwinConfig, TwinEnv
    from robostack.sim.episode import action_at
    from robostack.sim.experts import ScriptedExpert

    env = TwinEnv(TwinConfig(task=TASK, obs_cameras=cameras, image_size=image_size, control_hz=CONTROL_HZ))
    expert = ScriptedExpert(TASK, control_hz=CONTROL_HZ)
    names = tuple(f"q{i}" for i in range(env.arm.action_dim))
    spec = DatasetSpec(fps=CONTROL_HZ, cameras=tuple(CameraSpec(c, *image_size) for c in cameras), state_names=names, action_names=names)
    writer = DatasetWriter(root, spec)
    frames = 0
    kept: list[int] = []
    dropped: list[int] = []
    seed = 0
    try:
        while len(kept) < episodes:
            if seed >= EVAL_SEED_START:
                raise RuntimeError(f"only {len(kept)} of {episodes} expert episodes succeeded below seed {EVAL_SEED_START}")
            obs = env.reset(seed)
            expert.reset(seed)
            perturb = None if noise is None else NoisyExecution(noise, len(env.arm.arm_joints), env.control_dt, seed=NOISE_SEED_OFFSET + seed)
            episode = writer.begin_episode(env.instruction)
            chunk = None
            k = 0
            while env.time_ns < env.time_limit_s * 1e9 and not env.is_success():
                if chunk is None or env.time_ns > chunk.end_ns:
                    chunk = expert.act(obs, env.time_ns)
                target = np.asarray(action_at(chunk, env.time_ns), np.float32)
                stamp = env.time_ns
                samples = {key: Sample(stamp_ns=stamp, seq=k) for key in spec.stream_keys}
                images = {f"observation.images.{c}": obs[f"image/{c}"] for c in cameras}
                episode.add_frame(stamp, obs["state"], target, images, samples)
                env.set_joint_targets(target if perturb is None else perturb.apply(target))
                env.step_control()
                obs = env.observation()
                k += 1
            if env.is_success():
                episode.save()
                kept.append(seed)
                frames += k
                if progress:
                    progress(1)
            else:
                episode.discard()
                dropped.append(seed)
            seed += 1
    finally:
        env.close()
    return RecordedDemos(frames, kept, dropped)


def _recorded_episodes(root: Path) -> int:
    from robostack.dataset.reader import DatasetReader

    return DatasetReader(root).num_episodes


def _seeds_file(root: Path) -> Path:
    """Which seeds the demos came from: beside the dataset, which has no place for them."""
    return root.parent / f"{root.name}.seeds.json"


def ensure_demos(config: RecipeConfig) -> dict[str, Any]:
    """Record the demonstrations unless the dataset directory already holds exactly them; returns
    what the provenance records about them."""
    root = config.dataset_dir
    if (root / "meta").is_dir():
        have = _recorded_episodes(root)
        if have != config.demos:
            raise SystemExit(f"error: {root} holds {have} episodes, --demos asks for {config.demos}; remove it or pick another --out")
        seeds = _seeds_file(root)
        return {"recorded_now": False, **(json.loads(seeds.read_text()) if seeds.is_file() else {})}
    from tqdm import tqdm

    start = time.perf_counter()
    with tqdm(total=config.demos, desc="expert demos", unit="ep", disable=not config.progress) as bar:
        recorded = record_expert_demos(root, config.demos, noise=config.noise, progress=bar.update)
    seeds = {"demo_seeds": [recorded.seeds[0], recorded.seeds[-1]], "dropped_demo_seeds": recorded.dropped_seeds}
    _seeds_file(root).write_text(json.dumps(seeds))
    return {"recorded_now": True, "frames": recorded.frames, **seeds, "record_wall_s": round(time.perf_counter() - start, 1)}


def ensure_layout_views(config: RecipeConfig) -> Path | None:
    """Render the layout views unless the file is there already; the arm poses come from the
    demos' joint states (every 5th frame)."""
    path = config.layout_views_path
    if path is None or path.is_file():
        return path
    from robostack.dataset.reader import DatasetReader
    from robostack.sim.layout_rendering import render_layout_views
    from tqdm import tqdm

    reader = DatasetReader(config.dataset_dir)
    states = np.concatenate([np.asarray(reader.load_episode(i).columns["observation.state"])[::5] for i in range(reader.num_episodes)])
    seeds = range(LAYOUT_SEED_START, LAYOUT_SEED_START + config.layout_views)
    with tqdm(total=config.layout_views, desc="layout views", unit="view", disable=not config.progress) as bar:
        views = render_layout_views(TASK, seeds, states, CAMERAS, RECORD_SIZE, seed=0, progress=bar.update)
    return views.save(path)


def train_policy(config: RecipeConfig):
    """Train (or resume) the policy run in ``DIR/run_<policy>``."""
    from robostack.policies.run_store import CHECKPOINT
    from robostack.policies.training import TrainConfig, train

    train_config = TrainConfig(
        dataset=str(config.dataset_dir),
        out=str(config.run_dir),
        policy=config.policy,
        steps=config.steps,
        batch_size=config.batch_size,
        lr=config.lr,
        warmup_steps=config.warmup_steps,
        image_size=MODEL_IMAGE_SIZE,
        cameras=CAMERAS,
        obs_horizon=config.obs_horizon,
        model_overrides=config.model_overrides,
        instruction=True,
        val_every=max(1, min(500, config.steps)),
        checkpoint_every=max(1, min(500, config.steps)),
        threads=config.threads,
        layout_views=None if config.layout_views_path is None else str(config.layout_views_path),
        layout_target_names=config.layout_target_names,
        progress=config.progress,
    )
    resume = (config.run_dir / CHECKPOINT).is_file()
    return train(train_config, resume=resume, stop_at=config.stop_at)


def evaluate_package(config: RecipeConfig):
    """``robostack eval --task pick_place --policy PKG --episodes N --seed-start 10000`` (lockstep)."""
    from robostack.sim.evaluation import EvalConfig, evaluate

    eval_config = EvalConfig(
        task=TASK,
        policy=str(config.package_dir),
        episodes=config.eval_episodes,
        workers=config.workers,
        seed_start=EVAL_SEED_START,
        control_hz=float(CONTROL_HZ),
        execute_steps=config.execute_steps,
    )
    report = evaluate(eval_config, progress=config.progress)
    report.write(config.eval_dir)
    return report


def package_bytes(package_dir: Path) -> int:
    return sum(p.stat().st_size for p in package_dir.rglob("*") if p.is_file())


def record_provenance(package_dir: Path, name: str, additions: dict[str, Any]) -> None:
    """Name the package and merge ``additions`` into its ``provenance``; validate it again."""
    from robostack.policies.package import load_package, write_policy_json

    spec = load_package(package_dir).spec
    provenance = {**dict(spec.provenance), **additions}
    write_policy_json(package_dir, dataclasses.replace(spec, name=name, provenance=provenance))
    load_package(package_dir)


def make(config: RecipeConfig) -> dict[str, Any]:
    """Run every stage; returns the summary that also goes into the package provenance."""
    from robostack.policies.export import export_run
    from robostack.policies.run_store import RunInfo

    demos = ensure_demos(config)
    ensure_layout_views(config)
    result = train_policy(config)
    export_run(config.run_dir, config.package_dir)
    report = evaluate_package(config)
    s = report.summary
    low, high = s["wilson95"]
    evaluation = {
        "command": f"robostack eval --task {TASK} --policy {config.package_dir.name} --episodes {config.eval_episodes} "
        f"--seed-start {EVAL_SEED_START} --workers {config.workers}",
        "mode": "lockstep",
        "task": TASK,
        "seeds": [EVAL_SEED_START, EVAL_SEED_START + config.eval_episodes - 1],
        "episodes": s["episodes"],
        "successes": s["successes"],
        "success_rate": s["success_rate"],
        "wilson95": [round(low, 4), round(high, 4)],
        "mean_policy_latency_ms": round(s["mean_policy_latency_ms"], 2),
        "mean_episode_sim_time_s": round(s["mean_episode_sim_time_s"], 2),
        "errors": s["errors"],
    }
    recipe = {
        "script": "robostack.policies.pretrained.make_pick_place",
        "policy": config.policy,
        "demos": config.demos,
        "demo_noise": None if config.noise is None else dataclasses.asdict(config.noise),
        "expert": "robostack.sim.experts.ScriptedExpert",
        "record_size": list(RECORD_SIZE),
        "model_image_size": list(MODEL_IMAGE_SIZE),
        "model_overrides": config.model_overrides,
        "obs_horizon": config.obs_horizon,
        "execute_steps": config.execute_steps,
        "layout_views": config.layout_views,
        **({"layout_target_names": list(config.layout_target_names)} if config.layout_target_names else {}),
        "steps": result.step,
        # the LR schedule's length; larger than ``steps`` when a run was stopped and not resumed to the end
        "schedule_steps": RunInfo.load(config.run_dir).train_config["steps"],
        "batch_size": config.batch_size,
        "lr": config.lr,
        "threads": config.threads,
        "train_time_s": round(result.train_time_s, 1),
        "seconds_per_step": None if result.seconds_per_step is None else round(result.seconds_per_step, 4),
        **{k: v for k, v in demos.items() if k != "recorded_now"},
    }
    record_provenance(config.package_dir, f"{TASK}_{config.policy}", {"evaluation": evaluation, "recipe": recipe})
    return {"package": str(config.package_dir), "package_bytes": package_bytes(config.package_dir), "evaluation": evaluation, "recipe": recipe}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m robostack.policies.pretrained.make_pick_place", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="work directory (demos, runs, evals)")
    parser.add_argument("--policy", choices=POLICY_KINDS, default="diffusion")
    parser.add_argument("--package-dir", type=Path, default=None, help="where the policy package goes (default OUT/pick_place_POLICY)")
    parser.add_argument("--demos", type=int, default=RecipeConfig.demos, help="expert episodes, seeds 0..N-1 (default 200)")
    parser.add_argument(
        "--demo-noise", type=float, default=RecipeConfig.demo_noise_rad, metavar="RAD",
        help=f"DART execution noise on the demos' arm joints, std in rad (default {RecipeConfig.demo_noise_rad}; 0: the clean expert)",
    )
    parser.add_argument("--steps", type=int, default=RecipeConfig.steps, help="training steps (default 8000)")
    parser.add_argument(
        "--stop-at", type=int, default=None, metavar="STEP",
        help="end training at STEP with the schedule still spanning --steps (a time-boxed run; rerun to finish it)",
    )
    parser.add_argument(
        "--layout-views", type=int, default=0, metavar="N",
        help="also train the policy to locate the objects of N rendered twin layouts (default 0: none)",
    )
    parser.add_argument(
        "--layout-targets", default=None, metavar="PATTERNS",
        help="with --layout-views: comma-separated target names or patterns to learn (e.g. '*.x,*.y'; default all)",
    )
    parser.add_argument(
        "--layout-condition", action="store_true",
        help="with --layout-views: condition the action head on the object poses the policy locates, not on the cameras' features",
    )
    parser.add_argument(
        "--layout-condition-cameras", default="", metavar="NAMES",
        help="with --layout-condition: cameras (e.g. wrist) whose features the action head still sees beside the poses",
    )
    parser.add_argument("--batch-size", type=int, default=RecipeConfig.batch_size)
    parser.add_argument("--eval-episodes", type=int, default=RecipeConfig.eval_episodes, help=f"held-out seeds from {EVAL_SEED_START}")
    parser.add_argument("--workers", type=int, default=RecipeConfig.workers, help="evaluation worker processes")
    parser.add_argument("--threads", type=int, default=RecipeConfig.threads, help="torch CPU threads for training")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        config = RecipeConfig(
            out=args.out,
            package_dir=args.package_dir or args.out / f"pick_place_{args.policy}",
            policy=args.policy,
            demos=args.demos,
            demo_noise_rad=args.demo_noise,
            steps=args.steps,
            stop_at=args.stop_at,
            layout_views=args.layout_views,
            layout_condition=args.layout_condition,
            layout_condition_cameras=comma_list(args.layout_condition_cameras),
            layout_target_names=None if args.layout_targets is None else comma_list(args.layout_targets),
            batch_size=args.batch_size,
            eval_episodes=args.eval_episodes,
            workers=args.workers,
            threads=args.threads,
            progress=not args.no_progress,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = make(config)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
