"""The diffusion policy's optional instruction input (a pooled bag of words in the condition):
exported graphs match torch, the words change the chunk, padding does not."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs the train extra (torch)")

from policy_datasets import INSTRUCTIONS  # noqa: E402
from policy_packages import ACTION_DIM, STATE_DIM, normalizations, random_observation  # noqa: E402

TOLERANCE = 1e-4


def _instructed_diffusion(tmp_path, seed: int = 0):
    from robostack.policies.diffusion_model import TINY_DIFFUSION, DiffusionPolicyModel
    from robostack.policies.export import export_model
    from robostack.policies.model_inputs import ModelInputs
    from robostack.policies.tokenizer import WordTokenizer

    torch.manual_seed(seed)
    tokenizer = WordTokenizer.build(INSTRUCTIONS, max_length=8)
    inputs = ModelInputs(("image/front",), (32, 32), STATE_DIM, ACTION_DIM, 2, 8, tokenizer.size, tokenizer.max_length)
    model = DiffusionPolicyModel(inputs, TINY_DIFFUSION).eval()
    # random init gives near-identical word vectors a scale the tiny UNet barely notices
    with torch.no_grad():
        model.word_embed.weight.mul_(5.0)
    state, action = normalizations(seed)
    package = export_model(model, tmp_path / "pkg", fps=20, state_normalization=state, action_normalization=action, tokenizer=tokenizer)
    return model, package


def test_instructed_diffusion_chunks_from_onnxruntime_match_torch(tmp_path):
    from robostack.policies.onnx_policy import OnnxPolicy
    from robostack.policies.preprocessing import encoder_feed

    model, package = _instructed_diffusion(tmp_path)
    assert "instruction" in {i.name for i in package.spec.inputs}
    rng = np.random.default_rng(0)
    feed = encoder_feed(package.spec, package.tokenizer, [random_observation(rng) for _ in range(2)])
    noise = rng.standard_normal((3, 8, ACTION_DIM)).astype(np.float32)
    onnx_chunks = OnnxPolicy(package).sample_actions(feed, 3, noise)
    torch_chunks = package.spec.action_normalization.invert(
        model.sample({k: torch.from_numpy(v) for k, v in feed.items()}, torch.from_numpy(noise)).numpy()
    )
    assert np.abs(onnx_chunks - torch_chunks).max() <= TOLERANCE


def test_instruction_words_change_the_diffusion_chunk_and_padding_does_not(tmp_path):
    model, package = _instructed_diffusion(tmp_path)
    tok = package.tokenizer
    red = torch.tensor([tok.encode("put the red cube in the bin")])
    blue = torch.tensor([tok.encode("put the blue cube in the bin")])
    assert not torch.allclose(model.instruction_features(red), model.instruction_features(blue))
    # the pooled features average over words only: trailing padding leaves them unchanged
    short = torch.tensor([[5, 6, 0, 0]])
    assert torch.allclose(model.instruction_features(short), model.instruction_features(torch.tensor([[5, 6]])))


def test_train_config_rejects_unknown_model_overrides_and_language_free_vla(tmp_path):
    from robostack.policies.training import TrainConfig

    with pytest.raises(ValueError, match="unknown diffusion model field"):
        TrainConfig(dataset="d", out=str(tmp_path), model_overrides={"unet_width": 3})
    with pytest.raises(ValueError, match="vla policy always reads the instruction"):
        TrainConfig(dataset="d", out=str(tmp_path), policy="vla", instruction=False)
    assert TrainConfig(dataset="d", out=str(tmp_path)).instruction is False
    assert TrainConfig(dataset="d", out=str(tmp_path), policy="vla").instruction is True
