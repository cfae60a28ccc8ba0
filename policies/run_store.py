"""A training run directory: what was trained on what (``run.json``), checkpoints, metrics.

::

    RUN_DIR/run.json               policy kind, model inputs and config, normalization, tokenizer,
                                   dataset provenance, training config
    RUN_DIR/checkpoints/last.pt    model, EMA model, optimizer, scheduler, step, RNG states
    RUN_DIR/metrics.jsonl          one JSON object per logged train / validation point
    RUN_DIR/loss.png               train and validation loss curves

Only ``checkpoint`` helpers import torch.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robostack.policies.model_inputs import ModelInputs
from robostack.policies.normalization import Normalization
from robostack.policies.tokenizer import WordTokenizer

RUN_JSON = "run.json"
CHECKPOINT = "checkpoints/last.pt"
METRICS = "metrics.jsonl"
LOSS_PLOT = "loss.png"
POLICY_KINDS = ("diffusion", "vla")


class RunError(ValueError):
    """A run directory that cannot be used (missing files, wrong kind)."""


@dataclass
class RunInfo:
    """Everything export needs besides the weights."""

    kind: str
    inputs: ModelInputs
    model_config: dict[str, Any]
    fps: float
    state_normalization: Normalization
    action_normalization: Normalization
    image_normalization: Normalization
    action_names: tuple[str, ...] = ()
    tokenizer: WordTokenizer | None = None
    dataset: dict[str, Any] = field(default_factory=dict)
    train_config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "inputs": self.inputs.to_dict(),
            "model_config": self.model_config,
            "fps": self.fps,
            "state_normalization": self.state_normalization.to_dict(),
            "action_normalization": self.action_normalization.to_dict(),
            "image_normalization": self.image_normalization.to_dict(),
            "action_names": list(self.action_names),
            "tokenizer": None if self.tokenizer is None else self.tokenizer.to_dict(),
            "dataset": self.dataset,
            "train_config": self.train_config,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunInfo":
        if d.get("kind") not in POLICY_KINDS:
            raise RunError(f"run.json: unknown policy kind {d.get('kind')!r}; expected one of {POLICY_KINDS}")
        return cls(
            kind=d["kind"],
            inputs=ModelInputs.from_dict(d["inputs"]),
            model_config=d["model_config"],
            fps=float(d["fps"]),
            state_normalization=Normalization.from_dict(d["state_normalization"]),
            action_normalization=Normalization.from_dict(d["action_normalization"]),
            image_normalization=Normalization.from_dict(d["image_normalization"]),
            action_names=tuple(d.get("action_names") or ()),
            tokenizer=None if d.get("tokenizer") is None else WordTokenizer.from_dict(d["tokenizer"]),
            dataset=d.get("dataset") or {},
            train_config=d.get("train_config") or {},
        )

    def save(self, run_dir: str | Path) -> Path:
        path = Path(run_dir) / RUN_JSON
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2))
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, run_dir: str | Path) -> "RunInfo":
        path = Path(run_dir) / RUN_JSON
        if not path.is_file():
            raise RunError(f"{run_dir}: not a training run (no {RUN_JSON})")
        return cls.from_dict(json.loads(path.read_text()))


def build_model(info: RunInfo) -> Any:
    """The torch model a run trains (untrained weights)."""
    if info.kind == "diffusion":
        from robostack.policies.diffusion_model import DiffusionConfig, DiffusionPolicyModel

        return DiffusionPolicyModel(info.inputs, DiffusionConfig.from_dict(info.model_config))
    from robostack.policies.vla_model import VlaConfig, VlaPolicyModel

    return VlaPolicyModel(info.inputs, VlaConfig.from_dict(info.model_config))


def save_checkpoint(run_dir: str | Path, state: dict[str, Any]) -> Path:
    """Write ``checkpoints/last.pt`` atomically (a kill mid-write keeps the previous one)."""
    import torch

    path = Path(run_dir) / CHECKPOINT
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".pt.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(run_dir: str | Path) -> dict[str, Any]:
    import torch

    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        raise RunError(f"{run_dir}: no checkpoint at {CHECKPOINT}")
    return torch.load(path, map_location="cpu", weights_only=False)


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
