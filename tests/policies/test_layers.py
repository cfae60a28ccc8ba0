"""Shared torch layers: the image encoder's per-stage strides (keypoint resolution)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs the train extra (torch)")

from policy_packages import ACTION_DIM, STATE_DIM, normalizations, random_observation  # noqa: E402


def _last_feature_map(encoder, images):
    x = images
    for stage in encoder.stages:
        x = stage(x)
    return x


def test_a_stride_one_last_stage_doubles_the_keypoint_map_resolution():
    from robostack.policies.layers import ImageEncoder

    images = torch.rand(2, 3, 48, 64)
    default = ImageEncoder((8, 16, 32), keypoints=4, out_dim=8)
    finer = ImageEncoder((8, 16, 32), keypoints=4, out_dim=8, strides=(2, 2, 1))
    assert _last_feature_map(default, images).shape[-2:] == (6, 8)
    assert _last_feature_map(finer, images).shape[-2:] == (12, 16)
    assert finer(images).shape == (2, 8)


@pytest.mark.parametrize("strides", [(2, 2), (2, 3, 1), (0, 2, 2)])
def test_image_encoder_names_bad_strides(strides):
    from robostack.policies.layers import ImageEncoder

    with pytest.raises(ValueError, match="strides"):
        ImageEncoder((8, 16, 32), keypoints=4, out_dim=8, strides=strides)


def test_encoder_graph_with_a_stride_one_stage_matches_torch(tmp_path):
    from robostack.policies.diffusion_model import TINY_DIFFUSION, DiffusionConfig, DiffusionPolicyModel
    from robostack.policies.export import export_model
    from robostack.policies.model_inputs import ModelInputs
    from robostack.policies.onnx_policy import OnnxPolicy
    from robostack.policies.preprocessing import encoder_feed

    torch.manual_seed(0)
    config = dataclasses.replace(TINY_DIFFUSION, image_strides=(2, 1))
    assert DiffusionConfig.from_dict(config.to_dict()) == config
    inputs = ModelInputs(("image/front",), (32, 32), STATE_DIM, ACTION_DIM, 2, 8)
    model = DiffusionPolicyModel(inputs, config).eval()
    state, action = normalizations(0)
    package = export_model(model, tmp_path / "pkg", fps=20, state_normalization=state, action_normalization=action)
    feed = encoder_feed(package.spec, package.tokenizer, [random_observation(np.random.default_rng(1)) for _ in range(2)])
    with torch.no_grad():
        cond = model.encode({k: torch.from_numpy(v) for k, v in feed.items()})["cond"]
    assert np.abs(OnnxPolicy(package).encode(feed)["cond"] - cond.numpy()).max() <= 1e-5
