"""What a policy model consumes and produces, independent of the architecture: the camera
inputs, the state and action sizes, the horizons and the optional instruction."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class ModelInputs:
    """Input/output sizes of a policy model. Camera names are observation keys
    (``image/front``); the state input is called ``state`` and the instruction ``instruction``."""

    cameras: tuple[str, ...]
    image_size: tuple[int, int]
    state_dim: int
    action_dim: int
    obs_horizon: int = 2
    action_horizon: int = 16
    vocab_size: int = 0
    text_length: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "cameras", tuple(self.cameras))
        object.__setattr__(self, "image_size", tuple(self.image_size))
        if self.state_dim < 1 or self.action_dim < 1:
            raise ValueError(f"state_dim and action_dim must be >= 1, got {self.state_dim}, {self.action_dim}")
        if self.obs_horizon < 1 or self.action_horizon < 1:
            raise ValueError(f"horizons must be >= 1, got obs {self.obs_horizon}, action {self.action_horizon}")
        if (self.vocab_size > 0) != (self.text_length > 0):
            raise ValueError("vocab_size and text_length must both be set for an instruction input, or both 0")

    @property
    def has_text(self) -> bool:
        return self.text_length > 0

    def input_names(self) -> list[str]:
        """Encoder graph inputs, in the order the exported graph takes them."""
        return [*self.cameras, "state", *(["instruction"] if self.has_text else [])]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelInputs":
        return cls(**{**d, "cameras": tuple(d["cameras"]), "image_size": tuple(d["image_size"])})

    def example_inputs(self, batch: int = 1, seed: int = 0) -> dict[str, Any]:
        """Random normalized inputs of the right shapes (torch tensors), for export and tests."""
        import torch

        g = torch.Generator().manual_seed(seed)
        h, w = self.image_size
        out: dict[str, Any] = {}
        for cam in self.cameras:
            out[cam] = torch.rand(batch, self.obs_horizon, 3, h, w, generator=g) * 2 - 1
        out["state"] = torch.rand(batch, self.obs_horizon, self.state_dim, generator=g) * 2 - 1
        if self.has_text:
            out["instruction"] = torch.randint(0, self.vocab_size, (batch, self.text_length), generator=g)
        return out
