from __future__ import annotations

import numpy as np
import pytest

from robostack.drivers.cameras.pattern import (
    COUNTER_BITS,
    read_frame_counter,
    render_test_pattern,
)


@pytest.mark.parametrize("number", [0, 1, 2, 255, 4097, 123_456, 2**COUNTER_BITS - 1])
@pytest.mark.parametrize("size", [(48, 16), (192, 144), (640, 480)])
def test_counter_reads_back_the_number_burned_in(number: int, size: tuple[int, int]) -> None:
    image = render_test_pattern(size[0], size[1], number)
    assert image.shape == (size[1], size[0], 3)
    assert image.dtype == np.uint8
    assert read_frame_counter(image) == number


def test_consecutive_frames_differ_because_bars_move() -> None:
    a = render_test_pattern(192, 144, 10)
    b = render_test_pattern(192, 144, 11)
    rows = slice(144 // 2, 144 - 20)  # below the counter and digits, above the swatches
    assert np.abs(a[rows].astype(int) - b[rows].astype(int)).mean() > 5


def test_bottom_left_swatches_are_red_green_blue_in_rgb_order() -> None:
    image = render_test_pattern(240, 180, 7)
    cell = 240 // COUNTER_BITS
    y = 180 - cell // 2
    assert image[y, cell // 2].tolist() == [255, 0, 0]
    assert image[y, cell + cell // 2].tolist() == [0, 255, 0]
    assert image[y, 2 * cell + cell // 2].tolist() == [0, 0, 255]


def test_too_small_pattern_is_refused_with_its_size() -> None:
    with pytest.raises(ValueError, match="40x30"):
        render_test_pattern(40, 30, 0)


def test_number_beyond_counter_range_is_refused() -> None:
    with pytest.raises(ValueError, match="24 bits"):
        render_test_pattern(192, 144, 2**COUNTER_BITS)
