"""Normalization, image resizing, tokenizer and sampler updates (numpy side, no torch)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from robostack.policies import sampling
from robostack.policies.normalization import Normalization, NormalizationError, default_image_normalization, min_max_from_data
from robostack.policies.preprocessing import ObservationError, resize_image
from robostack.policies.tokenizer import TokenizerError, WordTokenizer


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 6), st.integers(0, 2**31 - 1))
def test_min_max_maps_data_into_minus_one_one_and_inverts(dim, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(20, dim)) * rng.uniform(0.1, 10, dim) + rng.normal(size=dim)
    norm = min_max_from_data(x)
    y = norm.apply(x)
    assert y.min() >= -1 - 1e-5 and y.max() <= 1 + 1e-5
    np.testing.assert_allclose(norm.invert(y), x, rtol=1e-5, atol=1e-5)


def test_constant_dimension_is_centred_not_divided_by_zero():
    norm = min_max_from_data(np.array([[1.0, 0.5], [3.0, 0.5]]))
    y = norm.apply(np.array([[2.0, 0.5], [2.0, 0.7]]))
    np.testing.assert_allclose(y, [[0.0, 0.0], [0.0, 0.2]], atol=1e-6)


def test_image_normalization_goes_channel_first_in_minus_one_one():
    img = np.zeros((2, 4, 6, 3), np.uint8)
    img[..., 0] = 255
    out = default_image_normalization().apply(img)
    assert out.shape == (2, 3, 4, 6) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, 0], 1.0)
    np.testing.assert_allclose(out[:, 1:], -1.0)


def test_image_normalization_applies_per_channel_mean_and_std_as_declared():
    norm = Normalization.from_dict({"type": "image", "scale": 1 / 255, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]})
    img = np.random.default_rng(1).integers(0, 256, (2, 5, 7, 3), dtype=np.uint8)
    expected = ((img / 255.0 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]).transpose(0, 3, 1, 2)
    for _ in range(2):  # the per-channel constants are computed once and reused
        out = norm.apply(img)
        assert out.dtype == np.float32 and out.flags.c_contiguous
        np.testing.assert_allclose(out, expected, atol=2e-6)
    assert norm.apply(img[0]).shape == (3, 5, 7)  # one frame, no batch axis


def test_normalization_spec_errors_name_the_field():
    with pytest.raises(NormalizationError, match=r"action.normalization.type: unknown normalization 'zscore'"):
        Normalization.from_dict({"type": "zscore"}, "action.normalization")
    with pytest.raises(NormalizationError, match="needs field 'std'"):
        Normalization.from_dict({"type": "mean_std", "mean": [0.0]})
    with pytest.raises(NormalizationError, match="every std must be > 0"):
        Normalization.from_dict({"type": "mean_std", "mean": [0.0], "std": [0.0]})


def test_area_resize_averages_blocks_and_keeps_flat_images_flat():
    img = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    out = resize_image(img, 2, 3)
    expected = img.reshape(2, 2, 3, 2, 3).astype(np.float64).mean(axis=(1, 3))
    np.testing.assert_array_equal(out, np.rint(expected).astype(np.uint8))
    flat = np.full((224, 224, 3), 77, np.uint8)
    assert np.all(resize_image(flat, 64, 64) == 77)
    assert resize_image(flat, 96, 80).shape == (96, 80, 3)
    with pytest.raises(ObservationError, match=r"expected an \(H, W, 3\) image"):
        resize_image(np.zeros((4, 4)), 2, 2)


def test_word_tokenizer_pads_cuts_and_marks_unknown_words():
    tok = WordTokenizer.build(["Put the red cube in the bin", "put the BLUE cube in the bin!"], max_length=6)
    assert tok.vocab[:2] == ("<pad>", "<unk>")
    ids = tok.encode("put the red cube")
    assert len(ids) == 6 and ids[4:] == [0, 0] and 1 not in ids
    assert tok.encode("put the green cube")[2] == 1
    assert tok.unknown_words("put the green cube") == ["green"]
    assert len(tok.encode("put the red cube in the bin now")) == 6
    assert WordTokenizer.from_dict(tok.to_dict()) == tok
    with pytest.raises(TokenizerError, match=r"unknown field\(s\) \['merges'\]"):
        WordTokenizer.from_dict({**tok.to_dict(), "merges": []})


def test_ddim_with_the_true_noise_recovers_the_clean_sample():
    acp = sampling.squaredcos_alphas_cumprod(100)
    rng = np.random.default_rng(0)
    x0 = rng.uniform(-0.9, 0.9, (2, 8, 3)).astype(np.float32)
    eps = rng.standard_normal(x0.shape).astype(np.float32)
    ts = sampling.ddim_timesteps(100, 10)
    assert ts[0] == 90 and ts[-1] == 0 and len(ts) == 10
    x = (np.sqrt(acp[ts[0]]) * x0 + np.sqrt(1 - acp[ts[0]]) * eps).astype(np.float32)
    for i, t in enumerate(ts):
        x = sampling.ddim_update(x, eps, int(t), int(ts[i + 1]) if i + 1 < len(ts) else -1, acp, 1.0)
    np.testing.assert_allclose(x, x0, atol=1e-4)


def test_flow_euler_with_the_true_velocity_reaches_the_target():
    rng = np.random.default_rng(0)
    noise, target = rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 4, 3))
    x = noise.astype(np.float32)
    for _ in sampling.flow_times(10):
        x = sampling.flow_update(x, (target - noise).astype(np.float32), 0.1)
    np.testing.assert_allclose(x, target, atol=1e-5)


def test_sampler_step_counts_are_checked():
    with pytest.raises(ValueError, match=r"DDIM steps must be in \[1, 100\]"):
        sampling.ddim_timesteps(100, 0)
    with pytest.raises(ValueError, match="flow steps must be >= 1"):
        sampling.flow_times(0)
