"""Camera video through PyAV: a crash-tolerant writer, remuxing into a final mp4, decoding.

The journal writer produces fragmented MP4 (``frag_keyframe+empty_moov``): the header is written
first and every keyframe closes a self-contained fragment, so a writer killed at any moment leaves
a file whose complete fragments play. Frame ``i`` has ``pts = i`` in a ``1/fps`` time base, so
its time is exactly ``i / fps``, the ``timestamp`` of parquet row ``i``.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from robostack.dataset.errors import storage_error
from robostack.dataset.layout import VideoEncoderConfig


def _av():
    import av  # heavy: loaded on first use

    return av


class FragmentedVideoWriter:
    """Encodes RGB frames into a fragmented MP4 that survives the writer being killed.

    :meth:`sync` (call it every fragment or so) flushes and fsyncs what was muxed, so a power cut
    loses at most the fragment in progress (≤ ``keyframe_interval_s``).
    """

    def __init__(self, path: Path, width: int, height: int, fps: int, config: VideoEncoderConfig) -> None:
        av = _av()
        self.path = Path(path)
        self.fps = fps
        self.config = config
        self.frames = 0
        self.gop = max(1, int(round(config.keyframe_interval_s * fps)))
        try:
            self._file = open(self.path, "wb")
        except OSError as exc:
            raise storage_error(exc, str(self.path)) from exc
        self._container = av.open(
            self._file, "w", format="mp4",
            options={"movflags": "frag_keyframe+empty_moov+default_base_moof"},
        )
        stream = self._container.add_stream(config.codec, rate=fps)
        stream.width = width
        stream.height = height
        stream.pix_fmt = config.pix_fmt
        stream.time_base = Fraction(1, fps)
        stream.codec_context.time_base = Fraction(1, fps)
        stream.gop_size = self.gop
        stream.codec_context.thread_count = config.threads
        if config.codec == "libx264":
            # zerolatency: no lookahead, no B-frames: each frame leaves the encoder at once, so
            # packet order is frame order and a kill loses nothing queued inside x264.
            stream.options = {
                "preset": config.preset, "crf": str(config.crf), "tune": "zerolatency",
                "x264-params": f"keyint={self.gop}:min-keyint={self.gop}:scenecut=0",
            }
        else:
            stream.options = {"qscale": str(config.qscale)}
            stream.codec_context.max_b_frames = 0
        self._stream = stream
        self._closed = False

    def write(self, image: np.ndarray) -> None:
        """Encode one ``(H, W, 3)`` uint8 RGB frame as frame number :attr:`frames`."""
        av = _av()
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts = self.frames
        frame.time_base = Fraction(1, self.fps)
        # A keyframe every gop frames: each one closes a fragment on disk.
        frame.pict_type = av.video.frame.PictureType.I if self.frames % self.gop == 0 else av.video.frame.PictureType.NONE
        try:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        except OSError as exc:
            raise storage_error(exc, str(self.path)) from exc
        self.frames += 1

    def sync(self) -> None:
        """Make everything muxed so far durable."""
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:
            raise storage_error(exc, str(self.path)) from exc

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            self.sync()
        except OSError as exc:
            raise storage_error(exc, str(self.path)) from exc
        finally:
            self._file.close()

    def abandon(self) -> None:
        """Close the file without finishing the stream (discarded episodes)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._container.close()
        except Exception:  # noqa: BLE001 - nothing of it is kept
            pass
        self._file.close()


def count_decodable_frames(path: Path, limit: int | None = None) -> int:
    """How many frames of a (possibly truncated) video decode cleanly, from the start."""
    av = _av()
    n = 0
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                if packet.is_corrupt:
                    break
                for _ in packet.decode():
                    n += 1
                if limit is not None and n >= limit:
                    return limit
    except (av.error.FFmpegError, OSError, IndexError):
        pass
    return n


def remux(src: Path, dst: Path, max_frames: int | None = None) -> int:
    """Copy the first ``max_frames`` frames of ``src`` (fragmented or not) into a regular MP4
    ``dst`` with its index at the front, without re-encoding. Returns the frames written."""
    av = _av()
    written = 0
    with av.open(str(src)) as inp:
        in_stream = inp.streams.video[0]
        with av.open(str(dst), "w", format="mp4", options={"movflags": "faststart"}) as out:
            out_stream = out.add_stream_from_template(in_stream)
            for packet in inp.demux(in_stream):
                if packet.dts is None or packet.size == 0:
                    continue
                if max_frames is not None and written >= max_frames:
                    break
                packet.stream = out_stream
                out.mux(packet)
                written += 1
    return written


def decode_frames(path: Path, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(frame_number, rgb_image)`` for frames ``start <= i < stop``, numbered by
    presentation time (``round(time * fps)``), not by decode order."""
    av = _av()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        for frame in container.decode(stream):
            i = int(round(float(frame.pts * frame.time_base) * float(rate)))
            if i < start:
                continue
            if stop is not None and i >= stop:
                break
            yield i, frame.to_ndarray(format="rgb24")


def probe(path: Path) -> dict:
    """Codec, size, frame count and duration of a video file."""
    av = _av()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = stream.frames or sum(1 for p in container.demux(stream) if p.size)
        return {
            "codec": stream.codec_context.name,
            "width": stream.codec_context.width,
            "height": stream.codec_context.height,
            "pix_fmt": stream.codec_context.pix_fmt,
            "frames": frames,
            "fps": float(stream.average_rate) if stream.average_rate else None,
        }
