"""The layout-views file: round trip, resizing, the held-out split, batches and clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from robostack.policies.layout_views import LayoutViews, LayoutViewsError


def make_views(n: int = 10, size: tuple[int, int] = (32, 32), state_dim: int = 4, camera: str = "image/front") -> LayoutViews:
    rng = np.random.default_rng(0)
    return LayoutViews(
        images={camera: rng.integers(0, 256, (n, *size, 3), dtype=np.uint8)},
        state=rng.normal(size=(n, state_dim)).astype(np.float32),
        instructions=np.asarray(["put the red cube in the bin", "put the blue cube in the bin"] * (n // 2)),
        targets=rng.uniform(-1, 1, (n, 3)).astype(np.float32),
        target_names=("cube.x", "cube.y", "bin.x"),
    )


def test_views_round_trip_and_resize_to_the_model_size(tmp_path):
    views = make_views()
    path = views.save(tmp_path / "views.npz")
    back = LayoutViews.load(path)
    np.testing.assert_array_equal(back.images["image/front"], views.images["image/front"])
    np.testing.assert_array_equal(back.targets, views.targets)
    assert back.target_names == views.target_names and list(back.instructions) == list(views.instructions)
    small = LayoutViews.load(path, image_size=(16, 16))
    assert small.images["image/front"].shape == (10, 16, 16, 3)
    # area resize: a 2x2 block's mean
    block = views.images["image/front"][0, :2, :2].reshape(-1, 3).astype(float).mean(axis=0)
    np.testing.assert_allclose(small.images["image/front"][0, 0, 0], block, atol=1)


def test_split_holds_out_the_last_views_and_batches_repeat_a_view_over_the_horizon():
    train, held_out = make_views().split(0.2)
    assert len(train) == 8 and held_out is not None and len(held_out) == 2
    np.testing.assert_array_equal(held_out.targets, make_views().targets[8:])
    assert make_views().split(0.0)[1] is None
    batch = train.batch(np.array([3, 5]), obs_horizon=2)
    assert batch["image/front"].shape == (2, 2, 32, 32, 3) and batch["state"].shape == (2, 2, 4)
    np.testing.assert_array_equal(batch["state"][:, 0], batch["state"][:, 1])
    assert batch["instruction"] == [str(train.instructions[3]), str(train.instructions[5])]


def test_bad_views_are_named(tmp_path):
    views = make_views()
    with pytest.raises(LayoutViewsError, match=r"targets: expected \(10, 2\)"):
        LayoutViews(views.images, views.state, views.instructions, views.targets, ("a", "b"))
    with pytest.raises(LayoutViewsError, match="image/front: expected"):
        LayoutViews({"image/front": views.images["image/front"][:5]}, views.state, views.instructions, views.targets, views.target_names)
    bad = views.targets.copy()
    bad[0, 0] = np.nan
    with pytest.raises(LayoutViewsError, match="finite"):
        LayoutViews(views.images, views.state, views.instructions, bad, views.target_names)
    np.savez(tmp_path / "partial.npz", state=views.state)
    with pytest.raises(LayoutViewsError, match=r"partial.npz: missing \['instruction', 'targets', 'target_names'\]"):
        LayoutViews.load(tmp_path / "partial.npz")
    with pytest.raises(LayoutViewsError, match="no views file"):
        LayoutViews.load(tmp_path / "absent.npz")


def test_select_targets_keeps_the_matching_targets_in_file_order_and_names_a_pattern_that_matches_none():
    views = make_views()
    picked = views.select_targets(("bin.*", "*.x"))
    assert picked.target_names == ("cube.x", "bin.x")
    np.testing.assert_array_equal(picked.targets, views.targets[:, [0, 2]])
    with pytest.raises(LayoutViewsError, match=r"\['\*\.yaw'\] match none"):
        views.select_targets(("*.x", "*.yaw"))
