"""VLA-style flow-matching policy (torch): image patch tokens, state tokens and instruction
tokens go through a small transformer (the prefix); an action expert — transformer blocks over
the H action tokens that cross-attend to the prefix — predicts the flow velocity that carries
Gaussian noise (time 0) to the action chunk (time 1), integrated with ~10 Euler steps.

Exported as ``encoder`` (observation -> ``context`` tokens and the pooled ``embedding``) and
``step`` (``sample``, ``timestep`` in [0, 1], ``context`` -> ``velocity``).

Grounding co-training (``layout_targets``): a query token read out by a small head learns the
object poses of rendered layout views (:mod:`..layout_views`). With ``layout_condition`` a
separate *localizer* transformer does that over every camera, and the action context is built
from the poses it locates (one token, detached), the ``layout_condition_cameras``' patches, the
state and the instruction; the other cameras reach the action expert only through the poses.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

import torch
from torch import nn
from torch.nn import functional as F

from robostack.policies import sampling
from robostack.policies.layers import TransformerBlock, group_count, mlp_head, random_shift, sinusoidal_embedding
from robostack.policies.layout_views import check_layout_fields
from robostack.policies.model_inputs import ModelInputs


@dataclass(frozen=True)
class VlaConfig:
    """Architecture and sampler. Images are cut into ``patch``-pixel patches by a small
    convolutional stem (stride ``patch``)."""

    dim: int = 128
    heads: int = 4
    prefix_layers: int = 4
    expert_layers: int = 4
    patch: int = 8
    stem_channels: int = 32
    flow_steps: int = 10
    image_shift: int = 4
    aux_hidden: int = 128
    """Hidden width of the layout head."""
    layout_targets: int = 0
    """Size of the object-pose targets of rendered layout views, set by training from the views
    file; a query token and a head learn them (training only, not exported, unless
    ``layout_condition``). 0: no layout head."""
    layout_condition: bool = False
    """With layout views: a localizer transformer over every camera locates the objects, and the
    action expert attends to those poses (detached) instead of to every camera's patches, so it
    can only use what locates the objects on any layout, not what tells the ~200 training layouts
    apart (``docs/policies.md``)."""
    layout_condition_cameras: tuple[str, ...] = ()
    """With ``layout_condition``: camera inputs (``image/wrist``) whose patch tokens still join the
    action context beside the poses (a wrist camera sees the fingers and the object together)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "VlaConfig":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


TINY_VLA = VlaConfig(dim=32, heads=2, prefix_layers=1, expert_layers=1, patch=8, stem_channels=8)


class PatchStem(nn.Module):
    """``(N, 3, H, W)`` -> ``(N, (H/p)·(W/p), dim)`` patch tokens: a stride-p/2 conv, then a
    stride-2 conv (two levels of features instead of one linear patch projection)."""

    def __init__(self, patch: int, channels: int, dim: int) -> None:
        super().__init__()
        if patch < 2 or patch % 2:
            raise ValueError(f"patch must be an even number >= 2, got {patch}")
        self.conv1 = nn.Conv2d(3, channels, patch // 2, stride=patch // 2)
        self.norm = nn.GroupNorm(group_count(channels), channels)
        self.conv2 = nn.Conv2d(channels, dim, 2, stride=2)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.conv2(F.gelu(self.norm(self.conv1(images))))
        return x.flatten(2).transpose(1, 2)


class VlaPolicyModel(nn.Module):
    """Prefix transformer over [image patches | state | instruction] + flow-matching action expert."""

    kind = "vla"
    encoder_outputs = ("context", "embedding")
    embedding_output = "embedding"
    prediction = "velocity"

    def __init__(self, inputs: ModelInputs, config: VlaConfig | None = None) -> None:
        super().__init__()
        config = config or VlaConfig()
        h, w = inputs.image_size
        if h % config.patch or w % config.patch:
            raise ValueError(f"image size {h}x{w} must be a multiple of the patch size {config.patch}")
        if not inputs.cameras:
            raise ValueError("the vla policy needs at least one camera")
        self.inputs = inputs
        self.config = config
        d = config.dim
        n_patches = (h // config.patch) * (w // config.patch)
        self.stems = nn.ModuleList([PatchStem(config.patch, config.stem_channels, d) for _ in inputs.cameras])
        # one learned position per (camera, frame, patch), per state frame and per word slot
        self.image_pos = nn.Parameter(torch.randn(len(inputs.cameras), inputs.obs_horizon, n_patches, d) * 0.02)
        self.state_proj = nn.Linear(inputs.state_dim, d)
        self.state_pos = nn.Parameter(torch.randn(inputs.obs_horizon, d) * 0.02)
        if inputs.has_text:
            self.word_embed = nn.Embedding(inputs.vocab_size, d)
            self.word_pos = nn.Parameter(torch.randn(inputs.text_length, d) * 0.02)
        self.prefix = nn.ModuleList([TransformerBlock(d, config.heads) for _ in range(config.prefix_layers)])
        self.prefix_norm = nn.LayerNorm(d)
        self.action_in = nn.Linear(inputs.action_dim, d)
        self.action_pos = nn.Parameter(torch.randn(inputs.action_horizon, d) * 0.02)
        self.time_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.expert = nn.ModuleList([TransformerBlock(d, config.heads, cross=True) for _ in range(config.expert_layers)])
        self.action_norm = nn.LayerNorm(d)
        self.action_out = nn.Linear(d, inputs.action_dim)
        check_layout_fields(config.layout_targets, config.layout_condition, config.layout_condition_cameras, inputs.cameras)
        self.layout_head = None
        self._kept_cameras = [k for k, cam in enumerate(inputs.cameras) if cam in config.layout_condition_cameras]
        if config.layout_targets:
            self.layout_query = nn.Parameter(torch.randn(1, 1, d) * 0.02)
            self.layout_head = mlp_head(d, config.aux_hidden, config.layout_targets)
        if config.layout_condition:
            self.localizer = nn.ModuleList([TransformerBlock(d, config.heads) for _ in range(config.prefix_layers)])
            self.localizer_norm = nn.LayerNorm(d)
            self.pose_token = nn.Linear(config.layout_targets, d)

    @property
    def embedding_dim(self) -> int:
        return self.config.dim

    def encode(self, inputs: Mapping[str, torch.Tensor], augment: bool = False) -> dict[str, torch.Tensor]:
        cameras, others = self._input_tokens(inputs, augment)
        if self.config.layout_condition:
            poses = self._locate(cameras, others).detach()
            tokens = [self.pose_token(poses)[:, None, :], *(cameras[k] for k in self._kept_cameras), *others]
        else:
            tokens = [*cameras, *others]
        x = _run_blocks(self.prefix, self.prefix_norm, torch.cat(tokens, dim=1))
        return {"context": x, "embedding": x.mean(dim=1)}

    def _input_tokens(self, inputs: Mapping[str, torch.Tensor], augment: bool) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per camera its patch tokens ``(B, T·P, dim)``; then the state and the word tokens."""
        cameras = []
        for k, (cam, stem) in enumerate(zip(self.inputs.cameras, self.stems)):
            images = inputs[cam]
            b, t, c, h, w = images.shape
            flat = images.reshape(b * t, c, h, w)
            if augment:
                flat = random_shift(flat, self.config.image_shift)
            patches = stem(flat).reshape(b, t, -1, self.config.dim) + self.image_pos[k]
            cameras.append(patches.reshape(b, -1, self.config.dim))
        others = [self.state_proj(inputs["state"]) + self.state_pos]
        if self.inputs.has_text:
            # padding ids are ordinary tokens here: the sequence length is fixed, so the model
            # learns to ignore them, and the graph needs no attention mask
            others.append(self.word_embed(inputs["instruction"]) + self.word_pos)
        return cameras, others

    def _locate(self, cameras: list[torch.Tensor], others: list[torch.Tensor]) -> torch.Tensor:
        """Object poses ``(B, layout_targets)`` read out of the layout query token, by the
        localizer with ``layout_condition``, else by the prefix itself (co-training only)."""
        assert self.layout_head is not None
        query = self.layout_query.expand(cameras[0].shape[0], -1, -1)
        x = torch.cat([*cameras, *others, query], dim=1)
        if self.config.layout_condition:
            x = _run_blocks(self.localizer, self.localizer_norm, x)
        else:
            x = _run_blocks(self.prefix, self.prefix_norm, x)
        return self.layout_head(x[:, -1])

    def layout_loss(self, inputs: Mapping[str, torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
        """MSE of the located object poses of rendered layout views against ``targets (B, K)``."""
        if self.layout_head is None:
            raise ValueError("this model has no layout head (layout_targets is 0)")
        return F.mse_loss(self._locate(*self._input_tokens(inputs, augment=self.training)), targets)

    def step(self, sample: torch.Tensor, timestep: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Velocity ``(B, H, A)`` at flow time ``timestep (B,)`` in [0, 1]."""
        time = self.time_mlp(sinusoidal_embedding(timestep * 1000.0, self.config.dim))
        x = self.action_in(sample) + self.action_pos + time[:, None, :]
        for block in self.expert:
            x = block(x, context)
        return self.action_out(self.action_norm(x))

    def loss(self, inputs: Mapping[str, torch.Tensor], actions: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Flow-matching MSE: ``x_t = t·a + (1 - t)·ε``, target velocity ``a − ε``."""
        context = self.encode(inputs, augment=self.training)["context"]
        b = actions.shape[0]
        t = torch.rand(b, generator=generator).to(actions.device)
        noise = torch.randn(actions.shape, generator=generator).to(actions.device)
        x_t = t[:, None, None] * actions + (1 - t[:, None, None]) * noise
        return F.mse_loss(self.step(x_t, t, context), actions - noise)

    @torch.no_grad()
    def sample(self, inputs: Mapping[str, torch.Tensor], noise: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        """Euler integration from ``noise`` at t = 0 to t = 1 (the parity reference)."""
        context = self.encode(inputs)["context"]
        if context.shape[0] == 1 and noise.shape[0] > 1:
            context = context.expand(noise.shape[0], -1, -1)
        n = steps or self.config.flow_steps
        x = noise
        for t in sampling.flow_times(n):
            x = x + (1.0 / n) * self.step(x, torch.full((x.shape[0],), float(t), device=x.device), context)
        return x


def _run_blocks(blocks: nn.ModuleList, norm: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    for block in blocks:
        x = block(x)
    return norm(x)
