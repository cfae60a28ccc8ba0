"""The diffusion model's auxiliary parts: the keyframe and layout heads, layout conditioning (with
cameras kept beside the poses), and per-camera shift augmentation."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="needs the train extra (torch)")

from robostack.policies.diffusion_model import TINY_DIFFUSION, DiffusionConfig, DiffusionPolicyModel  # noqa: E402
from robostack.policies.model_inputs import ModelInputs  # noqa: E402

TWO_CAMERAS = ModelInputs(cameras=("image/front", "image/wrist"), image_size=(32, 32), state_dim=4, action_dim=4, obs_horizon=1, action_horizon=8)


def _model(inputs: ModelInputs = TWO_CAMERAS, **fields) -> DiffusionPolicyModel:
    return DiffusionPolicyModel(inputs, DiffusionConfig.from_dict({**TINY_DIFFUSION.to_dict(), **fields}))


def test_keyframe_loss_reaches_the_image_encoders_and_not_the_denoiser():
    model = _model(keyframe_weight=1.0)
    model.keyframe_loss(TWO_CAMERAS.example_inputs(batch=4), torch.zeros(4, 4)).backward()
    encoder_grads = [p.grad for p in model.image_encoders.parameters() if p.grad is not None]
    assert encoder_grads and max(float(g.abs().max()) for g in encoder_grads) > 0
    assert all(p.grad is None for p in model.unet.parameters())
    with pytest.raises(ValueError, match="keyframe_gripper_dim 4"):
        _model(keyframe_weight=1.0, keyframe_gripper_dim=4)
    with pytest.raises(ValueError, match="no keyframe head"):
        _model().keyframe_loss(TWO_CAMERAS.example_inputs(batch=2), torch.zeros(2, 4))


def _features_twice(model: DiffusionPolicyModel, camera: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The camera's encoder features of the same batch in two augmented passes."""
    inputs = TWO_CAMERAS.example_inputs(batch=8)
    index = TWO_CAMERAS.cameras.index(camera)
    width = model.config.image_feature_dim
    out = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        out.append(model.encode(inputs, augment=True)["cond"][:, index * width : (index + 1) * width])
    return out[0], out[1]


def test_shift_cameras_limits_the_random_shift_to_the_named_cameras():
    wrist_only = _model(image_shift=4, shift_cameras=["image/wrist"])
    torch.testing.assert_close(*_features_twice(wrist_only, "image/front"))
    assert not torch.allclose(*_features_twice(wrist_only, "image/wrist"))
    everywhere = _model(image_shift=4)
    assert not torch.allclose(*_features_twice(everywhere, "image/front"))
    with pytest.raises(ValueError, match=r"shift_cameras \['image/side'\]"):
        _model(shift_cameras=["image/side"])


def test_layout_condition_feeds_the_denoiser_only_predicted_object_poses_and_state():
    model = _model(layout_targets=6, layout_condition=True)
    inputs = TWO_CAMERAS.example_inputs(batch=4)
    cond = model.encode(inputs)["cond"]
    assert cond.shape == (4, TWO_CAMERAS.obs_horizon * (6 + TWO_CAMERAS.state_dim))
    # the state passes through unchanged after the predicted poses
    torch.testing.assert_close(cond[:, 6:], inputs["state"].reshape(4, -1))
    # the images change the condition only through the head's poses
    other = dict(inputs, **{"image/front": torch.rand_like(inputs["image/front"])})
    changed = model.encode(other)["cond"]
    assert not torch.allclose(changed[:, :6], cond[:, :6])
    torch.testing.assert_close(changed[:, 6:], cond[:, 6:])


def test_layout_condition_cameras_keep_their_features_beside_the_poses():
    model = _model(layout_targets=6, layout_condition=True, layout_condition_cameras=["image/wrist"])
    width = model.config.image_feature_dim
    inputs = TWO_CAMERAS.example_inputs(batch=4)
    cond = model.encode(inputs)["cond"]
    assert cond.shape == (4, 6 + width + TWO_CAMERAS.state_dim)
    torch.testing.assert_close(cond[:, 6 + width :], inputs["state"].reshape(4, -1))
    # the front camera reaches the condition only through the poses, the wrist camera directly too
    front = model.encode(dict(inputs, **{"image/front": torch.rand_like(inputs["image/front"])}))["cond"]
    torch.testing.assert_close(front[:, 6:], cond[:, 6:])
    wrist = model.encode(dict(inputs, **{"image/wrist": torch.rand_like(inputs["image/wrist"])}))["cond"]
    assert not torch.allclose(wrist[:, 6 : 6 + width], cond[:, 6 : 6 + width])
    # the denoising loss now trains the wrist encoder (not the front one), the views train both
    model.loss(inputs, torch.zeros(4, TWO_CAMERAS.action_horizon, 4)).backward()
    grads = {name: [p.grad for p in enc.parameters() if p.grad is not None] for name, enc in model.image_encoders.items()}
    assert all(float(g.abs().max()) == 0 for g in grads["image_front"])
    assert max(float(g.abs().max()) for g in grads["image_wrist"]) > 0
    with pytest.raises(ValueError, match=r"layout_condition_cameras \['image/side'\]"):
        _model(layout_targets=6, layout_condition=True, layout_condition_cameras=["image/side"])
    with pytest.raises(ValueError, match="set it too"):
        _model(layout_targets=6, layout_condition_cameras=["image/wrist"])


def test_layout_condition_trains_the_encoders_only_through_the_layout_views():
    model = _model(layout_targets=6, layout_condition=True)
    inputs = TWO_CAMERAS.example_inputs(batch=4)
    model.loss(inputs, torch.zeros(4, TWO_CAMERAS.action_horizon, 4)).backward()
    assert all(p.grad is None or float(p.grad.abs().max()) == 0 for p in model.image_encoders.parameters())
    assert all(p.grad is None for p in model.layout_head.parameters())
    assert any(p.grad is not None for p in model.unet.parameters())
    model.zero_grad()
    model.layout_loss(inputs, torch.zeros(4, 6)).backward()
    assert max(float(p.grad.abs().max()) for p in model.image_encoders.parameters() if p.grad is not None) > 0
    with pytest.raises(ValueError, match="layout_condition needs layout_targets"):
        _model(layout_condition=True)


@pytest.mark.parametrize("condition_mlp, kept_cameras", [(0, ()), (32, ()), (0, ("image/front",))])
def test_a_layout_conditioned_policy_exports_with_its_head_and_keeps_parity(tmp_path, condition_mlp, kept_cameras):
    import sys
    from pathlib import Path

    import numpy as np
    import onnxruntime as ort

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from policy_packages import random_observation, tiny_diffusion_package

    from robostack.policies.onnx_policy import OnnxPolicy
    from robostack.policies.preprocessing import encoder_feed

    config = DiffusionConfig.from_dict(
        {**TINY_DIFFUSION.to_dict(), "layout_targets": 6, "layout_condition": True, "condition_mlp": condition_mlp,
         "layout_condition_cameras": kept_cameras}
    )
    model, package = tiny_diffusion_package(tmp_path / "pkg", seed=2, config=config)
    per_frame = 6 + len(kept_cameras) * config.image_feature_dim + 8
    assert package.spec.embedding_dim == (condition_mlp or package.spec.observation_horizon * per_frame)
    rng = np.random.default_rng(2)
    history = [random_observation(rng) for _ in range(package.spec.observation_horizon)]
    feed = encoder_feed(package.spec, package.tokenizer, history)
    torch_feed = {k: torch.from_numpy(v) for k, v in feed.items()}
    # the encoder graph, where the layout head and the condition MLP live, matches torch closely
    (cond,) = ort.InferenceSession(str(package.root / "encoder.onnx"), providers=["CPUExecutionProvider"]).run(None, feed)
    np.testing.assert_allclose(cond, model.encode(torch_feed)["cond"].detach().numpy(), atol=1e-6)
    # Whole chunks within the package parity tolerance. (An untrained tiny denoiser amplifies
    # float32 differences over the 16 DDIM steps: for some seeds its chunks differ by ~1e-4.)
    noise = rng.standard_normal((2, package.spec.action_horizon, package.spec.action_dim)).astype(np.float32)
    onnx_chunks = OnnxPolicy(package).sample_actions(feed, 2, noise)
    torch_chunks = package.spec.action_normalization.invert(model.sample(torch_feed, torch.from_numpy(noise)).numpy())
    assert np.abs(onnx_chunks - torch_chunks).max() <= 1e-4
