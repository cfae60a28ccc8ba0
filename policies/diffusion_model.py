"""Diffusion policy (torch): per-camera ResNet-style encoders + proprioceptive state give the
observation features; a 1D temporal convolution UNet with FiLM conditioning predicts the noise of
an action chunk; DDPM training (cosine schedule), DDIM sampling with any number of steps.

Exported as two graphs: ``encoder`` (observation -> ``cond``, also the failure-prediction
embedding) and ``step`` (``sample``, ``timestep``, ``cond`` -> ``epsilon``). The streaming variant
(``DiffusionConfig.streaming``, SDP) takes a timestep per action, ``timestep (B, H)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from robostack.policies import sampling
from robostack.policies.layers import ImageEncoder, group_count, mlp_head, random_shift, sinusoidal_embedding
from robostack.policies.layout_views import check_layout_fields
from robostack.policies.model_inputs import ModelInputs
from robostack.policies.streaming import StreamingSchedule


@dataclass(frozen=True)
class DiffusionConfig:
    """Architecture and schedule. The defaults train on a 2-core CPU (see docs/policies.md)."""

    image_channels: tuple[int, ...] = (32, 64, 128)
    image_strides: tuple[int, ...] | None = None
    """Stride of each encoder stage (default 2 everywhere); a 1 keeps that stage's resolution."""
    keypoints: int = 32
    image_feature_dim: int = 64
    unet_channels: tuple[int, ...] = (64, 128, 256)
    kernel_size: int = 5
    time_embed_dim: int = 128
    train_timesteps: int = 100
    inference_steps: int = 16
    clip_sample: float = 1.0
    image_shift: int = 4
    shift_cameras: tuple[str, ...] | None = None
    """The camera inputs (``image/wrist``) the random shift applies to; default all. A camera on
    the wrist sees the fingers and the object move together under a shift, so the offset
    between them, which the grasp needs, survives it; a fixed camera's shift moves the object
    against the table and the labels."""
    instruction_dim: int = 16
    """Size of the pooled instruction embedding (used only when the inputs have an instruction)."""
    instruction_film: bool = True
    """With an instruction: it also modulates the image encoders (FiLM), so their keypoints can
    track the object it names; the pooled embedding still joins the condition either way."""
    keyframe_weight: float = 0.0
    """Weight of an auxiliary training loss (0: off): from the observation features, predict the
    action at the next gripper event (the grasp pose until the grasp, then the release pose). A
    demo's grasp pose says where the named object is, so this makes the encoders locate it rather
    than leaving that to the small gradient the denoising loss passes back. Training only: the
    prediction head is not exported."""
    keyframe_gripper_dim: int = -1
    """The action dimension that commands the gripper (used by the keyframe loss)."""
    aux_hidden: int = 128
    """Hidden width of the auxiliary heads (keyframe, layout)."""
    layout_targets: int = 0
    """Size of the object-pose targets of rendered layout views (:mod:`..layout_views`), set by
    training when it is given a views file: a head predicts them from the observation features
    (training only, not exported, unless ``layout_condition``). 0: no head."""
    layout_condition: bool = False
    """With layout views: the head predicts the object poses from each observation frame (its
    cameras' features and arm state), and the denoiser is conditioned on those poses and the
    state instead of on the image features. The poses reach the denoiser detached, so only the
    views train the encoders: the denoiser can only use what locates the objects on any layout,
    not what tells ~200 training layouts apart (``docs/policies.md``). The head is then part of
    the exported encoder."""
    layout_condition_cameras: tuple[str, ...] = ()
    """With ``layout_condition``: camera inputs (``image/wrist``) whose features still join the
    condition beside the poses. A wrist camera sees the fingers and the object together, which
    the grasp and the carry need and a pose does not say; a fixed camera sees the whole layout,
    which is what a policy trained on ~200 layouts memorizes."""
    condition_mlp: int = 0
    """Width of an MLP (two Mish layers) the observation condition passes through before the
    UNet; 0: none. The UNet's FiLM maps are linear in the condition, so it cannot form products
    of its parts, such as picking the named object's pose out of several by the instruction (a
    layout-conditioned policy's condition is just poses, state and instruction)."""
    streaming: bool = False
    """Streaming diffusion (SDP): a noise level per action of the chunk (the step graph's
    ``timestep`` is ``(B, H)``), trained on SDP's chunk-wise noise pattern."""
    stream_chunks: int = 4
    """Streaming only: h, the chunks of the rolling buffer (divides the horizon and the steps)."""
    stream_constant_fraction: float = 0.2
    """Streaming only: share of training samples with one noise level for the whole chunk (SDP: 20%),
    which also lets the model sample whole chunks by plain DDIM."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "DiffusionConfig":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


TINY_DIFFUSION = DiffusionConfig(
    image_channels=(8, 16), keypoints=8, image_feature_dim=16, unet_channels=(16, 32, 32), kernel_size=3, time_embed_dim=16
)

DP_DIFFUSION = DiffusionConfig(
    image_channels=(64, 128, 256, 512), keypoints=32, image_feature_dim=64, unet_channels=(512, 1024, 2048), kernel_size=5, time_embed_dim=128
)
"""The size of Diffusion Policy's image model (Chi et al. 2023, the ``unet_hybrid_image`` configs),
for serving benchmarks: its temporal UNet (down dims 512/1024/2048, kernel 5, step embedding
128; our UNet has DP's layout, so this is DP's ≈ 252M) and per camera an encoder of ResNet-18's
stage widths with 32 spatial-softmax keypoints -> 64 features, as DP's. DP's low-dim configs'
256/512/1024 UNet is a quarter of that (≈ 65M). Whole model: 267,334,600 parameters with two
cameras, state 8, action 8, observation horizon 1 (the shipped ``pick_place_diffusion``
interface); 259,355,170 with one 96×96 camera, state 2, action 2, observation horizon 2 (PushT)."""


class Conv1dBlock(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int) -> None:
        super().__init__(nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2), nn.GroupNorm(group_count(c_out), c_out), nn.Mish())


class FilmResBlock1d(nn.Module):
    """Two conv blocks; the condition scales and shifts the features between them (FiLM)."""

    def __init__(self, c_in: int, c_out: int, cond_dim: int, kernel: int) -> None:
        super().__init__()
        self.block1 = Conv1dBlock(c_in, c_out, kernel)
        self.block2 = Conv1dBlock(c_out, c_out, kernel)
        self.film = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * c_out))
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.block1(x)
        scale, bias = self.film(cond).unsqueeze(-1).chunk(2, dim=1)
        h = self.block2(h * (1 + scale) + bias)
        return h + self.skip(x)


class ConditionalUnet1D(nn.Module):
    """Temporal UNet over ``(B, A, H)``: two downsamplings, skip connections, FiLM everywhere."""

    def __init__(
        self, action_dim: int, obs_cond_dim: int, channels: tuple[int, ...], kernel: int, time_dim: int, horizon: int | None = None
    ) -> None:
        """``horizon`` set: streaming, a timestep per action of a chunk of that length."""
        super().__init__()
        self.time_dim = time_dim
        self.horizon = horizon
        time_in = time_dim if horizon is None else horizon * time_dim
        self.time_mlp = nn.Sequential(nn.Linear(time_in, 4 * time_dim), nn.Mish(), nn.Linear(4 * time_dim, time_dim))
        cond_dim = time_dim + obs_cond_dim
        dims = [action_dim + (0 if horizon is None else time_dim), *channels]
        pairs = list(zip(dims[:-1], dims[1:]))
        self.down = nn.ModuleList()
        for i, (c_in, c_out) in enumerate(pairs):
            last = i == len(pairs) - 1
            self.down.append(
                nn.ModuleList(
                    [
                        FilmResBlock1d(c_in, c_out, cond_dim, kernel),
                        FilmResBlock1d(c_out, c_out, cond_dim, kernel),
                        nn.Identity() if last else nn.Conv1d(c_out, c_out, 3, stride=2, padding=1),
                    ]
                )
            )
        mid = channels[-1]
        self.mid = nn.ModuleList([FilmResBlock1d(mid, mid, cond_dim, kernel), FilmResBlock1d(mid, mid, cond_dim, kernel)])
        self.up = nn.ModuleList()
        for c_in, c_out in reversed(pairs[1:]):
            self.up.append(
                nn.ModuleList(
                    [
                        FilmResBlock1d(2 * c_out, c_in, cond_dim, kernel),
                        FilmResBlock1d(c_in, c_in, cond_dim, kernel),
                        nn.ConvTranspose1d(c_in, c_in, 4, stride=2, padding=1),
                    ]
                )
            )
        self.final = nn.Sequential(Conv1dBlock(channels[0], channels[0], kernel), nn.Conv1d(channels[0], action_dim, 1))

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, obs_cond: torch.Tensor) -> torch.Tensor:
        """``sample (B, H, A)``, ``timestep (B,)`` (streaming: or ``(B, H)``), ``obs_cond (B, C)``
        -> noise ``(B, H, A)``."""
        if self.horizon is None:
            time_features = self.time_mlp(sinusoidal_embedding(timestep, self.time_dim))
            x = sample
        else:
            # Streaming: the FiLM vector sees the whole noise pattern, and every action also gets
            # its own level as extra input channels, so the convolutions know it locally.
            if timestep.dim() == 1:
                timestep = timestep[:, None].expand(-1, sample.shape[1])
            per_action = sinusoidal_embedding(timestep.reshape(-1), self.time_dim).reshape(sample.shape[0], sample.shape[1], self.time_dim)
            time_features = self.time_mlp(per_action.flatten(1))
            x = torch.cat([sample, per_action], dim=-1)
        cond = torch.cat([time_features, obs_cond], dim=-1)
        x = x.transpose(1, 2)
        skips = []
        for res1, res2, down in self.down:
            x = res2(res1(x, cond), cond)
            skips.append(x)
            x = down(x)
        for block in self.mid:
            x = block(x, cond)
        for res1, res2, up in self.up:
            x = torch.cat([x, skips.pop()], dim=1)
            x = up(res2(res1(x, cond), cond))
        return self.final(x).transpose(1, 2)


def _module_name(input_name: str) -> str:
    return input_name.replace("/", "_").replace(".", "_")


class DiffusionPolicyModel(nn.Module):
    """Observation encoder + noise-prediction UNet; inputs are normalized tensors keyed by the
    policy input names (``image/<cam>`` ``(B, T, 3, h, w)``, ``state`` ``(B, T, D)``)."""

    kind = "diffusion"
    encoder_outputs = ("cond",)
    embedding_output = "cond"
    prediction = "epsilon"

    def __init__(self, inputs: ModelInputs, config: DiffusionConfig | None = None) -> None:
        super().__init__()
        config = config or DiffusionConfig()
        if inputs.action_horizon % 4:
            raise ValueError(f"the diffusion UNet halves the action horizon twice: use a multiple of 4, got {inputs.action_horizon}")
        self.inputs = inputs
        self.config = config
        # > 0 exactly when the instruction also modulates the image encoders
        self.film_dim = config.instruction_dim if inputs.has_text and config.instruction_film else 0
        unknown = sorted(set(config.shift_cameras or ()) - set(inputs.cameras))
        if unknown:
            raise ValueError(f"shift_cameras {unknown} are not camera inputs of the model ({list(inputs.cameras)})")
        self.image_encoders = nn.ModuleDict(
            {
                _module_name(c): ImageEncoder(config.image_channels, config.keypoints, config.image_feature_dim, self.film_dim, config.image_strides)
                for c in inputs.cameras
            }
        )
        self.frame_dim = len(inputs.cameras) * config.image_feature_dim + inputs.state_dim
        check_layout_fields(config.layout_targets, config.layout_condition, config.layout_condition_cameras, inputs.cameras)
        # The feature slices of _frame_features kept beside the poses, in input order.
        f = config.image_feature_dim
        self._kept_features = [slice(i * f, (i + 1) * f) for i, c in enumerate(inputs.cameras) if c in config.layout_condition_cameras]
        per_frame = (
            config.layout_targets + len(self._kept_features) * f + inputs.state_dim if config.layout_condition else self.frame_dim
        )
        self.cond_dim = inputs.obs_horizon * per_frame
        if inputs.has_text:
            # A bag of words is enough to tell tasks apart (which cube to move); the VLA policy is
            # the one that reads instructions as sequences.
            self.word_embed = nn.Embedding(inputs.vocab_size, config.instruction_dim)
            self.cond_dim += config.instruction_dim
        if config.condition_mlp < 0:
            raise ValueError(f"condition_mlp must be >= 0, got {config.condition_mlp}")
        self.condition_mlp = None
        if config.condition_mlp:
            w = config.condition_mlp
            self.condition_mlp = nn.Sequential(nn.Linear(self.cond_dim, w), nn.Mish(), nn.Linear(w, w), nn.Mish())
            self.cond_dim = w
        self.stream_schedule = None
        if config.streaming:
            if not 0 <= config.stream_constant_fraction <= 1:
                raise ValueError(f"stream_constant_fraction must be in [0, 1], got {config.stream_constant_fraction}")
            self.stream_schedule = StreamingSchedule(inputs.action_horizon, config.stream_chunks, config.inference_steps, config.train_timesteps)
        self.unet = ConditionalUnet1D(
            inputs.action_dim, self.cond_dim, config.unet_channels, config.kernel_size, config.time_embed_dim,
            horizon=inputs.action_horizon if config.streaming else None,
        )
        self.alphas_cumprod = sampling.squaredcos_alphas_cumprod(config.train_timesteps)
        if config.keyframe_weight < 0:
            raise ValueError(f"keyframe_weight must be >= 0, got {config.keyframe_weight}")
        self.keyframe_head = None
        if config.keyframe_weight > 0:
            if not -inputs.action_dim <= config.keyframe_gripper_dim < inputs.action_dim:
                raise ValueError(f"keyframe_gripper_dim {config.keyframe_gripper_dim} is outside the {inputs.action_dim} action dimensions")
            self.keyframe_head = mlp_head(self.cond_dim, config.aux_hidden, inputs.action_dim)
        self.layout_head = None
        if config.layout_targets:
            layout_in = self.frame_dim if config.layout_condition else self.cond_dim
            self.layout_head = mlp_head(layout_in, config.aux_hidden, config.layout_targets)

    @property
    def embedding_dim(self) -> int:
        return self.cond_dim

    def encode(self, inputs: Mapping[str, torch.Tensor], augment: bool = False) -> dict[str, torch.Tensor]:
        frames, text = self._frame_features(inputs, augment)
        if self.config.layout_condition:
            assert self.layout_head is not None
            kept = [frames[..., cols] for cols in self._kept_features]
            frames = torch.cat([self.layout_head(frames).detach(), *kept, inputs["state"]], dim=-1)
        cond = frames.reshape(frames.shape[0], -1)
        if text is not None:
            cond = torch.cat([cond, text], dim=-1)
        if self.condition_mlp is not None:
            cond = self.condition_mlp(cond)
        return {"cond": cond}

    def _frame_features(self, inputs: Mapping[str, torch.Tensor], augment: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per observation frame, the cameras' features and the state ``(B, T, frame_dim)``, and
        the instruction features ``(B, instruction_dim)`` (None without an instruction)."""
        feats = []
        text = self.instruction_features(inputs["instruction"]) if self.inputs.has_text else None
        for cam in self.inputs.cameras:
            images = inputs[cam]
            b, t, c, h, w = images.shape
            flat = images.reshape(b * t, c, h, w)
            if augment and (self.config.shift_cameras is None or cam in self.config.shift_cameras):
                flat = random_shift(flat, self.config.image_shift)
            film = text[:, None, :].expand(b, t, self.film_dim).reshape(b * t, -1) if self.film_dim else None
            feats.append(self.image_encoders[_module_name(cam)](flat, film).reshape(b, t, -1))
        feats.append(inputs["state"])
        return torch.cat(feats, dim=-1), text

    def instruction_features(self, tokens: torch.Tensor) -> torch.Tensor:
        """Mean word embedding of the non-padding tokens ``(B, L)`` -> ``(B, instruction_dim)``."""
        mask = (tokens != 0).float().unsqueeze(-1)
        summed = (self.word_embed(tokens) * mask).sum(dim=1)
        return summed / mask.sum(dim=1).clamp(min=1.0)

    def step(self, sample: torch.Tensor, timestep: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.unet(sample, timestep, cond)

    def loss(
        self,
        inputs: Mapping[str, torch.Tensor],
        actions: torch.Tensor,
        generator: torch.Generator | None = None,
        keyframes: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """DDPM noise-prediction MSE on normalized ``actions (B, H, A)``; with normalized
        ``keyframes (B, A)`` plus ``keyframe_weight`` times the keyframe prediction MSE."""
        cond = self.encode(inputs, augment=self.training)["cond"]
        denoising = self._denoising_loss(cond, actions, generator)
        if keyframes is None:
            return denoising
        return denoising + self.config.keyframe_weight * self._keyframe_loss(cond, keyframes)

    def keyframe_loss(self, inputs: Mapping[str, torch.Tensor], keyframes: torch.Tensor) -> torch.Tensor:
        """MSE of the predicted next-keyframe action against normalized ``keyframes (B, A)``."""
        return self._keyframe_loss(self.encode(inputs)["cond"], keyframes)

    def _keyframe_loss(self, cond: torch.Tensor, keyframes: torch.Tensor) -> torch.Tensor:
        if self.keyframe_head is None:
            raise ValueError("this model has no keyframe head (keyframe_weight is 0)")
        return F.mse_loss(self.keyframe_head(cond), keyframes)

    def layout_loss(self, inputs: Mapping[str, torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
        """MSE of the predicted object poses of rendered layout views against ``targets (B, K)``
        (augmented like the demos' images while training)."""
        if self.layout_head is None:
            raise ValueError("this model has no layout head (layout_targets is 0)")
        if self.config.layout_condition:  # every frame of a still view shows the same layout
            frames, _ = self._frame_features(inputs, augment=self.training)
            return F.mse_loss(self.layout_head(frames), targets[:, None, :].expand(-1, frames.shape[1], -1))
        return F.mse_loss(self.layout_head(self.encode(inputs, augment=self.training)["cond"]), targets)

    def _denoising_loss(self, cond: torch.Tensor, actions: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        b = actions.shape[0]
        t = self.training_timesteps(b, generator)
        noise = torch.randn(actions.shape, generator=generator).to(actions.device)
        acp = torch.as_tensor(self.alphas_cumprod, dtype=torch.float32)[t].to(actions.device)
        acp = acp[:, None, None] if t.dim() == 1 else acp[..., None]
        noisy = acp.sqrt() * actions + (1 - acp).sqrt() * noise
        return F.mse_loss(self.step(noisy, t.to(actions.device).float(), cond), noise)

    def training_timesteps(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Noise levels to train on: ``(B,)`` uniform; streaming ``(B, H)`` in SDP's chunk-wise
        pattern — chunk ``i`` of ``h`` at ``⌊T(i+1)/h⌋ − 1 − j`` with one ``j ~ U{0 … ⌊T/h⌋−1}``
        per sample, as the rolling buffer holds them between calls — or, for
        ``stream_constant_fraction`` of the samples, one uniform level for the whole chunk."""
        T = self.config.train_timesteps
        if self.stream_schedule is None:
            return torch.randint(0, T, (batch,), generator=generator)
        H, h = self.stream_schedule.horizon, self.stream_schedule.chunks
        chunk = torch.arange(H) // self.stream_schedule.chunk_size
        j = torch.randint(0, T // h, (batch, 1), generator=generator)
        chunkwise = (T * (chunk[None] + 1)) // h - 1 - j
        constant = torch.randint(0, T, (batch, 1), generator=generator).expand(batch, H)
        use_constant = torch.rand(batch, 1, generator=generator) < self.config.stream_constant_fraction
        return torch.where(use_constant, constant, chunkwise)

    @torch.no_grad()
    def sample(self, inputs: Mapping[str, torch.Tensor], noise: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        """DDIM (eta = 0) from ``noise (B, H, A)``; normalized actions. Mirrors
        :func:`robostack.policies.sampling.ddim_update` in torch (the parity reference)."""
        cond = self.encode(inputs)["cond"]
        if cond.shape[0] == 1 and noise.shape[0] > 1:
            cond = cond.expand(noise.shape[0], -1)
        timesteps = sampling.ddim_timesteps(self.config.train_timesteps, steps or self.config.inference_steps)
        x = noise
        clip = self.config.clip_sample
        for i, t in enumerate(timesteps):
            eps = self.step(x, torch.full((x.shape[0],), float(t), device=x.device), cond)
            a_t = float(np.float32(self.alphas_cumprod[t]))
            a_prev = float(np.float32(self.alphas_cumprod[timesteps[i + 1]])) if i + 1 < len(timesteps) else 1.0
            x0 = (x - (1 - torch.tensor(a_t)).sqrt() * eps) / torch.tensor(a_t).sqrt()
            if clip:
                x0 = x0.clamp(-clip, clip)
            x = torch.tensor(a_prev).sqrt() * x0 + (1 - torch.tensor(a_prev)).sqrt() * eps
        return x
