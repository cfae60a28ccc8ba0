"""Training a diffusion or VLA-style policy on a recorded dataset (torch).

AdamW with warmup + cosine decay, an EMA copy of the weights (what gets exported), whole-episode
validation split with a fixed-noise validation loss, checkpoints that resume exactly (model, EMA,
optimizer, schedule, step, RNG states), ``metrics.jsonl``, a tqdm bar and ``loss.png``.
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from robostack.policies.layout_views import LayoutViews, LayoutViewsError
from robostack.policies.model_inputs import ModelInputs
from robostack.policies.normalization import default_image_normalization
from robostack.policies.run_store import (
    CHECKPOINT,
    LOSS_PLOT,
    METRICS,
    POLICY_KINDS,
    RunError,
    RunInfo,
    build_model,
    load_checkpoint,
    read_metrics,
    save_checkpoint,
)
from robostack.policies.tokenizer import WordTokenizer
from robostack.policies.training_data import (
    ACTION_KEY,
    STATE_KEY,
    TrainingData,
    WindowSampler,
    load_training_data,
    split_episodes,
)

MODEL_SIZES = ("default", "tiny")


@dataclass
class TrainConfig:
    """One training run. Defaults are sized for a 2-core CPU (about 0.5 s per step with one
    64x64 camera, see docs/policies.md)."""

    dataset: str
    out: str
    policy: str = "diffusion"
    steps: int = 6000
    batch_size: int = 64
    lr: float = 1e-4
    weight_decay: float = 1e-6
    warmup_steps: int = 500
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    image_size: tuple[int, int] = (64, 64)
    cameras: tuple[str, ...] | None = None
    obs_horizon: int | None = None
    """Default 2 for diffusion, 1 for vla."""
    action_horizon: int = 16
    text_length: int = 16
    val_fraction: float = 0.1
    val_every: int = 500
    val_batches: int = 4
    checkpoint_every: int = 500
    log_every: int = 50
    seed: int = 0
    device: str = "cpu"
    threads: int | None = None
    model_size: str = "default"
    model_overrides: dict[str, Any] | None = None
    """Architecture fields set on top of ``model_size`` (e.g. ``{"unet_channels": [32, 64, 128]}``)."""
    instruction: bool | None = None
    """Condition on the episode's task string. Default: yes for vla, no for diffusion (a diffusion
    policy needs it when the dataset's tasks differ only in words, e.g. which cube to move)."""
    max_episodes: int | None = None
    layout_views: str | None = None
    """A views file (:mod:`robostack.policies.layout_views`, e.g. from ``sim.layout_rendering``):
    each step also trains the policy (the diffusion policy's encoders; the VLA's query token,
    with ``layout_condition`` its localizer) to predict the object poses of ``layout_batch``
    rendered layouts, ``layout_weight`` times that MSE added to the loss; the last 10 % of the
    views are held out (``val_layout_mse``)."""
    layout_batch: int = 32
    layout_weight: float = 1.0
    layout_target_names: tuple[str, ...] | None = None
    """The views' targets to learn, as shell-style patterns (``("*.x", "*.y")``); default all. A
    target the cameras cannot resolve (a small cube's yaw at 48×64) is noise the head learns per
    layout, and, with ``layout_condition``, a way for the denoiser to tell layouts apart again."""
    progress: bool = True

    def __post_init__(self) -> None:
        if self.policy not in POLICY_KINDS:
            raise ValueError(f"policy must be one of {POLICY_KINDS}, got {self.policy!r}")
        if self.model_size not in MODEL_SIZES:
            raise ValueError(f"model_size must be one of {MODEL_SIZES}, got {self.model_size!r}")
        for name in ("steps", "batch_size", "val_every", "checkpoint_every", "log_every", "action_horizon", "val_batches"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.layout_target_names is not None:
            self.layout_target_names = tuple(self.layout_target_names)
            if not self.layout_target_names or self.layout_views is None:
                raise ValueError(f"layout_target_names selects targets of layout_views: give both (got {self.layout_target_names!r}, {self.layout_views!r})")
        if self.layout_batch < 1 or not self.layout_weight > 0:
            raise ValueError(f"layout_batch must be >= 1 and layout_weight > 0, got {self.layout_batch}, {self.layout_weight}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        self.image_size = tuple(self.image_size)  # type: ignore[assignment]
        if self.cameras is not None:
            self.cameras = tuple(self.cameras)
        if self.obs_horizon is None:
            self.obs_horizon = 2 if self.policy == "diffusion" else 1
        if self.instruction is None:
            self.instruction = self.policy == "vla"
        elif self.policy == "vla" and not self.instruction:
            raise ValueError("the vla policy always reads the instruction; instruction=False is only for diffusion")
        if self.model_overrides:
            self.model_overrides = dict(self.model_overrides)
            known = set(model_config_for(self.policy, self.model_size))
            unknown = sorted(set(self.model_overrides) - known)
            if unknown:
                raise ValueError(f"model_overrides: unknown {self.policy} model field(s) {unknown}; known: {sorted(known)}")
            model = {**model_config_for(self.policy, self.model_size), **self.model_overrides}
            if model.get("layout_condition") and self.layout_views is None:
                raise ValueError("layout_condition conditions the policy on object poses learnt from layout views: give layout_views")
            if model.get("streaming"):  # refuse a bad chunking before the dataset loads
                from robostack.policies.streaming import StreamingSchedule

                StreamingSchedule(self.action_horizon, model["stream_chunks"], model["inference_steps"], model["train_timesteps"])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    train_loss: float | None
    val_loss: float | None
    train_time_s: float
    seconds_per_step: float | None
    history: list[dict[str, Any]] = field(default_factory=list)


def model_config_for(policy: str, size: str) -> dict[str, Any]:
    if policy == "diffusion":
        from robostack.policies.diffusion_model import TINY_DIFFUSION, DiffusionConfig

        return (TINY_DIFFUSION if size == "tiny" else DiffusionConfig()).to_dict()
    from robostack.policies.vla_model import TINY_VLA, VlaConfig

    return (TINY_VLA if size == "tiny" else VlaConfig()).to_dict()


def make_run_info(config: TrainConfig, data: TrainingData, layout_targets: int = 0) -> RunInfo:
    tokenizer = WordTokenizer.build(data.tasks, config.text_length) if config.instruction else None
    state_dim = data.episodes[0].state.shape[1]
    action_dim = data.episodes[0].action.shape[1]
    inputs = ModelInputs(
        cameras=data.cameras,
        image_size=config.image_size,
        state_dim=state_dim,
        action_dim=action_dim,
        obs_horizon=int(config.obs_horizon or 1),
        action_horizon=config.action_horizon,
        vocab_size=tokenizer.size if tokenizer else 0,
        text_length=tokenizer.max_length if tokenizer else 0,
    )
    return RunInfo(
        kind=config.policy,
        inputs=inputs,
        model_config={
            **model_config_for(config.policy, config.model_size),
            **(config.model_overrides or {}),
            **({"layout_targets": layout_targets} if layout_targets else {}),
        },
        fps=data.fps,
        state_normalization=data.normalization(STATE_KEY),
        action_normalization=data.normalization(ACTION_KEY),
        image_normalization=default_image_normalization(),
        action_names=data.action_names,
        tokenizer=tokenizer,
        dataset=data.describe(),
        train_config=config.to_dict(),
    )


def model_batch(raw: Mapping[str, Any], info: RunInfo, device: torch.device) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Normalize a raw sample batch with the run's normalization into model tensors."""
    actions = torch.from_numpy(info.action_normalization.apply(raw["action"])).to(device)
    return observation_batch(raw, info, device), actions


def observation_batch(raw: Mapping[str, Any], info: RunInfo, device: torch.device) -> dict[str, torch.Tensor]:
    """The model inputs of a raw batch (images, state, instruction), normalized."""
    inputs: dict[str, torch.Tensor] = {}
    for cam in info.inputs.cameras:
        inputs[cam] = torch.from_numpy(info.image_normalization.apply(raw[cam])).to(device)
    inputs["state"] = torch.from_numpy(info.state_normalization.apply(raw["state"])).to(device)
    if info.inputs.has_text:
        assert info.tokenizer is not None
        inputs["instruction"] = torch.tensor(info.tokenizer.encode_batch(raw["instruction"]), dtype=torch.int64, device=device)
    return inputs


def load_layout_views(config: TrainConfig, cameras: tuple[str, ...]) -> tuple[LayoutViews, LayoutViews | None]:
    """The training and held-out views of ``config.layout_views``, at the model's image size."""
    views = LayoutViews.load(config.layout_views, tuple(config.image_size))  # type: ignore[arg-type]
    missing = sorted(set(cameras) - set(views.cameras))
    if missing:
        raise RunError(f"{config.layout_views}: the views have no {missing}; the policy's cameras are {list(cameras)}")
    views.images = {cam: views.images[cam] for cam in cameras}
    if config.layout_target_names is not None:
        try:
            views = views.select_targets(config.layout_target_names)
        except LayoutViewsError as exc:
            raise RunError(f"{config.layout_views}: {exc}") from None
    return views.split(0.1)


def keyframe_batch(raw: Mapping[str, Any], info: RunInfo, device: torch.device) -> torch.Tensor | None:
    """The batch's normalized next-keyframe actions ``(B, A)``, when the sampler gave them."""
    if "keyframe" not in raw:
        return None
    return torch.from_numpy(info.action_normalization.apply(raw["keyframe"])).to(device)


def keyframe_gripper(info: RunInfo, data: TrainingData) -> tuple[int, float] | None:
    """``(gripper_dim, threshold)`` for the keyframe loss, or None when the model has none: the
    threshold is the middle of the gripper command's range in the dataset (open vs closed)."""
    if float(info.model_config.get("keyframe_weight", 0.0)) <= 0:
        return None
    dim = int(info.model_config.get("keyframe_gripper_dim", -1))
    gripper = np.concatenate([e.action[:, dim] for e in data.episodes])
    low, high = float(gripper.min()), float(gripper.max())
    if high - low < 1e-6:
        raise RunError(f"keyframe loss: action dimension {dim} never changes in the dataset, so it is not a gripper command")
    return dim, 0.5 * (low + high)


def _lr_factor(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


@torch.no_grad()
def _ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters()):
        e.mul_(decay).add_(p.detach(), alpha=1 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


@torch.no_grad()
def validation_losses(
    model: torch.nn.Module,
    sampler: WindowSampler,
    info: RunInfo,
    config: TrainConfig,
    device: torch.device,
    views: LayoutViews | None = None,
) -> dict[str, float]:
    """Mean losses over fixed validation samples with fixed noise (comparable across steps):
    ``val_loss`` is the policy's own loss alone (comparable with runs without auxiliary losses);
    with keyframes also ``val_keyframe_mse``, with held-out layout ``views`` ``val_layout_mse``."""
    was_training = model.training
    model.eval()
    rows_rng = np.random.default_rng(12345)
    generator = torch.Generator().manual_seed(12345)
    losses, keyframe_losses, layout_losses = [], [], []
    for _ in range(config.val_batches):
        rows = rows_rng.integers(0, len(sampler), min(config.batch_size, len(sampler)))
        raw = sampler.batch(rows)
        inputs, actions = model_batch(raw, info, device)
        losses.append(float(model.loss(inputs, actions, generator)))
        keyframes = keyframe_batch(raw, info, device)
        if keyframes is not None:
            keyframe_losses.append(float(model.keyframe_loss(inputs, keyframes)))
    if views is not None:
        for start in range(0, min(len(views), config.val_batches * config.batch_size), config.batch_size):
            raw = views.batch(np.arange(start, min(start + config.batch_size, len(views))), info.inputs.obs_horizon)
            targets = torch.from_numpy(raw["targets"]).to(device)
            layout_losses.append(float(model.layout_loss(observation_batch(raw, info, device), targets)))
    model.train(was_training)
    out = {"val_loss": float(np.mean(losses))}
    if keyframe_losses:
        out["val_keyframe_mse"] = float(np.mean(keyframe_losses))
    if layout_losses:
        out["val_layout_mse"] = float(np.mean(layout_losses))
    return out


def plot_losses(run_dir: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = read_metrics(run_dir)
    train = [(m["step"], m["loss"]) for m in metrics if "loss" in m]
    val = [(m["step"], m["val_loss"]) for m in metrics if "val_loss" in m]
    fig, ax = plt.subplots(figsize=(7, 4))
    if train:
        ax.plot(*zip(*train), label="train", lw=1)
    if val:
        ax.plot(*zip(*val), "o-", label="validation (EMA)", ms=3)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if train and min(v for _, v in train) > 0:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = run_dir / LOSS_PLOT
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _append_metrics(run_dir: Path, row: dict[str, Any]) -> None:
    with open(run_dir / METRICS, "a") as f:
        f.write(json.dumps(row) + "\n")


def _truncate_metrics(run_dir: Path, step: int) -> None:
    """Drop metric rows logged after the checkpoint a resume starts from."""
    kept = [m for m in read_metrics(run_dir) if m["step"] <= step]
    (run_dir / METRICS).write_text("".join(json.dumps(m) + "\n" for m in kept))


def _finished_result(run_dir: Path, ckpt: Mapping[str, Any]) -> TrainResult:
    """The result of a run that is already at its last step, from its checkpoint and metrics."""
    step = int(ckpt["step"])
    history = read_metrics(run_dir)
    losses = [m["loss"] for m in history if "loss" in m]
    vals = [m["val_loss"] for m in history if "val_loss" in m]
    train_time = float(ckpt.get("train_time_s", 0.0))
    return TrainResult(
        run_dir=run_dir,
        step=step,
        train_loss=losses[-1] if losses else None,
        val_loss=vals[-1] if vals else None,
        train_time_s=train_time,
        seconds_per_step=(train_time / step) if step else None,
        history=history,
    )


def train(config: TrainConfig, resume: bool = False, stop_at: int | None = None) -> TrainResult:
    """Train (or, with ``resume``, continue) the run in ``config.out`` up to ``config.steps``.
    ``stop_at`` ends this session early at that step with a checkpoint (the schedule still
    spans ``config.steps``), as a time-boxed session or an interruption would. Resuming a run
    that is already there returns its result without loading the dataset."""
    from tqdm import tqdm

    run_dir = Path(config.out)
    has_checkpoint = (run_dir / CHECKPOINT).is_file()
    if has_checkpoint and not resume:
        raise RunError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")
    if resume and not has_checkpoint:
        raise RunError(f"{run_dir}: nothing to resume (no {CHECKPOINT})")
    end = config.steps if stop_at is None else min(stop_at, config.steps)
    ckpt: dict[str, Any] | None = None
    if resume:
        # Checked before the dataset is decoded (minutes for an image dataset); a run already at
        # its last step needs no dataset at all.
        info = RunInfo.load(run_dir)
        if info.kind != config.policy:
            raise RunError(f"{run_dir} trains a {info.kind!r} policy, not {config.policy!r}")
        ckpt = load_checkpoint(run_dir)
        if int(ckpt["step"]) >= end:
            return _finished_result(run_dir, ckpt)
    if config.threads:
        torch.set_num_threads(config.threads)
    device = torch.device(config.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RunError("--device cuda was asked for, but torch sees no CUDA device")
    torch.manual_seed(config.seed)

    bar_load = tqdm(desc="loading episodes", unit="ep", disable=not config.progress, leave=False)
    data = load_training_data(config.dataset, config.image_size, config.cameras, config.max_episodes, progress=bar_load.update)
    bar_load.close()
    views, views_val = load_layout_views(config, data.cameras) if config.layout_views else (None, None)
    if resume:
        if tuple(info.inputs.cameras) != data.cameras:
            raise RunError(f"{run_dir} was trained on cameras {list(info.inputs.cameras)}, the dataset gives {list(data.cameras)}")
        if views is not None and info.model_config.get("layout_targets") != views.targets.shape[1]:
            raise RunError(f"{run_dir} was trained without these layout views (layout_targets {info.model_config.get('layout_targets', 0)})")
    else:
        info = make_run_info(config, data, layout_targets=0 if views is None else views.targets.shape[1])
        info.save(run_dir)
    train_eps, val_eps = split_episodes(data.episodes, config.val_fraction, config.seed)
    obs_h, act_h = info.inputs.obs_horizon, info.inputs.action_horizon
    gripper = keyframe_gripper(info, data)
    train_sampler = WindowSampler(train_eps, obs_h, act_h, gripper)
    val_sampler = WindowSampler(val_eps, obs_h, act_h, gripper) if val_eps else None

    model = build_model(info).to(device)
    ema = copy.deepcopy(model).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, config.warmup_steps, config.steps))
    rng = np.random.default_rng(config.seed)
    step = 0
    train_time = 0.0
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        ema.load_state_dict(ckpt["ema"])
        optimizer.load_state_dict(ckpt["optimizer"])
        schedule.load_state_dict(ckpt["schedule"])
        rng.bit_generator.state = ckpt["numpy_rng"]
        torch.set_rng_state(ckpt["torch_rng"])
        step = int(ckpt["step"])
        train_time = float(ckpt.get("train_time_s", 0.0))
        _truncate_metrics(run_dir, step)
    else:
        (run_dir / METRICS).write_text("")

    def checkpoint() -> None:
        save_checkpoint(
            run_dir,
            {
                "model": model.state_dict(),
                "ema": ema.state_dict(),
                "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(),
                "numpy_rng": rng.bit_generator.state,
                "torch_rng": torch.get_rng_state(),
                "step": step,
                "train_time_s": train_time,
                "kind": info.kind,
            },
        )

    model.train()
    last_loss: float | None = None
    last_val: float | None = None
    window: list[float] = []
    bar = tqdm(total=config.steps, initial=step, desc=f"train {info.kind}", unit="step", disable=not config.progress)
    while step < end:
        t0 = time.perf_counter()
        rows = rng.integers(0, len(train_sampler), config.batch_size)
        raw = train_sampler.batch(rows)
        inputs, actions = model_batch(raw, info, device)
        keyframes = keyframe_batch(raw, info, device)
        loss = model.loss(inputs, actions) if keyframes is None else model.loss(inputs, actions, keyframes=keyframes)
        if views is not None:
            view_raw = views.batch(rng.integers(0, len(views), config.layout_batch), obs_h)
            targets = torch.from_numpy(view_raw["targets"]).to(device)
            loss = loss + config.layout_weight * model.layout_loss(observation_batch(view_raw, info, device), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        schedule.step()
        step += 1
        # EMA warm-up: early weights move fast, so the average does not remember the init
        _ema_update(ema, model, min(config.ema_decay, (1 + step) / (10 + step)))
        train_time += time.perf_counter() - t0
        window.append(float(loss.detach()))
        if step % config.log_every == 0 or step == config.steps:
            last_loss = float(np.mean(window))
            window.clear()
            _append_metrics(run_dir, {"step": step, "loss": last_loss, "lr": schedule.get_last_lr()[0], "time_s": round(train_time, 3)})
            bar.set_postfix(loss=f"{last_loss:.4f}", **({"val": f"{last_val:.4f}"} if last_val is not None else {}))
        if val_sampler is not None and (step % config.val_every == 0 or step == config.steps):
            val = validation_losses(ema, val_sampler, info, config, device, views_val)
            last_val = val["val_loss"]
            _append_metrics(run_dir, {"step": step, **val})
        if step % config.checkpoint_every == 0 or step == end:
            checkpoint()
            plot_losses(run_dir)
        bar.update(1)
    bar.close()
    return TrainResult(
        run_dir=run_dir,
        step=step,
        train_loss=last_loss,
        val_loss=last_val,
        train_time_s=train_time,
        seconds_per_step=(train_time / step) if step else None,
        history=read_metrics(run_dir),
    )
