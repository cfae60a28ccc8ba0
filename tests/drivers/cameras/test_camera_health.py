from __future__ import annotations

import numpy as np
import pytest

from robostack.drivers.cameras.frame import FrameFlags
from robostack.drivers.cameras.health import FrameHealthConfig, FrameHealthMonitor
from robostack.drivers.cameras.stats import CameraStats

PERIOD = 10_000_000  # 100 fps


def monitor(period_ns: int | None = PERIOD, **config: float) -> FrameHealthMonitor:
    health = FrameHealthMonitor(FrameHealthConfig(**config), CameraStats(), period_ns)
    health.restart(0)
    return health


def scene(seed: int, shape: tuple[int, int] = (120, 160)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


def test_frame_repeated_more_than_n_times_is_flagged_frozen() -> None:
    health = monitor(frozen_repeats=2)
    still = scene(1)
    flags = [health.observe(still.copy(), k * PERIOD) for k in range(5)]
    assert [bool(f & FrameFlags.FROZEN) for f in flags] == [False, False, True, True, True]
    assert health.stats.frozen_frames == 3


def test_changing_frames_are_never_frozen() -> None:
    health = monitor()
    for k in range(10):
        assert not health.observe(scene(k), k * PERIOD) & FrameFlags.FROZEN
    assert health.stats.frozen_frames == 0


def test_live_static_scene_with_sensor_noise_is_not_frozen() -> None:
    rng = np.random.default_rng(0)
    still = np.full((120, 160, 3), 128, dtype=np.int16)
    health = monitor()
    for k in range(10):
        noisy = np.clip(still + rng.normal(0, 2.0, still.shape), 0, 255).astype(np.uint8)
        assert not health.observe(noisy, k * PERIOD) & FrameFlags.FROZEN


def test_frozen_check_can_be_turned_off() -> None:
    health = monitor(frozen_repeats=0)
    still = scene(3)
    for k in range(5):
        assert not health.observe(still, k * PERIOD) & FrameFlags.FROZEN


def test_sequence_gap_counts_each_missing_frame() -> None:
    health = monitor()
    assert health.observe(scene(0), 0, sequence=0) == FrameFlags.NONE
    flags = health.observe(scene(1), PERIOD * 4, sequence=4)
    assert flags & FrameFlags.AFTER_GAP
    assert health.stats.dropped_frames == 3


def test_stamp_gap_counts_missing_frames_when_source_has_no_sequence() -> None:
    health = monitor()
    health.observe(scene(0), 0)
    assert not health.observe(scene(1), PERIOD + PERIOD // 5) & FrameFlags.AFTER_GAP  # jitter
    flags = health.observe(scene(2), PERIOD * 5)  # 4 periods later: 3 frames lost
    assert flags & FrameFlags.AFTER_GAP
    assert health.stats.dropped_frames == 3


def test_no_drops_counted_without_a_known_period_or_sequence() -> None:
    health = monitor(period_ns=None)
    health.observe(scene(0), 0)
    health.observe(scene(1), 10**9)
    assert health.stats.dropped_frames == 0
    assert not health.check_stale(10**10)


def test_stale_is_reported_once_per_outage() -> None:
    health = monitor(stale_periods=3)
    health.observe(scene(0), 0)
    assert not health.check_stale(2 * PERIOD)
    assert health.check_stale(3 * PERIOD)
    assert health.check_stale(10 * PERIOD)
    assert health.stats.stale_events == 1
    health.observe(scene(1), 11 * PERIOD)
    assert not health.check_stale(12 * PERIOD)
    assert health.check_stale(20 * PERIOD)
    assert health.stats.stale_events == 2


def test_long_gap_without_polling_counts_as_stale_when_frame_arrives() -> None:
    health = monitor(stale_periods=3)
    health.observe(scene(0), 0, sequence=0)
    health.observe(scene(1), 5 * PERIOD, sequence=1)  # source paused: sequence is consecutive
    assert health.stats.stale_events == 1
    assert health.stats.dropped_frames == 0


def test_gap_explained_by_skipped_sequence_is_slow_reader_not_stale() -> None:
    health = monitor(stale_periods=3)
    health.observe(scene(0), 0, sequence=0)
    health.observe(scene(1), 5 * PERIOD, sequence=5)
    assert health.stats.stale_events == 0
    assert health.stats.dropped_frames == 4


def test_restart_does_not_count_the_outage_as_dropped_frames() -> None:
    health = monitor()
    health.observe(scene(0), 0)
    health.restart(50 * PERIOD)
    assert health.observe(scene(1), 51 * PERIOD) == FrameFlags.NONE
    assert health.stats.dropped_frames == 0


def test_stats_count_frames_and_last_stamp() -> None:
    health = monitor()
    for k in range(4):
        health.observe(scene(k), k * PERIOD)
    assert health.stats.frames == 4
    assert health.stats.last_stamp_ns == 3 * PERIOD


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("frozen_repeats", -1),
        ("frozen_threshold", -0.1),
        ("stale_periods", 1),
        ("gap_tolerance", 1),
    ],
)
def test_bad_health_config_names_the_field(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        FrameHealthConfig(**{field: value})
