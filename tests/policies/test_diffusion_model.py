"""The diffusion model's training-only parts: the keyframe head and per-camera shift augmentation."""

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
