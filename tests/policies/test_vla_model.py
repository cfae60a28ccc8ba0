"""The VLA-style model's grounding co-training: the layout query and head, layout conditioning
(the action context built from the located poses and the kept cameras' patches), and export."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="needs the train extra (torch)")

from robostack.policies.model_inputs import ModelInputs  # noqa: E402
from robostack.policies.vla_model import TINY_VLA, VlaConfig, VlaPolicyModel  # noqa: E402

TWO_CAMERAS = ModelInputs(
    cameras=("image/front", "image/wrist"), image_size=(16, 16), state_dim=4, action_dim=4, obs_horizon=1,
    action_horizon=8, vocab_size=6, text_length=3,
)
PATCHES = (16 // TINY_VLA.patch) ** 2


def _model(**fields) -> VlaPolicyModel:
    torch.manual_seed(0)
    return VlaPolicyModel(TWO_CAMERAS, VlaConfig.from_dict({**TINY_VLA.to_dict(), **fields}))


def _inputs() -> dict[str, torch.Tensor]:
    inputs = TWO_CAMERAS.example_inputs(batch=4)
    inputs["instruction"] = torch.randint(0, TWO_CAMERAS.vocab_size, (4, TWO_CAMERAS.text_length))
    return inputs


def _grads(module: torch.nn.Module) -> float:
    """Largest gradient magnitude in ``module`` (0 when nothing reached it)."""
    return max((float(p.grad.abs().max()) for p in module.parameters() if p.grad is not None), default=0.0)


def test_layout_co_training_reads_the_poses_from_a_query_token_through_the_prefix():
    model = _model(layout_targets=6)
    inputs = _inputs()
    # the action context is unchanged by co-training: every camera's patches, the state, the words
    context = model.encode(inputs)["context"]
    assert context.shape[1] == 2 * PATCHES + 1 + TWO_CAMERAS.text_length
    model.layout_loss(inputs, torch.zeros(4, 6)).backward()
    assert _grads(model.layout_head) > 0 and float(model.layout_query.grad.abs().max()) > 0
    assert _grads(model.prefix) > 0 and _grads(model.stems) > 0
    assert _grads(model.expert) == 0
    with pytest.raises(ValueError, match="no layout head"):
        _model().layout_loss(inputs, torch.zeros(4, 6))


def test_layout_condition_builds_the_context_from_the_poses_and_the_kept_cameras_only():
    model = _model(layout_targets=6, layout_condition=True, layout_condition_cameras=["image/wrist"])
    inputs = _inputs()
    context = model.encode(inputs)["context"]
    # one pose token, the wrist's patches, the state, the words: no front patches
    assert context.shape[1] == 1 + PATCHES + 1 + TWO_CAMERAS.text_length
    # the front camera reaches the context only through the located poses
    front = dict(inputs, **{"image/front": torch.rand_like(inputs["image/front"])})
    poses = model._locate(*model._input_tokens(inputs, augment=False))
    assert not torch.allclose(model._locate(*model._input_tokens(front, augment=False)), poses)
    with torch.no_grad():
        model.pose_token.weight.zero_()
    torch.testing.assert_close(model.encode(front)["context"], model.encode(inputs)["context"])


def test_layout_condition_trains_the_localizer_only_through_the_layout_views():
    model = _model(layout_targets=6, layout_condition=True, layout_condition_cameras=["image/wrist"])
    inputs = _inputs()
    model.loss(inputs, torch.zeros(4, TWO_CAMERAS.action_horizon, 4)).backward()
    assert _grads(model.localizer) == 0 and _grads(model.layout_head) == 0
    assert _grads(model.stems[0]) == 0  # front: only through the detached poses
    assert _grads(model.stems[1]) > 0 and _grads(model.prefix) > 0 and _grads(model.expert) > 0
    model.zero_grad()
    model.layout_loss(inputs, torch.zeros(4, 6)).backward()
    assert _grads(model.localizer) > 0 and _grads(model.stems[0]) > 0 and _grads(model.stems[1]) > 0
    assert _grads(model.prefix) == 0


def test_layout_config_errors_name_the_field():
    with pytest.raises(ValueError, match="layout_condition needs layout_targets"):
        _model(layout_condition=True)
    with pytest.raises(ValueError, match=r"layout_condition_cameras \['image/side'\]"):
        _model(layout_targets=6, layout_condition=True, layout_condition_cameras=["image/side"])
    with pytest.raises(ValueError, match="set it too"):
        _model(layout_targets=6, layout_condition_cameras=["image/wrist"])
    with pytest.raises(ValueError, match="layout_targets must be >= 0"):
        _model(layout_targets=-1)


@pytest.mark.parametrize("kept_cameras", [(), ("image/front",)])
def test_a_layout_conditioned_vla_exports_with_its_localizer_and_keeps_parity(tmp_path, kept_cameras):
    import sys
    from pathlib import Path

    import numpy as np
    import onnxruntime as ort

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from policy_packages import random_observation, tiny_vla_package

    from robostack.policies.onnx_policy import OnnxPolicy
    from robostack.policies.preprocessing import encoder_feed

    config = VlaConfig.from_dict(
        {**TINY_VLA.to_dict(), "layout_targets": 4, "layout_condition": True, "layout_condition_cameras": kept_cameras}
    )
    model, package = tiny_vla_package(tmp_path / "pkg", seed=3, config=config)
    rng = np.random.default_rng(3)
    feed = encoder_feed(package.spec, package.tokenizer, [random_observation(rng)])
    torch_feed = {k: torch.from_numpy(v) for k, v in feed.items()}
    session = ort.InferenceSession(str(package.root / "encoder.onnx"), providers=["CPUExecutionProvider"])
    context = session.run(["context"], feed)[0]
    expected = model.encode(torch_feed)["context"].detach().numpy()
    assert context.shape == expected.shape and context.shape[1] == 1 + len(kept_cameras) * 16 + 1 + package.tokenizer.max_length
    np.testing.assert_allclose(context, expected, atol=1e-5)
    noise = rng.standard_normal((2, package.spec.action_horizon, package.spec.action_dim)).astype(np.float32)
    onnx_chunks = OnnxPolicy(package).sample_actions(feed, 2, noise)
    torch_chunks = package.spec.action_normalization.invert(model.sample(torch_feed, torch.from_numpy(noise)).numpy())
    assert np.abs(onnx_chunks - torch_chunks).max() <= 1e-4
