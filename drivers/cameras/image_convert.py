"""Bring a decoded image to the frame convention: (H, W, 3) uint8 RGB, C-contiguous."""

from __future__ import annotations

import cv2
import numpy as np


def to_rgb(image: np.ndarray) -> np.ndarray:
    """Convert an OpenCV image (BGR, BGRA or grey) to RGB."""
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    raise ValueError(f"cannot convert an image of shape {image.shape} to RGB")
