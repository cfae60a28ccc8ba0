"""Per-array image codecs for slow links: ``raw`` (no codec), ``jpeg`` and ``png`` via OpenCV.

OpenCV is imported on first use, so the core stays importable without it. Codecs are agnostic to
channel order: an image goes out and comes back with the same channel order it was sent with.
"""

from __future__ import annotations

import numpy as np

CODECS = ("raw", "jpeg", "png")


class CodecError(ValueError):
    """An array cannot be encoded or decoded with the requested codec."""


def _cv2():
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise CodecError(
            "image codecs need OpenCV: pip install 'robostack[vision]' (opencv-python-headless)"
        ) from exc
    return cv2


def check_encodable(codec: str, dtype: np.dtype, shape: tuple[int, ...]) -> None:
    """Raise :class:`CodecError` unless ``codec`` can carry arrays of this dtype and shape."""
    if codec not in CODECS:
        raise CodecError(f"unknown codec {codec!r}; expected one of {CODECS}")
    if codec == "raw":
        return
    allowed = (np.dtype(np.uint8),) if codec == "jpeg" else (np.dtype(np.uint8), np.dtype(np.uint16))
    if dtype not in allowed:
        raise CodecError(f"codec {codec} carries {[str(d) for d in allowed]} images, got {dtype}")
    ok_shape = len(shape) == 2 or (len(shape) == 3 and shape[2] in (1, 3, 4 if codec == "png" else 3))
    if not ok_shape or 0 in shape:
        raise CodecError(f"codec {codec} carries (H, W) or (H, W, C) images, got shape {shape}")


def encode(array: np.ndarray, codec: str, jpeg_quality: int = 90) -> bytes:
    """Compress ``array`` with ``codec`` (not ``raw``)."""
    check_encodable(codec, array.dtype, array.shape)
    cv2 = _cv2()
    if codec == "jpeg":
        ok, buf = cv2.imencode(".jpg", array, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
    else:
        ok, buf = cv2.imencode(".png", array, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise CodecError(f"OpenCV failed to encode a {array.shape} {array.dtype} image as {codec}")
    return buf.tobytes()


def decode(data, codec: str, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """Decompress ``data`` and check the result has exactly ``dtype`` and ``shape``."""
    check_encodable(codec, dtype, shape)
    cv2 = _cv2()
    raw = np.frombuffer(data, dtype=np.uint8)
    image = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED) if raw.size else None
    if image is None:
        raise CodecError(f"{codec} payload of {raw.size} bytes does not decode")
    if len(shape) == 3 and shape[2] == 1 and image.ndim == 2:
        image = image[:, :, None]
    if image.shape != tuple(shape) or image.dtype != dtype:
        raise CodecError(
            f"{codec} payload decodes to {image.shape} {image.dtype}, header says {tuple(shape)} {dtype}"
        )
    return image
