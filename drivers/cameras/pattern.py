"""A moving-bar test pattern with its frame number burned in, readable back after lossy coding.

Layout of a ``W x H`` frame: the top strip (one cell high, ``cell = W // 24``) holds the frame
number as 24 black/white cells, most significant bit first; below it colour bars move right to
left by ``bar_speed_px`` per frame, with the number also drawn in digits for humans; the bottom
left corner holds pure red, green and blue cells so a swapped channel order is visible.
"""

from __future__ import annotations

import numpy as np

COUNTER_BITS = 24
MIN_WIDTH = 2 * COUNTER_BITS
MIN_HEIGHT = 16

# 3x5 glyphs for 0-9, one string of 15 pixels per digit, row by row.
_DIGIT_GLYPHS = (
    "111101101101111",
    "010110010010111",
    "111001111100111",
    "111001111001111",
    "101101111001001",
    "111100111001111",
    "111100111101111",
    "111001001001001",
    "111101111101111",
    "111101111001111",
)
_GLYPHS = np.array([[c == "1" for c in g] for g in _DIGIT_GLYPHS], dtype=bool).reshape(10, 5, 3)

_BAR_COLOURS = np.array(
    [
        (235, 235, 235),
        (235, 235, 16),
        (16, 235, 235),
        (16, 235, 16),
        (235, 16, 235),
        (235, 16, 16),
        (16, 16, 235),
        (16, 16, 16),
    ],
    dtype=np.uint8,
)


def check_pattern_size(width: int, height: int) -> None:
    if width < MIN_WIDTH or height < MIN_HEIGHT:
        raise ValueError(
            f"test pattern needs at least {MIN_WIDTH}x{MIN_HEIGHT} pixels to hold its frame "
            f"counter, got {width}x{height}"
        )


def counter_cell(width: int) -> int:
    return width // COUNTER_BITS


def render_test_pattern(
    width: int, height: int, sequence: int, bar_speed_px: int = 4
) -> np.ndarray:
    """The pattern for frame ``sequence`` as an ``(H, W, 3)`` RGB ``uint8`` array."""
    check_pattern_size(width, height)
    if not 0 <= sequence < 2**COUNTER_BITS:
        raise ValueError(f"frame number {sequence} does not fit in {COUNTER_BITS} bits")
    cell = counter_cell(width)
    shift = (sequence * bar_speed_px) % width
    columns = (np.arange(width) + shift) % width * len(_BAR_COLOURS) // width
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:] = _BAR_COLOURS[columns][None, :, :]

    bits = (sequence >> np.arange(COUNTER_BITS - 1, -1, -1)) & 1
    strip = np.repeat(bits.astype(np.uint8) * 255, cell)
    image[:cell, : strip.size] = strip[None, :, None]
    image[:cell, strip.size :] = 0

    _draw_number(image, sequence, top=cell + max(2, cell // 2), scale=max(1, cell // 2))

    swatch = min(cell, height // 4)
    for channel in range(3):
        block = image[height - swatch :, channel * swatch : (channel + 1) * swatch]
        block[:] = 0
        block[..., channel] = 255
    return image


def read_frame_counter(image: np.ndarray) -> int:
    """Read back the frame number of a (possibly lossily re-encoded) test pattern frame."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {image.shape}")
    height, width = image.shape[:2]
    check_pattern_size(width, height)
    cell = counter_cell(width)
    inner = slice(cell // 4, cell - cell // 4) if cell >= 4 else slice(0, cell)
    value = 0
    for bit in range(COUNTER_BITS):
        patch = image[inner, bit * cell : (bit + 1) * cell][:, inner]
        value = (value << 1) | int(patch.mean() > 127)
    return value


def _draw_number(image: np.ndarray, number: int, top: int, scale: int) -> None:
    text = str(number)
    glyph_h, glyph_w = 5 * scale, 3 * scale
    pad = scale
    box_w = len(text) * (glyph_w + pad) + pad
    box_h = glyph_h + 2 * pad
    if top + box_h > image.shape[0] or box_w > image.shape[1]:
        return  # too small for digits; the binary strip still carries the number
    image[top : top + box_h, :box_w] = 255
    for i, char in enumerate(text):
        glyph = np.kron(_GLYPHS[int(char)], np.ones((scale, scale), dtype=bool))
        x = pad + i * (glyph_w + pad)
        region = image[top + pad : top + pad + glyph_h, x : x + glyph_w]
        region[glyph] = 0
